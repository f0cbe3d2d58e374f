"""Bind a JetStream key-value bucket so that a tenant's bus permissions can scope it.

nats-py's ``js.key_value(bucket)`` reads the bucket's stream info first, and its watches
create consumers with ``$JS.API.CONSUMER.CREATE.<stream>``, naming the key filter only in
the request body. A permission list cannot scope either to a tenant: stream info with a
``subjects_filter`` lists every key of the bucket, and a consumer's filter could be any
key. So a tenant may not do either (see :mod:`agentmesh.security.bus_permissions`), and
this module:

* binds the bucket without asking for its stream info (:func:`bind`);
* gives every watch consumer a name, so that nats-py creates it with
  ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``: the server refuses a body whose
  filter differs from the subject's, and the permission ``...<stream>.*.$KV.<b>.<t>.>``
  then confines a tenant's watches and key listings to its own keys.
"""

from __future__ import annotations

from typing import Any, cast

from nats.js.api import ConsumerConfig
from nats.js.kv import KeyValue
from nats.nuid import NUID

_NUID = NUID()


def _name() -> str:
    return _NUID.next().decode()


class ScopedJetStream:
    """A JetStream context whose push subscriptions create named consumers (the filter
    subject then travels in the API subject); everything else is the wrapped context's."""

    def __init__(self, js: Any) -> None:
        self._js = js

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def subscribe(self, subject: str, **kwargs: Any) -> Any:
        """``js.subscribe`` with a fresh consumer name; an ordered consumer that nats-py
        re-creates after a gap gets a new name too (the old one may still exist)."""
        config = kwargs.pop("config", None) or ConsumerConfig()
        config.name = _name()
        psub = await self._js.subscribe(subject, config=config, **kwargs)
        jsi = getattr(getattr(psub, "_sub", None), "_jsi", None)
        if jsi is not None and getattr(jsi, "_ordered", False):
            recreate = jsi.recreate_consumer

            async def renamed() -> None:
                jsi._ccreq.name = _name()
                await recreate()

            jsi.recreate_consumer = renamed
        return psub


def bind(js: Any, bucket: str) -> KeyValue:
    """The bucket ``bucket`` (created with direct gets), without a stream-info request."""
    return KeyValue(
        name=bucket,
        stream=f"KV_{bucket}",
        pre=f"$KV.{bucket}.",
        js=cast(Any, ScopedJetStream(js)),  # duck-typed: KeyValue calls what it wraps
        direct=True,
    )

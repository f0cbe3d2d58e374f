"""Transports, chosen by URL scheme: ``memory://``, ``nats://``, ``redis://``, ``amqp://``,
``kafka://``, ``sqs://`` / ``sns://``, ``pulsar://`` and ``pubsub://``.

>>> t = create_transport("memory://")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentmesh.errors import ConfigError
from agentmesh.transports.base import (
    Handler,
    SubscribeOptions,
    Subscription,
    Transport,
    TransportCapabilities,
)
from agentmesh.transports.message import Message

__all__ = [
    "SCHEMES",
    "Handler",
    "Message",
    "SubscribeOptions",
    "Subscription",
    "Transport",
    "TransportCapabilities",
    "create_transport",
]

# scheme -> "module:Class"; imported lazily so a missing optional client only matters when used
SCHEMES: dict[str, str] = {
    "memory": "agentmesh.transports.memory:MemoryTransport",
    "nats": "agentmesh.transports.nats:NatsTransport",
    "tls": "agentmesh.transports.nats:NatsTransport",
    "redis": "agentmesh.transports.redis:RedisTransport",
    "rediss": "agentmesh.transports.redis:RedisTransport",
    "amqp": "agentmesh.transports.rabbitmq:RabbitMQTransport",
    "amqps": "agentmesh.transports.rabbitmq:RabbitMQTransport",
    "rabbitmq": "agentmesh.transports.rabbitmq:RabbitMQTransport",
    "kafka": "agentmesh.transports.kafka:KafkaTransport",
    "sqs": "agentmesh.transports.sqs:SqsTransport",
    "sns": "agentmesh.transports.sqs:SqsTransport",
    "pulsar": "agentmesh.transports.pulsar:PulsarTransport",
    "pubsub": "agentmesh.transports.pubsub:PubSubTransport",
}


def register(scheme: str, target: str) -> None:
    """Register a transport class (``"module:Class"``) for a URL scheme."""
    SCHEMES[scheme] = target


TOKEN_SCHEMES = frozenset({"nats", "tls"})
"""Schemes whose transport presents a bus token (``token=``; see security/bus_credentials)."""
CA_QUERY = {"rediss": "ssl_ca_certs", "amqps": "cafile", "rabbitmqs": "cafile"}
"""TLS schemes that take their CA file in the URL query, and that parameter's name."""


def with_ca_file(url: str, ca_file: str) -> str:
    """``url`` with ``ca_file`` as its CA parameter (``rediss://``, ``amqps://``), unless
    the URL names one already; other URLs unchanged."""
    parts = urlsplit(url)
    name = CA_QUERY.get(parts.scheme.lower())
    query = dict(parse_qsl(parts.query))
    if name is None or name in query:
        return url
    query[name] = ca_file
    return urlunsplit(parts._replace(query=urlencode(query)))


def create_transport(
    url: str, *, token: str | None = None, tls_ca_file: str | None = None, **kwargs: Any
) -> Transport:
    """Build the transport for ``url`` (its scheme picks the implementation); ``token``
    is presented to brokers that authenticate AgentMesh tokens (NATS) and ignored elsewhere;
    ``tls_ca_file`` verifies the server's certificate on ``tls://``, ``rediss://`` and
    ``amqps://`` (where a CA named in the URL, ``?ssl_ca_certs=`` / ``?cafile=``, wins)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if token and scheme in TOKEN_SCHEMES:
        kwargs["token"] = token
    if tls_ca_file and scheme in TOKEN_SCHEMES:
        kwargs["tls_ca_file"] = tls_ca_file
    elif tls_ca_file:
        url = with_ca_file(url, tls_ca_file)
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(SCHEMES))
        raise ConfigError(f"unknown transport URL {url!r}; use one of {known}")
    module, _, name = target.partition(":")
    cls: Callable[..., Transport] = getattr(importlib.import_module(module), name)
    return cls(url, **kwargs)

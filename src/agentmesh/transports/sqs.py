"""``sqs://`` / ``sns://``: AWS SNS topics fanned out to SQS queues (aiobotocore).

``sqs://127.0.0.1:15000?region=us-east-1`` talks to that endpoint (moto, ElasticMQ ...);
``sqs://aws?region=eu-west-1`` (or ``sqs://``) uses the regular AWS endpoints and the
usual credential chain. ``?tls=true`` switches a custom endpoint to https; ``user:secret@``
in the URL sets the access key. ``sns://`` is the same transport.

* One FIFO SNS topic per tenant (``am-<tenant>.fifo``). Every publish carries the subject as
  the message attribute ``s``, ``MessageGroupId`` = the subject (so each subject keeps its
  order) and ``MessageDeduplicationId`` = the envelope id plus a hash of the subject, so a
  duplicate publish is dropped by the broker inside its 5-minute window (the dispatcher's
  dedupe window covers the rest). Bodies that are not UTF-8 text go base64 (``enc=b64``).
* A subscription is a FIFO SQS queue subscribed to its tenant's topic with raw delivery and
  a filter policy on ``s`` (exact subject, or the literal prefix of a wildcard pattern);
  the NATS rule is re-checked client-side. Tenant wildcards are refused (``NotSupported``).
  Core subscriptions own a private queue (deleted on unsubscribe, 60 s retention); a queue
  group shares one queue named after the group, so SQS hands each message to one member.
  Core deliveries are deleted on receipt (at most once).
* ``subscribe(durable=name)`` consumes the queue ``am-d-<name>-<hash of pattern>.fifo``. A
  receive hides the message for ``ack_wait`` (visibility timeout); ack / term delete it;
  ``nak(delay)`` / ``in_progress()`` change its visibility; ``ApproximateReceiveCount`` is
  the attempt. A redrive policy parks a message that was received ``max_deliver`` times
  without being settled (crash loops) in ``<queue>-dlq.fifo``; handler failures go to the
  AgentMesh dead-letter subject as on every transport. SNS drops a message no queue's
  filter matches, so ``provision`` creates and subscribes the group's queue (same name,
  attributes, redrive policy and filter) before its first member polls.
* Request/reply: replies go straight to a per-transport SQS inbox queue; SNS cannot say
  whether anyone listens, so a request nobody serves ends in ``RequestTimeout``.
* Max payload 256 KiB minus room for the attributes (an SNS limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.envelope import Envelope
from agentmesh.errors import PayloadTooLarge
from agentmesh.transports import sqs_wire as wire
from agentmesh.transports.base import SubscribeOptions, TransportCapabilities
from agentmesh.transports.broker import (
    BrokerSubscription,
    BrokerTransport,
)
from agentmesh.transports.message import CoreDelivery as _CoreRaw

_RECEIVE_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}


class SqsTransport(BrokerTransport):
    """SNS + SQS transport (see module docstring)."""

    broker_name = "SNS/SQS"

    def __init__(self, url: str = "sqs://127.0.0.1:4566?region=us-east-1", **kwargs: Any) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.region = query.get("region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        host = parts.hostname or ""
        self.endpoint: str | None = None
        if host and host != "aws":
            scheme = "https" if query.get("tls", "").lower() in ("1", "true", "yes") else "http"
            port = f":{parts.port}" if parts.port else ""
            self.endpoint = f"{scheme}://{host}{port}"
        self._key = (parts.username, parts.password) if parts.username else None
        # FIFO message groups are per subject: one subject's messages go to one member at a
        # time (that keeps them in order), so work is shared per subject, as on Kafka
        kwargs.setdefault(
            "capabilities", TransportCapabilities(max_payload=wire.MAX_PAYLOAD, queue_groups=False)
        )
        super().__init__(url, **kwargs)
        self._stack: contextlib.AsyncExitStack | None = None
        self._sqs: Any = None
        self._sns: Any = None
        self._topics: dict[str, str] = {}
        self._urls: dict[str, str] = {}
        self._counter = 0
        self._inbox_url: str | None = None
        self._inbox_task: asyncio.Task[None] | None = None

    @property
    def sqs(self) -> Any:
        self.require_connected()
        return self._sqs

    @property
    def sns(self) -> Any:
        self.require_connected()
        return self._sns

    def _client_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "region_name": self.region,
            "config": AioConfig(
                connect_timeout=self.connect_timeout,
                read_timeout=max(self.connect_timeout, wire.LONG_POLL + 10),
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=256,
            ),
        }
        if self.endpoint:
            args["endpoint_url"] = self.endpoint
        if self._key is not None:
            args["aws_access_key_id"], args["aws_secret_access_key"] = self._key
        elif self.endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
            args["aws_access_key_id"] = args["aws_secret_access_key"] = "test"  # emulators
        return args

    async def _connect(self) -> None:
        stack = contextlib.AsyncExitStack()
        session = get_session()
        try:
            self._sqs = await stack.enter_async_context(
                session.create_client("sqs", **self._client_args())
            )
            self._sns = await stack.enter_async_context(
                session.create_client("sns", **self._client_args())
            )
            await self._sqs.list_queues(MaxResults=1)
        except (ClientError, *wire.NETWORK_ERRORS) as exc:
            await stack.aclose()
            raise self.unavailable(exc) from None
        except BaseException:  # cancelled by the connect timeout: release the clients too
            await asyncio.shield(stack.aclose())
            raise
        self._stack = stack

    async def _disconnect(self) -> None:
        await stop_task(self._inbox_task)
        self._inbox_task = None
        if self._inbox_url is not None:
            with contextlib.suppress(Exception):  # the reply queue expires anyway (60 s retention)
                await asyncio.wait_for(self._sqs.delete_queue(QueueUrl=self._inbox_url), 2.0)
            self._inbox_url = None
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    async def ping(self) -> float:
        """Round-trip time of a ``ListQueues`` call in seconds; raises BrokerUnavailable."""
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self.sqs.list_queues(MaxResults=1), self.connect_timeout)
        except (ClientError, *wire.NETWORK_ERRORS) as exc:
            raise self.unavailable(exc) from None
        return time.perf_counter() - start

    # -- naming ---------------------------------------------------------------------------
    async def topic_arn(self, tenant: str) -> str:
        """ARN of the tenant's FIFO topic, created on first use (idempotent)."""
        arn = self._topics.get(tenant)
        if arn is None:
            resp = await self.sns.create_topic(
                Name=wire.topic_name(tenant),
                Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"},
            )
            arn = self._topics[tenant] = str(resp["TopicArn"])
        return arn

    async def queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """URL of the queue ``name``, created (or re-configured) with ``attributes``."""
        attrs = dict(attributes or {})
        if name.endswith(".fifo"):
            attrs.setdefault("FifoQueue", "true")
        try:
            resp = await self.sqs.create_queue(QueueName=name, Attributes=attrs)
        except ClientError as exc:  # exists with other attributes: keep it, update them
            if "QueueAlreadyExists" not in str(exc):
                raise
            resp = await self.sqs.get_queue_url(QueueName=name)
            attrs.pop("FifoQueue", None)
            await self.sqs.set_queue_attributes(QueueUrl=resp["QueueUrl"], Attributes=attrs)
        url = self._urls[name] = str(resp["QueueUrl"])
        return url

    async def queue_arn(self, url: str) -> str:
        resp = await self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(resp["Attributes"]["QueueArn"])

    # -- publish --------------------------------------------------------------------------
    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        tenant = subjects.tenant_of(subject) or subjects.SYSTEM_TENANT
        body, b64 = wire.encode_body(data)
        if len(body.encode()) > wire.SNS_MAX_MESSAGE - 1024:
            raise PayloadTooLarge(
                f"message of {len(body)} bytes (base64) exceeds the SNS/SQS limit ({self.url})"
            )
        attrs = {"s": {"DataType": "String", "StringValue": subject}}
        if reply:
            attrs["r"] = {"DataType": "String", "StringValue": reply}
        if b64:
            attrs["enc"] = {"DataType": "String", "StringValue": "b64"}
        try:
            arn = await self.topic_arn(tenant)
            await asyncio.wait_for(
                self.sns.publish(
                    TopicArn=arn,
                    Message=body,
                    MessageAttributes=attrs,
                    MessageGroupId=wire.group_id(subject),
                    MessageDeduplicationId=wire.dedupe_id(subject, msg_id),
                ),
                self.connect_timeout,
            )
        except wire.NETWORK_ERRORS as exc:
            raise self.unavailable(exc) from None
        return None

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        queue, _, token = reply.rpartition(".")
        url = self._urls.get(queue)
        if url is None:
            url = self._urls[queue] = str(
                (await self.sqs.get_queue_url(QueueName=queue))["QueueUrl"]
            )
        body, b64 = wire.encode_body(envelope.encode())
        attrs = {"t": {"DataType": "String", "StringValue": token}}
        if b64:
            attrs["enc"] = {"DataType": "String", "StringValue": "b64"}
        await self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs)

    async def _open_inbox(self) -> str:
        name = f"am-i-{self.instance}"
        url = await self.queue(name, {"MessageRetentionPeriod": str(wire.CORE_RETENTION)})
        self._inbox_url = url

        async def read() -> None:
            while self._connected:
                try:
                    resp = await self.sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=wire.LONG_POLL,
                        MessageAttributeNames=["All"],
                    )
                except (ClientError, *wire.NETWORK_ERRORS) as exc:
                    logger.warning("SQS inbox read failed: {}", exc)
                    await asyncio.sleep(0.5)
                    continue
                msgs = resp.get("Messages") or []
                if msgs:
                    await self._delete(url, msgs)
                for msg in msgs:
                    self.deliver_reply(wire.attribute(msg, "t") or "", wire.decode_body(msg))

        self._inbox_task = asyncio.create_task(read())
        return name

    async def _delete(self, url: str, msgs: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
        with contextlib.suppress(ClientError, *wire.NETWORK_ERRORS):
            await self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)

    # -- subscriptions --------------------------------------------------------------------
    async def _subscribe_queue(self, tenant: str, url: str, pattern: str) -> str:
        topic = await self.topic_arn(tenant)
        arn = await self.queue_arn(url)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
                }
            ],
        }
        await self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        existing = await self._subscription_of(topic, arn)
        if existing is not None:  # another member of the group subscribed this queue already
            return existing
        attrs = {"RawMessageDelivery": "true"}
        flt = wire.filter_policy(pattern)
        if flt is not None:
            attrs["FilterPolicy"] = json.dumps(flt)
        resp = await self.sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn,
            Attributes=attrs,
            ReturnSubscriptionArn=True,
        )
        return str(resp["SubscriptionArn"])

    async def _subscription_of(self, topic: str, queue_arn: str) -> str | None:
        """The topic's existing subscription for ``queue_arn`` (two would deliver twice)."""
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"TopicArn": topic}
            if token:
                kw["NextToken"] = token
            resp = await self.sns.list_subscriptions_by_topic(**kw)
            for entry in resp.get("Subscriptions", []):
                if entry.get("Endpoint") == queue_arn:
                    return str(entry["SubscriptionArn"])
            token = resp.get("NextToken")
            if not token:
                return None

    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None:
        tenant = wire.tenant_of_pattern(sub.subject)
        attrs = {"MessageRetentionPeriod": str(wire.CORE_RETENTION)}
        if queue:
            name = f"am-q-{wire.safe_name(queue, 30)}-{wire.digest(queue + ' ' + sub.subject)}.fifo"
        else:
            self._counter += 1
            name = f"am-c-{self.instance}-{self._counter}.fifo"
        url = await self.queue(name, attrs)
        sub_arn = await self._subscribe_queue(tenant, url, sub.subject)
        if not queue:

            async def remove() -> None:
                await self.sns.unsubscribe(SubscriptionArn=sub_arn)
                await self.sqs.delete_queue(QueueUrl=url)

            sub.release.append(remove)
        self._poll(sub, url, durable=None)

    async def _group_queue(self, subject: str, durable: str, options: SubscribeOptions) -> str:
        """URL of durable group ``durable``'s queue on ``subject``, created and subscribed."""
        tenant = wire.tenant_of_pattern(subject)
        base = f"am-d-{wire.safe_name(durable, 30)}-{wire.digest(subject)}"
        dlq_url = await self.queue(f"{base}-dlq.fifo", {"MessageRetentionPeriod": "1209600"})
        redrive = {
            "deadLetterTargetArn": await self.queue_arn(dlq_url),
            "maxReceiveCount": max(min(options.max_deliver, 1000), 1),
        }
        url = await self.queue(
            f"{base}.fifo",
            {
                "VisibilityTimeout": str(max(math.ceil(options.ack_wait), 1)),
                "RedrivePolicy": json.dumps(redrive),
            },
        )
        await self._subscribe_queue(tenant, url, subject)
        return url

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        try:
            await self._group_queue(subject, durable, options)
        except wire.NETWORK_ERRORS as exc:
            raise self.unavailable(exc) from None

    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None:
        url = await self._group_queue(sub.subject, durable, options)
        self._poll(sub, url, durable=options)

    async def _receive(self, url: str, free: int, busy: bool, visibility: int) -> Any:
        # members of one group in this process take turns: concurrent receives on one FIFO
        # queue handed the same message to two members on the emulator
        key = (id(asyncio.get_running_loop()), url)
        lock = _RECEIVE_LOCKS.get(key)
        if lock is None:
            lock = _RECEIVE_LOCKS[key] = asyncio.Lock()
        async with lock:
            return await self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(free, 10),
                WaitTimeSeconds=0 if busy else wire.LONG_POLL,
                VisibilityTimeout=visibility,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )

    def _poll(self, sub: BrokerSubscription, url: str, durable: SubscribeOptions | None) -> None:
        d = sub.dispatcher
        full = d.free_slots
        visibility = max(math.ceil(durable.ack_wait), 1) if durable else 30

        current: list[asyncio.Future[Any]] = []

        async def loop() -> None:
            while not d.closed:
                free = d.free_slots
                if free <= 0:
                    await asyncio.sleep(0.005)
                    continue
                busy = free < full  # FIFO group locks: poll short while our deliveries run
                receive = asyncio.ensure_future(self._receive(url, free, busy, visibility))
                current[:] = [receive]
                try:
                    resp = await asyncio.shield(receive)
                except asyncio.CancelledError:
                    if receive.cancelled() and d.closed:
                        return  # unsubscribed while polling
                    receive.cancel()
                    raise
                except (ClientError, *wire.NETWORK_ERRORS) as exc:
                    if d.closed:
                        return
                    logger.warning("SQS receive on {} failed: {}; retrying", url, exc)
                    await asyncio.sleep(0.5)
                    continue
                msgs = resp.get("Messages") or []
                if not msgs:
                    if busy:
                        await asyncio.sleep(wire.BUSY_POLL)
                    continue
                if durable is None:
                    await self._delete(url, msgs)
                for msg in msgs:
                    await self._submit(sub, url, msg, durable)

        sub.spawn(loop())

        async def stop() -> None:
            for fut in current:
                fut.cancel()

        sub.stop_intake.append(stop)

    async def _submit(
        self,
        sub: BrokerSubscription,
        url: str,
        msg: dict[str, Any],
        durable: SubscribeOptions | None,
    ) -> None:
        subject = wire.attribute(msg, "s") or ""
        if durable is None:
            if subjects.matches(sub.subject, subject):
                await sub.dispatcher.submit(
                    _CoreRaw(subject, wire.decode_body(msg), wire.attribute(msg, "r"))
                )
            return
        await sub.deliver(wire.QueueRaw(self, url, msg, durable.ack_wait), durable.max_deliver)

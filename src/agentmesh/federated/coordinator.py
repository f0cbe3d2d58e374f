"""The coordinator of a federated job: a mesh agent that runs the rounds.

Each round it sends the global model to the registered participants
(``federated_training_request``), collects their sealed updates
(``federated_model_sync``), closes at the update threshold or the deadline, recovers
the masks of participants that dropped out (secure aggregation), averages, evaluates,
and commits the new version to the event store before announcing it. A restarted
coordinator resumes from the last committed version (:func:`history.load_job`)::

    coordinator = FederatedCoordinator(mesh, "fl-coord", store, FederationConfig(job="digits"),
                                       evaluate=lambda w: evaluate(w, X_test, y_test))
    mesh.add(coordinator)
    await mesh.start(); await coordinator.finished.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from loguru import logger

from agentmesh import subjects
from agentmesh.domain.federated_events import (
    FederatedModelCommittedEvent,
    FederatedRoundFailedEvent,
    FederatedUpdateRejectedEvent,
)
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, ValidationError
from agentmesh.federated import history, secure
from agentmesh.federated.arrays import pack
from agentmesh.federated.model import init_params, param_count
from agentmesh.federated.protocol import (
    METRICS_REQUEST,
    MODEL_SYNC,
    REGISTRATION,
    TRAINING_REQUEST,
    FederationConfig,
    b64,
    context_of,
    unb64,
)
from agentmesh.federated.rounds import Round, UpdateRejected
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.store.base import EventStore

Vector = npt.NDArray[np.float64]
Evaluator = Callable[[Vector], tuple[float, float]]
Observer = Callable[[str, int, npt.NDArray[Any]], None]
ACK_TIMEOUT = 5.0
RECOVERY_PASSES = 3


class FederatedCoordinator(AgentRuntime):
    """Runs the rounds of ``config.job`` (see the module docstring).

    ``evaluate(params) -> (accuracy, loss)`` scores each version on held-out data;
    ``observe(participant, round, vector)`` sees each update exactly as received
    (what a curious coordinator could look at: masked when ``config.secure``).
    """

    def __init__(
        self,
        mesh: Any,
        agent_id: str,
        store: EventStore,
        config: FederationConfig,
        *,
        capabilities: Any = "federated_coordination",
        evaluate: Evaluator | None = None,
        observe: Observer | None = None,
    ) -> None:
        super().__init__(mesh, agent_id, self._handle, capabilities=capabilities, max_concurrent=64)
        self.store = store
        self.config = config
        self.evaluate = evaluate
        self.observe = observe
        self.key = secure.new_private_key()
        self.participants: dict[str, dict[str, Any]] = {}
        self.state = history.JobState()
        self.current: Round | None = None
        self.finished = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await super().start()
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await super().stop()

    # -- messages -------------------------------------------------------------------------
    async def _handle(self, task: TaskContext) -> dict[str, Any]:
        kind, p = task.envelope.type, task.payload
        if kind == REGISTRATION:
            return self._register(p)
        if kind == MODEL_SYNC and p.get("phase") == "update":
            return await self._receive(p)
        if kind == METRICS_REQUEST:
            return {
                "job": self.config.job,
                "model_version": self.state.version,
                "epsilon_spent": self.state.epsilon_spent,
                "rounds": self.state.rounds,
            }
        raise ValidationError(f"the coordinator does not handle {kind!r} messages")

    def _register(self, p: dict[str, Any]) -> dict[str, Any]:
        pid = p.get("participant")
        if not isinstance(pid, str) or not pid:
            raise ValidationError("a registration names its 'participant'")
        if p.get("features") != self.config.features or p.get("classes") != self.config.classes:
            raise ValidationError(
                f"participant {pid!r} has {p.get('features')} features and "
                f"{p.get('classes')} classes; the model has {self.config.features} and "
                f"{self.config.classes}"
            )
        public = unb64(p.get("public_key"), "public_key")
        if len(public) != 32:
            raise ValidationError("public_key must be a 32-byte X25519 key")
        samples = p.get("samples")
        if not isinstance(samples, int) or samples < 1:
            raise ValidationError("samples must be a positive integer")
        known = pid in self.participants
        self.participants[pid] = {"key": public, "samples": samples, "seen": time.monotonic()}
        if not known:
            logger.info("federated {}: participant {} registered", self.config.job, pid)
            self._wake.set()
        return {"registered": True, "job": self.config.job, "model_version": self.state.version}

    async def _receive(self, p: dict[str, Any]) -> dict[str, Any]:
        pid = str(p.get("participant", ""))
        number = p.get("round")
        rnd = self.current
        try:
            if not isinstance(number, int):
                raise UpdateRejected("an update names its 'round'")
            if rnd is None or p.get("context") != rnd.context:
                if rnd is not None and number >= rnd.number:
                    raise UpdateRejected(f"update for another attempt of round {number}")
                current = rnd.number if rnd else self.state.round
                raise UpdateRejected(f"stale update for round {number} (current round {current})")
            if pid not in rnd.roster:
                raise UpdateRejected(f"unknown participant {pid!r} for round {number}")
            sealed = unb64(p.get("sealed"), "sealed")
            plain = secure.open_sealed(self.key, rnd.roster[pid], sealed, f"{rnd.context}|{pid}")
            dtype = np.uint64 if rnd.secure else np.float64
            if len(plain) % 8:
                raise UpdateRejected("update bytes are not whole 8-byte values")
            vector = np.frombuffer(plain, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
            rnd.accept(pid, number, vector)
        except ValidationError as exc:
            reason = exc.message
            logger.warning(
                "federated {}: update from {} rejected: {}", self.config.job, pid, reason
            )
            await history.append(
                self.store,
                FederatedUpdateRejectedEvent(
                    aggregate_id=self.config.job,
                    tenant_id=self.tenant_id,
                    round=number if isinstance(number, int) else -1,
                    agent_id=pid[:256] or "unknown",
                    reason=reason,
                ),
            )
            return {"accepted": False, "reason": reason}
        if self.observe is not None:
            self.observe(pid, number, vector)
        if rnd.complete(self.config.update_threshold):
            self._wake.set()
        return {"accepted": True}

    # -- rounds ---------------------------------------------------------------------------
    async def _run(self) -> None:
        cfg = self.config
        self.state = await history.load_job(self.store, self.tenant_id, cfg.job)
        if self.state.params is None:
            await self._commit(0, init_params(cfg.features, cfg.classes), [], [], 0, 0.0, None)
        elif self.state.params.size != param_count(cfg.features, cfg.classes):
            logger.error("federated {}: the stored model does not fit the config", cfg.job)
            return
        else:
            logger.info("federated {}: resuming at version {}", cfg.job, self.state.version)
        while self.state.version < cfg.rounds:
            try:
                await self._round(self.state.round + 1)
            except AgentMeshError as exc:  # a broker or store hiccup: the next round retries
                logger.warning("federated {}: round failed: {}", cfg.job, exc)
                await asyncio.sleep(0.5)
            if cfg.round_interval and self.state.version < cfg.rounds:
                await asyncio.sleep(cfg.round_interval)  # pacing between rounds
        logger.info("federated {}: {} rounds done", cfg.job, cfg.rounds)
        self.finished.set()

    def _live(self) -> dict[str, bytes]:
        cutoff = time.monotonic() - self.config.registration_ttl
        return {
            pid: i["key"] for pid, i in sorted(self.participants.items()) if i["seen"] >= cutoff
        }

    async def _wait_for(self, ready: Callable[[], bool], deadline: float | None) -> bool:
        loop = asyncio.get_running_loop()
        while not ready():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0 if remaining is None else remaining)
        return True

    async def _round(self, number: int) -> None:
        cfg, loop = self.config, asyncio.get_running_loop()
        await self._wait_for(lambda: len(self._live()) >= cfg.min_updates, None)
        enough = max(cfg.min_participants, cfg.min_updates)
        await self._wait_for(lambda: len(self._live()) >= enough, loop.time() + cfg.round_timeout)
        started = loop.time()
        deadline = started + cfg.round_timeout
        params = self.state.params
        assert params is not None
        rnd = Round(
            cfg.job,
            number,
            self.state.version,
            context_of(cfg.job, number, secrets.token_hex(8)),
            self._live(),
            params.size,
            cfg.secure,
        )
        self.current = rnd
        request = {
            "job": cfg.job,
            "round": number,
            "context": rnd.context,
            "model_version": rnd.version,
            "params": pack(params),
            "roster": {pid: b64(k) for pid, k in rnd.roster.items()},
            "coordinator_key": b64(secure.public_bytes(self.key)),
            "deadline_seconds": cfg.round_timeout,
            **cfg.training_settings(),
        }
        patience = min(ACK_TIMEOUT, cfg.round_timeout)
        acks = await asyncio.gather(
            *(self._ask(pid, TRAINING_REQUEST, request, patience) for pid in rnd.roster)
        )
        rnd.expected = {pid for pid, ack in zip(rnd.roster, acks, strict=True) if ack is not None}
        await self._wait_for(lambda: rnd.complete(cfg.update_threshold), deadline)
        rnd.closed = True
        revealed: dict[tuple[str, str], bytes] = {}
        dropped = sorted(set(rnd.roster) - set(rnd.received))
        if cfg.secure and dropped:
            dropped, revealed = await self._recover(rnd)
        for pid in dropped:  # they rejoin by registering again
            self.participants.pop(pid, None)
        reason = ""
        if len(rnd.received) < cfg.min_updates:
            reason = f"{len(rnd.received)} updates by the deadline, {cfg.min_updates} needed"
        else:
            try:
                delta, samples = rnd.aggregate(cfg.aggregation, revealed)
            except ValidationError as exc:
                reason = exc.message
        if reason:
            logger.warning("federated {}: round {} failed: {}", cfg.job, number, reason)
            await history.append(
                self.store,
                FederatedRoundFailedEvent(
                    aggregate_id=cfg.job,
                    tenant_id=self.tenant_id,
                    round=number,
                    model_version=rnd.version,
                    reason=reason,
                    participants=tuple(sorted(rnd.received)),
                ),
            )
            self.state = await history.load_job(self.store, self.tenant_id, cfg.job)
            self.current = None
            return
        epsilon = cfg.dp.epsilon_per_round if cfg.dp else None
        await self._commit(
            number,
            params + delta,
            sorted(rnd.received),
            dropped,
            samples,
            loop.time() - started,
            epsilon,
        )

    async def _ask(
        self, pid: str, kind: str, payload: dict[str, Any], timeout: float = ACK_TIMEOUT
    ) -> dict[str, Any] | None:
        try:
            return await self.mesh.send(pid, payload, type=kind, timeout=timeout)  # type: ignore[no-any-return]
        except AgentMeshError as exc:
            logger.info("federated {}: {} did not answer {}: {}", self.config.job, pid, kind, exc)
            return None

    async def _recover(self, rnd: Round) -> tuple[list[str], dict[tuple[str, str], bytes]]:
        """Ask the survivors for their pair keys with the dropped participants; a survivor
        that does not answer is dropped too (its masked update leaves the sum)."""
        revealed: dict[tuple[str, str], bytes] = {}
        for _ in range(RECOVERY_PASSES):
            dropped = sorted(set(rnd.roster) - set(rnd.received))
            asked = sorted(rnd.received)
            payload = {"job": rnd.job, "phase": "unmask", "round": rnd.number}
            answers = await asyncio.gather(
                *(
                    self._ask(
                        pid, MODEL_SYNC, {**payload, "context": rnd.context, "dropped": dropped}
                    )
                    for pid in asked
                )
            )
            silent = []
            for pid, answer in zip(asked, answers, strict=True):
                keys = self._revealed(rnd, pid, answer, dropped)
                if keys is None:
                    silent.append(pid)
                else:
                    revealed.update({(pid, d): k for d, k in keys.items()})
            if not silent:
                return dropped, revealed
            for pid in silent:
                rnd.received.pop(pid)
            revealed = {}
        rnd.received.clear()  # could not recover: the round fails
        return sorted(rnd.roster), {}

    def _revealed(
        self, rnd: Round, pid: str, answer: dict[str, Any] | None, dropped: list[str]
    ) -> dict[str, bytes] | None:
        if answer is None:
            return None
        try:
            keys = secure.open_sealed(
                self.key, rnd.roster[pid], unb64(answer.get("sealed"), "sealed"), rnd.context
            )
        except ValidationError as exc:
            logger.warning("federated {}: bad unmask answer from {}: {}", rnd.job, pid, exc)
            return None
        if len(keys) != 32 * len(dropped):
            logger.warning("federated {}: unmask answer of {} has the wrong size", rnd.job, pid)
            return None
        return {d: keys[32 * i : 32 * (i + 1)] for i, d in enumerate(dropped)}

    async def _commit(
        self,
        number: int,
        params: Vector,
        participants: list[str],
        dropped: list[str],
        samples: int,
        seconds: float,
        epsilon: float | None,
    ) -> None:
        accuracy = loss = None
        if self.evaluate is not None:
            accuracy, loss = self.evaluate(params)
        version = self.state.version + 1
        event = FederatedModelCommittedEvent(
            aggregate_id=self.config.job,
            tenant_id=self.tenant_id,
            round=number,
            model_version=version,
            params=pack(params),
            participants=tuple(participants),
            dropped=tuple(dropped),
            samples=samples,
            accuracy=accuracy,
            loss=loss,
            epsilon=epsilon,
            aggregation=self.config.aggregation,
            secure=self.config.secure,
            seconds=round(seconds, 4),
        )
        await history.append(self.store, event)
        self.state = await history.load_job(self.store, self.tenant_id, self.config.job)
        self.current = None
        logger.info(
            "federated {}: round {} -> version {} ({} participants, accuracy {})",
            self.config.job,
            number,
            version,
            len(participants),
            "-" if accuracy is None else f"{accuracy:.4f}",
        )
        announce = Envelope.create(
            MODEL_SYNC,
            {"phase": "model", "job": self.config.job, "round": number, "model_version": version},
            tenant_id=self.tenant_id,
            source=self.agent_id,
        )
        await self.mesh.transport.publish(
            subjects.event(self.tenant_id, "federated.model"), announce
        )

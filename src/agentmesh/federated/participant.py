"""A participant of a federated job: a mesh agent that trains on data it never shares.

It registers with the coordinator (and again every ``register_interval`` seconds, which
is how it rejoins after a restart of either side), trains the global model of each
``federated_training_request`` on its own samples, and sends back only its update:
sealed to the coordinator, and with secure aggregation masked so that only the sum of
all updates can be read. Asked to, it reveals its pair keys with peers that dropped out
of a round it took part in::

    participant = FederatedParticipant(mesh, "fl-p1", "fl-coord", X, y)
    mesh.add(participant)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from loguru import logger

from agentmesh.errors import AgentMeshError, ValidationError
from agentmesh.federated import secure
from agentmesh.federated.arrays import unpack
from agentmesh.federated.model import TrainConfig, param_count, train
from agentmesh.federated.privacy import DPConfig, privatize
from agentmesh.federated.protocol import (
    MODEL_SYNC,
    REGISTRATION,
    TRAINING_REQUEST,
    b64,
    unb64,
)
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext

Vector = npt.NDArray[np.float64]
Observer = Callable[[int, Vector], None]
KEPT_ROUNDS = 8


class FederatedParticipant(AgentRuntime):
    """Trains on ``X, y`` for the coordinator ``coordinator_id`` (module docstring).

    ``observe(round, contribution)`` sees the true contribution before masking and
    sealing (``[weight * delta, weight, samples]`` or ``[delta, samples]``).
    """

    def __init__(
        self,
        mesh: Any,
        agent_id: str,
        coordinator_id: str,
        X: npt.NDArray[np.float64],
        y: npt.NDArray[np.int64],
        *,
        capabilities: Any = "federated_training",
        classes: int = 10,
        register_interval: float = 2.0,
        observe: Observer | None = None,
    ) -> None:
        super().__init__(mesh, agent_id, self._handle, capabilities=capabilities, max_concurrent=16)
        if len(y) == 0 or X.shape[0] != len(y):
            raise ValidationError("a participant needs samples: X rows and y labels of one length")
        self.coordinator_id = coordinator_id
        self.X, self.y, self.classes = X, y, classes
        self.register_interval = register_interval
        self.observe = observe
        self.key = secure.new_private_key()
        self.rounds: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.model_version = -1
        self._tasks: set[asyncio.Task[None]] = set()
        self._register_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._register_task = asyncio.create_task(self._register_loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._register_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._register_task = None
        await super().stop()

    async def _register_loop(self) -> None:
        payload = {
            "participant": self.agent_id,
            "public_key": b64(secure.public_bytes(self.key)),
            "samples": len(self.y),
            "features": int(self.X.shape[1]),
            "classes": self.classes,
        }
        while True:
            try:
                await self.mesh.send(self.coordinator_id, payload, type=REGISTRATION, timeout=5.0)
            except AgentMeshError as exc:
                logger.debug("federated {}: coordinator not reached: {}", self.agent_id, exc)
            await asyncio.sleep(self.register_interval)

    async def _handle(self, task: TaskContext) -> dict[str, Any]:
        kind, p = task.envelope.type, task.payload
        if kind == TRAINING_REQUEST:
            return self._start_training(p)
        if kind == MODEL_SYNC and p.get("phase") == "unmask":
            return self._unmask(p)
        raise ValidationError(f"a participant does not handle {kind!r} messages")

    def _start_training(self, p: dict[str, Any]) -> dict[str, Any]:
        context, number = p.get("context"), p.get("round")
        if not isinstance(context, str) or not isinstance(number, int):
            raise ValidationError("a training request names its 'round' and 'context'")
        size = param_count(int(self.X.shape[1]), self.classes)
        params = unpack(p.get("params"), "float64", size)
        roster = {str(k): unb64(v, "roster key") for k, v in dict(p.get("roster") or {}).items()}
        if self.agent_id not in roster:
            raise ValidationError(f"{self.agent_id} is not in the roster of round {number}")
        dp = p.get("dp")
        job = {
            "round": number,
            "roster": roster,
            "coordinator": unb64(p.get("coordinator_key"), "coordinator_key"),
            "secure": bool(p.get("secure")),
            "weighted": p.get("aggregation") == "weighted",
            "train": TrainConfig(**{**dict(p.get("train") or {}), "seed": number}),
            "dp": DPConfig(**dp) if isinstance(dp, dict) else None,
            "job": str(p.get("job", "")),
        }
        self.rounds[context] = job
        while len(self.rounds) > KEPT_ROUNDS:
            self.rounds.popitem(last=False)
        t = asyncio.create_task(self._train_and_send(context, job, params))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return {"accepted": True, "round": number}

    def contribution(self, job: dict[str, Any], params: Vector) -> Vector:
        """The update this participant would send for ``job`` starting from ``params``."""
        local = train(params, self.X, self.y, job["train"], anchor=params)
        delta = local - params
        if job["dp"] is not None:
            delta = privatize(delta, job["dp"], np.random.default_rng())
        n = float(len(self.y))
        if not job["secure"]:
            return np.concatenate([delta, [n]])
        w = n if job["weighted"] else 1.0
        return np.concatenate([w * delta, [w, n]])

    async def _train_and_send(self, context: str, job: dict[str, Any], params: Vector) -> None:
        number = job["round"]
        vector = await asyncio.to_thread(self.contribution, job, params)
        if self.observe is not None:
            self.observe(number, vector)
        if job["secure"]:
            wire = secure.mask(
                secure.encode(vector), self.agent_id, self.key, job["roster"], context
            )
            raw = wire.astype("<u8").tobytes()
        else:
            raw = vector.astype("<f8").tobytes()
        sealed = secure.seal(self.key, job["coordinator"], raw, f"{context}|{self.agent_id}")
        update = {
            "job": job["job"],
            "phase": "update",
            "round": number,
            "context": context,
            "participant": self.agent_id,
            "sealed": b64(sealed),
        }
        try:
            answer = await self.mesh.send(
                self.coordinator_id, update, type=MODEL_SYNC, timeout=10.0
            )
        except AgentMeshError as exc:
            logger.warning(
                "federated {}: update of round {} not delivered: {}", self.agent_id, number, exc
            )
            return
        if not answer.get("accepted"):
            logger.warning(
                "federated {}: round {} refused: {}", self.agent_id, number, answer.get("reason")
            )

    def _unmask(self, p: dict[str, Any]) -> dict[str, Any]:
        context = p.get("context")
        job = self.rounds.get(context) if isinstance(context, str) else None
        if job is None:
            raise ValidationError("unknown round: nothing to unmask")
        dropped = p.get("dropped")
        if not isinstance(dropped, list) or not all(d in job["roster"] for d in dropped):
            raise ValidationError("'dropped' must list peers of that round")
        if self.agent_id in dropped:
            raise ValidationError("a participant never reveals keys for its own dropout")
        assert isinstance(context, str)
        keys = b"".join(secure.pair_key(self.key, job["roster"][d], context) for d in dropped)
        return {"sealed": b64(secure.seal(self.key, job["coordinator"], keys, context))}

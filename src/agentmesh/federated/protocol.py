"""The federated message types and the settings of a federated job.

=================================  ===================================================
``federated_model_registration``   participant -> coordinator: id, X25519 public key,
                                   sample count (sent again every few seconds)
``federated_training_request``     coordinator -> participant: round, global model,
                                   roster of public keys, training settings
``federated_model_sync``           participant -> coordinator: the sealed update
                                   (``phase: update``); coordinator -> survivor: reveal
                                   pair keys of dropped peers (``phase: unmask``);
                                   coordinator -> everyone: new version (``phase: model``)
``federated_metrics_request``      anyone -> coordinator: the job's rounds and metrics
=================================  ===================================================
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass, field
from typing import Any

from agentmesh.errors import ValidationError
from agentmesh.federated.aggregate import AGGREGATIONS
from agentmesh.federated.model import TrainConfig
from agentmesh.federated.privacy import DPConfig

REGISTRATION = "federated_model_registration"
TRAINING_REQUEST = "federated_training_request"
MODEL_SYNC = "federated_model_sync"
METRICS_REQUEST = "federated_metrics_request"
MESSAGE_TYPES = (REGISTRATION, TRAINING_REQUEST, MODEL_SYNC, METRICS_REQUEST)


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """A job: ``rounds`` model versions to commit, aggregated ``average`` or ``weighted``
    once ``update_threshold`` updates arrived (or every participant of the round
    answered), or at ``round_timeout`` with at least ``min_updates`` (defaults: weighted, 5
    and 2).

    A round starts once ``min_participants`` are registered, or after ``round_timeout``
    of waiting with at least ``min_updates`` (so a lost participant never stalls a job);
    ``round_interval`` paces the rounds (seconds between the end of one and the next).
    """

    job: str
    features: int = 64
    classes: int = 10
    rounds: int = 20
    aggregation: str = "weighted"
    update_threshold: int = 5
    min_updates: int = 2
    min_participants: int = 2
    round_timeout: float = 30.0
    round_interval: float = 0.0
    secure: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5))
    dp: DPConfig | None = None
    registration_ttl: float = 6.0

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValidationError(
                f"unknown aggregation {self.aggregation!r}: use {' or '.join(AGGREGATIONS)}"
            )
        if self.rounds < 1 or self.update_threshold < 1 or self.min_updates < 1:
            raise ValidationError("rounds, update_threshold and min_updates must be >= 1")
        if not self.round_timeout > 0 or self.round_interval < 0:
            raise ValidationError("round_timeout must be > 0 and round_interval >= 0")

    def training_settings(self) -> dict[str, Any]:
        """What a participant needs to train its part of a round."""
        return {
            "aggregation": self.aggregation,
            "secure": self.secure,
            "train": asdict(self.train),
            "dp": asdict(self.dp) if self.dp else None,
        }


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{what} is not valid base64") from None


def context_of(job: str, number: int, nonce: str) -> str:
    """What pair keys and sealed updates are bound to: one attempt of one round."""
    return f"{job}|{number}|{nonce}"

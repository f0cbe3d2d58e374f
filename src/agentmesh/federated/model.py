"""Multinomial logistic regression in numpy: the model the federation trains.

The parameters are one flat float64 vector (``weights`` of shape ``features x classes``
followed by the ``classes`` biases), which is what travels, gets masked and is averaged::

    w = init_params(64, 10)
    w = train(w, X, y, TrainConfig(epochs=2, lr=0.5), anchor=None)
    accuracy, loss = evaluate(w, X_test, y_test)

``train`` runs mini-batch SGD on the cross-entropy plus ``l2 / 2 * |W|^2``; with
``mu > 0`` and an ``anchor`` (the global model) it adds FedProx's proximal term
``mu / 2 * |w - anchor|^2``, which keeps local models close on non-IID data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agentmesh.errors import ValidationError

Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Local training: epochs over the local data, step size, batch size, L2, FedProx mu."""

    epochs: int = 2
    lr: float = 0.5
    batch_size: int = 32
    l2: float = 1e-4
    mu: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.epochs <= 1000 and self.lr > 0 and self.batch_size >= 1):
            raise ValidationError("epochs 1-1000, lr > 0 and batch_size >= 1")
        if self.l2 < 0 or self.mu < 0:
            raise ValidationError("l2 and mu must be >= 0")


def param_count(features: int, classes: int) -> int:
    return (features + 1) * classes


def init_params(features: int, classes: int) -> Vector:
    """All zeros: the convex loss needs no random start, so every run is reproducible."""
    return np.zeros(param_count(features, classes), dtype=np.float64)


def _split(w: Vector, features: int) -> tuple[Matrix, Vector]:
    classes = w.size // (features + 1)
    if classes * (features + 1) != w.size:
        raise ValidationError(f"{w.size} parameters do not fit {features} features")
    return w[: features * classes].reshape(features, classes), w[features * classes :]


def _softmax(z: Matrix) -> Matrix:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Matrix = e / e.sum(axis=1, keepdims=True)
    return out


def predict_proba(w: Vector, X: Matrix) -> Matrix:
    W, b = _split(w, X.shape[1])
    return _softmax(X @ W + b)


def evaluate(w: Vector, X: Matrix, y: Labels) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model on ``X, y``."""
    p = predict_proba(w, X)
    accuracy = float(np.mean(p.argmax(axis=1) == y))
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
    return accuracy, loss


def gradient(w: Vector, X: Matrix, y: Labels, l2: float) -> Vector:
    """Gradient of the mean cross-entropy + ``l2 / 2 * |W|^2`` at ``w``."""
    W, b = _split(w, X.shape[1])
    p = _softmax(X @ W + b)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    gW = X.T @ p + l2 * W
    return np.concatenate([gW.ravel(), p.sum(axis=0)])


def train(
    w: Vector, X: Matrix, y: Labels, config: TrainConfig, *, anchor: Vector | None = None
) -> Vector:
    """Mini-batch SGD from ``w`` on local data; returns the new parameters (a copy)."""
    if len(y) == 0:
        raise ValidationError("no training data")
    rng = np.random.default_rng(config.seed)
    w = w.astype(np.float64, copy=True)
    prox = anchor if (config.mu > 0 and anchor is not None) else None
    for _ in range(config.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            g = gradient(w, X[idx], y[idx], config.l2)
            if prox is not None:
                g += config.mu * (w - prox)
            w -= config.lr * g
    return w

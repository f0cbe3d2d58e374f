"""The handwritten-digits data that scikit-learn ships, split for federated training.

Pure functions over numpy arrays; the only I/O is reading ``digits.csv.gz`` from the
installed ``sklearn`` package (found without importing it, nothing is downloaded)::

    spec = DataSpec.parse("digits:shard=2/5,alpha=0.5")   # non-IID (Dirichlet 0.5)
    X, y = shard_of(spec)                                   # participant 2 of 5
    X_test, y_test = held_out(spec)                         # the coordinator's test set

Every split is deterministic for its seed: one train/test split (80/20, stratified by
shuffling with the seed), then the training part is dealt to ``n`` participants, either
IID (a random permutation cut in ``n`` equal parts) or non-IID (class proportions per
participant drawn from a Dirichlet(``alpha``) distribution).
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agentmesh.errors import ConfigError, ValidationError

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
TEST_FRACTION = 0.2
MIN_SHARD = 10
"""Every participant gets at least this many samples (the Dirichlet draw is redone)."""


@dataclass(frozen=True, slots=True)
class DataSpec:
    """``digits[:shard=i/n][,alpha=A][,seed=S]``: which slice of the digits a node holds.

    ``alpha`` None means IID; a number is the Dirichlet concentration (non-IID).
    ``index`` is 1-based; a coordinator's spec may omit the shard (it only evaluates).
    """

    index: int = 0
    count: int = 0
    alpha: float | None = None
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        name, _, opts = text.partition(":")
        if name.strip() != "digits":
            raise ValidationError(f"unknown data set {name!r}: only 'digits' is built in")
        index = count = 0
        alpha: float | None = None
        seed = 0
        for part in filter(None, (p.strip() for p in opts.split(","))):
            key, eq, value = part.partition("=")
            if not eq:
                raise ValidationError(f"bad data option {part!r}: use key=value")
            if key not in ("shard", "alpha", "seed"):
                raise ValidationError(f"unknown data option {key!r}: shard, alpha, seed")
            try:
                if key == "shard":
                    i, slash, n = value.partition("/")
                    if not slash:
                        raise ValueError(value)
                    index, count = int(i), int(n)
                elif key == "alpha":
                    alpha = float(value)
                else:
                    seed = int(value)
            except ValueError:
                raise ValidationError(f"bad value for data option {key!r}: {value!r}") from None
        if count and not 1 <= index <= count:
            raise ValidationError(f"shard {index}/{count}: the index must be 1-{count}")
        if alpha is not None and not alpha > 0:
            raise ValidationError(f"alpha must be > 0, got {alpha}")
        return cls(index, count, alpha, seed)

    def __str__(self) -> str:
        parts = [f"shard={self.index}/{self.count}"] if self.count else []
        if self.alpha is not None:
            parts.append(f"alpha={self.alpha:g}")
        parts.append(f"seed={self.seed}")
        return "digits:" + ",".join(parts)


def _digits_file() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the digits data set comes with scikit-learn: pip install scikit-learn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


@lru_cache(maxsize=1)
def load_digits() -> tuple[Floats, Ints]:
    """All 1797 digits: features scaled to [0, 1] (64 pixels), labels 0-9."""
    with gzip.open(_digits_file(), "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    return raw[:, :-1] / 16.0, raw[:, -1].astype(np.int64)


def train_test(seed: int = 0) -> tuple[Floats, Ints, Floats, Ints]:
    """The fixed train/test split of the digits for ``seed``."""
    X, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(len(y) * (1 - TEST_FRACTION))
    tr, te = order[:cut], order[cut:]
    return X[tr], y[tr], X[te], y[te]


def partition(y: Ints, count: int, alpha: float | None, seed: int) -> list[Ints]:
    """Indices of ``y`` dealt to ``count`` participants: IID, or Dirichlet(``alpha``)."""
    if count < 1:
        raise ValidationError("at least one participant")
    rng = np.random.default_rng(seed + 1)
    if alpha is None:
        return [np.sort(p) for p in np.array_split(rng.permutation(len(y)), count)]
    classes = np.unique(y)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(count)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(count, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for p, chunk in enumerate(np.split(idx, cuts)):
                parts[p].extend(chunk.tolist())
        if min(len(p) for p in parts) >= MIN_SHARD:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValidationError(f"cannot give {count} participants {MIN_SHARD}+ samples each")


def shard_of(spec: DataSpec) -> tuple[Floats, Ints]:
    """The training samples of participant ``spec.index`` of ``spec.count``."""
    if not spec.count:
        raise ValidationError("a participant's data needs shard=i/n")
    X, y, _, _ = train_test(spec.seed)
    idx = partition(y, spec.count, spec.alpha, spec.seed)[spec.index - 1]
    return X[idx], y[idx]


def held_out(spec: DataSpec) -> tuple[Floats, Ints]:
    """The test samples no participant holds (the coordinator evaluates on them)."""
    _, _, X_test, y_test = train_test(spec.seed)
    return X_test, y_test

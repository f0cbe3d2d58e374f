"""The pure pieces of federated learning: data splits, the model, FedAvg, DP."""

from __future__ import annotations

import numpy as np
import pytest

from agentmesh.errors import ValidationError
from agentmesh.federated.aggregate import check_update, fedavg, weights_for
from agentmesh.federated.arrays import pack, unpack
from agentmesh.federated.data import DataSpec, load_digits, partition, shard_of, train_test
from agentmesh.federated.model import TrainConfig, evaluate, gradient, init_params, train
from agentmesh.federated.privacy import DPConfig, clip, privatize


def test_digits_come_from_the_installed_package() -> None:
    X, y = load_digits()
    assert X.shape == (1797, 64)
    assert sorted(set(y.tolist())) == list(range(10))
    assert X.min() >= 0.0
    assert X.max() <= 1.0


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("digits", DataSpec()),
        ("digits:shard=2/5", DataSpec(2, 5)),
        ("digits:shard=1/4,alpha=0.5,seed=3", DataSpec(1, 4, 0.5, 3)),
    ],
)
def test_data_spec_parses(text: str, spec: DataSpec) -> None:
    assert DataSpec.parse(text) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("mnist", "unknown data set"),
        ("digits:shard=0/5", "index must be 1-5"),
        ("digits:shard=2", "bad value"),
        ("digits:alpha=-1", "alpha must be > 0"),
        ("digits:color=red", "unknown data option"),
        ("digits:shard", "key=value"),
    ],
)
def test_bad_data_specs_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        DataSpec.parse(text)


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_partitions_are_disjoint_complete_and_deterministic(alpha: float | None) -> None:
    _, y, _, _ = train_test(0)
    parts = partition(y, 5, alpha, 0)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(y)))
    assert all(len(p) >= 10 for p in parts)
    again = partition(y, 5, alpha, 0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_dirichlet_shards_are_skewed_and_iid_shards_are_not() -> None:
    def skew(alpha: float | None) -> float:
        shards = [shard_of(DataSpec(i, 5, alpha, 0))[1] for i in range(1, 6)]
        shares = [np.bincount(s, minlength=10) / len(s) for s in shards]
        return float(max(np.abs(s - 0.1).max() for s in shares))

    assert skew(None) < 0.06
    assert skew(0.5) > 0.15


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.random((20, 4)), rng.integers(0, 3, 20)
    w = rng.normal(size=(4 + 1) * 3)

    def loss(v: np.ndarray) -> float:
        return evaluate(v, X, y)[1] + 0.1 / 2 * float(np.sum(v[:12] ** 2))

    g = gradient(w, X, y, l2=0.1)
    eps = 1e-6
    numeric = [(loss(w + eps * e) - loss(w - eps * e)) / (2 * eps) for e in np.eye(w.size)]
    assert np.allclose(g, numeric, atol=1e-6)


def test_training_learns_and_fedprox_stays_near_the_anchor() -> None:
    X, y, X_test, y_test = train_test(0)
    w0 = init_params(64, 10)
    acc0 = evaluate(w0, X_test, y_test)[0]
    w = train(w0, X, y, TrainConfig(epochs=3))
    assert evaluate(w, X_test, y_test)[0] > acc0 + 0.7
    Xs, ys = shard_of(DataSpec(1, 5, 0.5, 0))
    free = train(w, Xs, ys, TrainConfig(epochs=5))
    prox = train(w, Xs, ys, TrainConfig(epochs=5, mu=1.0), anchor=w)
    assert np.linalg.norm(prox - w) < np.linalg.norm(free - w)


@pytest.mark.parametrize(
    ("alpha", "mode", "mu"),
    [
        (None, "weighted", 0.0),
        (None, "average", 0.0),
        (0.5, "weighted", 0.0),
        (0.5, "weighted", 0.01),
    ],
)
def test_fedavg_reaches_centralized_accuracy(alpha: float | None, mode: str, mu: float) -> None:
    """20 rounds of 5 local epochs on 5 shards vs 100 epochs on all the data."""
    X, y, X_test, y_test = train_test(0)
    central = evaluate(train(init_params(64, 10), X, y, TrainConfig(epochs=100)), X_test, y_test)
    shards = [shard_of(DataSpec(i, 5, alpha, 0)) for i in range(1, 6)]
    w = init_params(64, 10)
    for r in range(20):
        config = TrainConfig(epochs=5, mu=mu, seed=r)
        deltas = [train(w, Xs, ys, config, anchor=w) - w for Xs, ys in shards]
        w = w + fedavg(deltas, weights_for(mode, [len(ys) for _, ys in shards]))
    assert evaluate(w, X_test, y_test)[0] >= central[0] - 0.02


def test_fedavg_is_the_weighted_mean() -> None:
    rng = np.random.default_rng(1)
    ups = [rng.normal(size=1000).astype(np.float32) for _ in range(7)]
    ws = [float(n) for n in rng.integers(1, 100, 7)]
    expected = np.average(np.stack(ups).astype(np.float64), axis=0, weights=ws)
    assert np.allclose(fedavg(ups, ws), expected, atol=1e-12)
    assert weights_for("average", [3, 9]) == [1.0, 1.0]
    assert weights_for("weighted", [3, 9]) == [3.0, 9.0]
    with pytest.raises(ValidationError, match="unknown aggregation"):
        weights_for("median", [1])
    with pytest.raises(ValidationError, match="wrong shape"):
        fedavg([np.zeros(3), np.zeros(4)], [1.0, 1.0])
    with pytest.raises(ValidationError, match="positive sum"):
        fedavg([np.zeros(3)], [0.0])


def test_check_update_refuses_bad_vectors() -> None:
    check_update(np.zeros(5), 5)
    with pytest.raises(ValidationError, match="wrong shape"):
        check_update(np.zeros(4), 5)
    for bad in (np.nan, np.inf, -np.inf):
        v = np.zeros(5)
        v[2] = bad
        with pytest.raises(ValidationError, match="NaN or Inf"):
            check_update(v, 5)


def test_arrays_round_trip_and_refuse_mismatches() -> None:
    v = np.arange(5, dtype=np.float64)
    assert np.array_equal(unpack(pack(v), "float64", 5), v)
    with pytest.raises(ValidationError, match="wrong dtype"):
        unpack(pack(v), "uint64")
    with pytest.raises(ValidationError, match="wrong shape"):
        unpack(pack(v), "float64", 6)
    with pytest.raises(ValidationError, match="base64"):
        unpack({"dtype": "float64", "size": 1, "data": "!!"}, "float64")
    with pytest.raises(ValidationError, match="an object"):
        unpack([1, 2], "float64")


def test_dp_clips_adds_noise_and_reports_epsilon() -> None:
    v = np.full(100, 1.0)
    assert np.linalg.norm(clip(v, 2.0)) == pytest.approx(2.0)
    assert np.array_equal(clip(v * 0.01, 2.0), v * 0.01)
    dp = DPConfig(clip=1.0, noise=2.0)
    noisy = privatize(np.zeros(100_000), dp, np.random.default_rng(0))
    assert np.std(noisy) == pytest.approx(2.0, rel=0.02)
    assert dp.epsilon_per_round == pytest.approx(np.sqrt(2 * np.log(1.25 / 1e-5)) / 2.0)
    with pytest.raises(ValidationError):
        DPConfig(clip=0, noise=1)

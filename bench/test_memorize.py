"""Benchmarks of fastmem.memorize against dense / plain-NumPy baselines (not run by CI).

Run: python -m pytest bench/test_memorize.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastmem
from fastmem import memorize

pytest.importorskip("pytest_benchmark")


# ----------------------------------------------------------- Zhang et al.
def _data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=n)


def _fastmem_zhang(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmem.ConditioningWarning)  # random data: ill-conditioned
        return memorize.two_layer(X, y, projection="random", rng=0, on_ill="warn")


def _dense_zhang(X, y):
    """The same construction with the n x n matrix formed and solved densely (O(n^2) memory)."""
    from scipy.linalg import solve_triangular

    a = np.random.default_rng(0).standard_normal(X.shape[1])
    t = X @ a
    order = np.argsort(t)
    c = t[order]
    gaps = np.diff(c)
    b = np.empty_like(c)
    b[0] = c[0] - (c[-1] - c[0])
    b[1:] = c[:-1] + 0.25 * gaps
    A = np.maximum(c[:, None] - b[None, :], 0.0)
    w = solve_triangular(A, y[order], lower=True, check_finite=False)
    residual = np.abs(A @ w - y[order]).max()  # O(n^2) verification
    return w, residual


@pytest.mark.benchmark(group="zhang n=1e6 d=64 (O(n) path)")
def test_zhang_fastmem_1e6(benchmark):
    X, y = _data(1_000_000, 64)
    res = benchmark.pedantic(_fastmem_zhang, args=(X, y), rounds=3, iterations=1)
    assert res.network.widths == (64, 1_000_000, 1)


@pytest.mark.benchmark(group="zhang n=1e6 d=64 (O(n) path)")
def test_zhang_fastmem_1e6_best_of_8(benchmark):
    X, y = _data(1_000_000, 64)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastmem.ConditioningWarning)
            return memorize.two_layer(X, y, projection="best_of", tries=8, rng=0, on_ill="warn")

    benchmark.pedantic(run, rounds=3, iterations=1)


@pytest.mark.benchmark(group="zhang n=2e4 d=64")
def test_zhang_fastmem_2e4(benchmark):
    X, y = _data(20_000, 64)
    benchmark.pedantic(_fastmem_zhang, args=(X, y), rounds=5, iterations=1)


@pytest.mark.benchmark(group="zhang n=2e4 d=64")
def test_zhang_dense_scipy_2e4(benchmark):
    X, y = _data(20_000, 64)
    benchmark.pedantic(_dense_zhang, args=(X, y), rounds=2, iterations=1)


# ------------------------------------------------ Dirksen et al. set cover
def _moons(n: int):
    from sklearn.datasets import make_moons

    X, labels = make_moons(n, noise=0.05, random_state=0)
    X = X - X.mean(axis=0)
    return X / (1.01 * np.linalg.norm(X, axis=1).max()), labels


def _numpy_threshold(X, labels, width, max_bias, seed=0):
    """Plain NumPy: dense 0/1 GEMMs for the counts, boolean greedy set cover."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((width, X.shape[1]))
    b = rng.uniform(-max_bias, max_bias, size=width)
    phi = (X @ W.T + b >= 0).astype(np.float32)
    neg, pos = phi[labels == 0], phi[labels == 1]
    U = 1.0 - neg
    m = (U @ pos.T).min(axis=1)
    cover = (U @ neg.T) * 2 <= m[:, None]
    valid = m > 0
    uncovered = cover[valid].any(axis=0)
    chosen = []
    while True:
        gains = (cover & uncovered).sum(axis=1)
        gains[~valid] = 0
        j = int(gains.argmax())
        if gains[j] == 0:
            return chosen
        chosen.append(j)
        uncovered &= ~cover[j]


@pytest.mark.benchmark(group="random_threshold 10k points width 2000")
def test_threshold_fastmem(benchmark):
    X, labels = _moons(10_000)
    res = benchmark.pedantic(
        memorize.random_threshold,
        args=(X, labels),
        kwargs={"width": 2000, "max_bias": 1.0, "rng": 0},
        rounds=3,
        iterations=1,
    )
    assert res.details["width_after"] <= res.details["width_before"]


@pytest.mark.benchmark(group="random_threshold 10k points width 2000")
def test_threshold_numpy(benchmark):
    X, labels = _moons(10_000)
    benchmark.pedantic(_numpy_threshold, args=(X, labels, 2000, 1.0), rounds=2, iterations=1)

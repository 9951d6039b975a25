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


# ------------------------------------------- Dirksen et al. (authors' algorithm)
def _moons(n: int):
    """The authors' workload: make_moons(n, noise=0.05, random_state=0), in the unit ball."""
    from sklearn.datasets import make_moons

    X, labels = make_moons(n, noise=0.05, random_state=0)
    return X / np.linalg.norm(X, axis=1).max(), labels


def _authors_numpy(X, labels, width, max_bias, seed=0):
    """NumPy port of the authors' algorithm (github.com/patrickfinke/memo, algorithm.py).

    float32 dense 0/1 features as in their code, one dense matrix-vector product per
    draw, firing rule <U, z> < m. Same generator calls as fastmem: equal draws, equal
    networks (tests/test_memorize_dirksen.py checks this).
    """
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((width, X.shape[1]))
    b = rng.uniform(-max_bias, max_bias, size=width)
    phi = (X @ W.T + b >= 0).astype(np.float32)
    neg, pos = labels == 0, labels != 0
    neg_phi = phi[neg]
    cand = np.ones(int(neg.sum()), dtype=bool)
    universe = cand.copy()
    ms = []
    while cand.any() and universe.any():
        i = rng.choice(np.flatnonzero(cand))
        cand[i] = False
        U = (neg_phi[i] == 0).astype(np.float32)
        sp = phi @ U
        m = sp[pos].min()
        if m > 0:
            covered = sp[neg] < m
            cand &= ~covered
            universe &= ~covered
            ms.append(m)
    return len(ms), int(universe.sum())


_THRESHOLD_CASES = [(1_000, 500), (10_000, 2_000), (50_000, 2_000)]


@pytest.mark.parametrize(("N", "width"), _THRESHOLD_CASES)
@pytest.mark.benchmark(group="random_threshold (authors' workload, lambda=1)")
def test_threshold_fastmem(benchmark, N, width):
    X, labels = _moons(N)
    res = benchmark.pedantic(
        memorize.random_threshold,
        args=(X, labels),
        kwargs={"width": width, "max_bias": 1.0, "rng": 0},
        rounds=5,
        iterations=1,
    )
    assert res.interpolates
    benchmark.extra_info["second_layer_width"] = res.details["width_after"]


@pytest.mark.parametrize(("N", "width"), _THRESHOLD_CASES)
@pytest.mark.benchmark(group="random_threshold (authors' workload, lambda=1)")
def test_threshold_authors_numpy(benchmark, N, width):
    X, labels = _moons(N)
    k, left = benchmark.pedantic(
        _authors_numpy, args=(X, labels, width, 1.0), rounds=5, iterations=1
    )
    assert left == 0
    benchmark.extra_info["second_layer_width"] = k


def test_threshold_mean_width_20_seeds():
    """Mean second-layer width over 20 seeds, N = 50000, n = 2000: fastmem <= authors' port."""
    X, labels = _moons(50_000)
    ours, theirs = [], []
    for seed in range(20):
        res = memorize.random_threshold(X, labels, width=2000, max_bias=1.0, rng=seed)
        ours.append(res.details["width_after"])
        theirs.append(_authors_numpy(X, labels, 2000, 1.0, seed)[0])
    print(f"mean width fastmem {np.mean(ours):.2f}, authors' port {np.mean(theirs):.2f}")
    assert np.mean(ours) <= np.mean(theirs)


@pytest.mark.benchmark(group="interpolation grid (moons.json: N=1000, 50 x 51 x 50)")
def test_interpolation_grid_full(benchmark):
    X, labels = _moons(1000)
    grid = benchmark.pedantic(
        memorize.interpolation_grid,
        args=(X, labels),
        kwargs={
            "widths": np.arange(10, 510, 10),
            "max_biases": np.round(np.arange(0.0, 2.55, 0.05), 2),
            "restarts": 50,
            "rng": 0,
        },
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["seconds"] = grid.seconds
    assert grid.probability.shape == (50, 51)

"""Benchmarks of fastmem.memorize against dense / plain-NumPy baselines (not run by CI).

Run: python -m pytest bench/test_memorize.py --benchmark-only --benchmark-group-by=group -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

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


_THRESHOLD_CASES = [(1_000, 500, 30), (10_000, 2_000, 10), (50_000, 2_000, 5)]

# One contender per fresh process (no other contender's BLAS / OpenMP threads alive): a
# warm-up call (JIT caches, thread pools), then `rounds` calls with seeds 0.. (the minimum
# is reported); widths and interpolation of every call come back with the times.
_THRESHOLD_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench!r})
from test_memorize import _authors_numpy, _moons
from fastmem import memorize

who, N, width, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
X, labels = _moons(N)


def run(seed):
    if who == "fastmem":
        res = memorize.random_threshold(X, labels, width=width, max_bias=1.0, rng=seed)
        return res.details["width_after"], res.interpolates
    k, left = _authors_numpy(X, labels, width, 1.0, seed)
    return k, left == 0


run(0)
times, widths, ok = [], [], []
for seed in range(rounds):
    t = time.perf_counter()
    k, interpolates = run(seed)
    times.append(time.perf_counter() - t)
    widths.append(int(k))
    ok.append(bool(interpolates))
print(json.dumps(dict(times=times, widths=widths, interpolates=ok)))
"""


def threshold_fresh_process(who: str, N: int, width: int, rounds: int) -> dict:
    """``who`` (``"fastmem"`` or ``"authors_numpy"``) on the authors' workload in a new
    Python process; returns its per-call times, widths and interpolation flags."""
    script = _THRESHOLD_SCRIPT.format(bench=str(Path(__file__).resolve().parent))
    done = subprocess.run(
        [sys.executable, "-c", script, who, str(N), str(width), str(rounds)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.parametrize(("N", "width", "rounds"), _THRESHOLD_CASES)
def test_threshold_side_by_side(benchmark, N, width, rounds):
    """fastmem (incl. verification) and the NumPy port of the authors' algorithm, each in a
    fresh process, same seeds (same draws: same networks): min over the calls."""
    benchmark.group = "random_threshold (authors' workload, lambda=1), fresh process each"
    both = lambda: (  # noqa: E731
        threshold_fresh_process("fastmem", N, width, rounds),
        threshold_fresh_process("authors_numpy", N, width, rounds),
    )
    fm, au = benchmark.pedantic(both, rounds=1)
    info = benchmark.extra_info
    info["fastmem_min_s"] = min(fm["times"])
    info["authors_numpy_min_s"] = min(au["times"])
    info["ratio_min"] = min(au["times"]) / min(fm["times"])
    info["fastmem_mean_width"] = float(np.mean(fm["widths"]))
    info["authors_numpy_mean_width"] = float(np.mean(au["widths"]))
    print(
        f"\nN={N} n={width}: fastmem {1e3 * info['fastmem_min_s']:.2f} ms, authors' port "
        f"{1e3 * info['authors_numpy_min_s']:.2f} ms: {info['ratio_min']:.2f}x; mean width "
        f"{info['fastmem_mean_width']:.2f} vs {info['authors_numpy_mean_width']:.2f}"
    )
    assert all(fm["interpolates"]) and all(au["interpolates"])
    assert fm["widths"] == au["widths"]  # same draws, same networks


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


# The authors' grid (experiments/moons.json): N = 1000, n = 10..500, lambda = 0..2.5.
_GRID = {
    "widths": np.arange(10, 510, 10),
    "max_biases": np.round(np.arange(0.0, 2.55, 0.05), 2),
}


@pytest.mark.benchmark(group="interpolation grid (moons.json: N=1000, 50 x 51 x 50)")
def test_interpolation_grid_full(benchmark):
    """The whole grid (127,500 randomized constructions) in one call."""
    X, labels = _moons(1000)
    grid = benchmark.pedantic(
        memorize.interpolation_grid,
        args=(X, labels),
        kwargs={**_GRID, "restarts": 50, "rng": 0},
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["seconds"] = grid.seconds
    assert grid.probability.shape == (50, 51)


@pytest.mark.benchmark(group="interpolation grid (moons.json: N=1000, 50 x 51 x 50)")
def test_interpolation_grid_numpy(benchmark):
    """The same grid by the NumPy version (NumPy popcounts, a Python loop over the draws of
    each cell; tests/dirksen_reference.py). FASTMEM_BENCH_GRID_RESTARTS restarts (default
    2: about 7 s each on a loaded 2-core machine); ``seconds_for_50`` extrapolates."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import dirksen_reference

    restarts = int(os.environ.get("FASTMEM_BENCH_GRID_RESTARTS", "2"))
    X, labels = _moons(1000)
    t = time.perf_counter()
    p = benchmark.pedantic(
        dirksen_reference.grid,
        args=(X, labels, _GRID["widths"], _GRID["max_biases"], restarts),
        rounds=1,
        iterations=1,
    )
    seconds = time.perf_counter() - t
    benchmark.extra_info["restarts"] = restarts
    benchmark.extra_info["seconds_for_50"] = seconds * 50 / restarts
    assert p.shape == (50, 51)

"""Information plane: fastmem (cpp, numba) side by side with the research codes' NumPy paths.

- idnns: the IDNNs workload (4096 x 12 binary inputs, a [10,7,5,4,3]+softmax(2) tanh net,
  274 checkpoints x 6 layers, IDNNs' own setting: 30 edges over [-1, 1]) against the
  strongest NumPy baseline, the same estimator vectorized (``vectorized_plane``: per
  checkpoint and layer the codes packed into one int64 per row, one np.sort of (codes,
  label), run lengths for T and (T, Y)), and against a NumPy 2 port of IDNNs' estimator
  loop for loop (void-row np.unique, one np.unique per input x and per label y; ~250 s,
  pytest-benchmark only), same numbers.
- stress: 60,000 x 1024 float32, 30 bins, 10 classes, against one read pass
  (np.add.reduce over the same array).
- kde: 10,000 x 1024, the dense N x N logsumexp of ibsgd (NumPy/SciPy) against the tiled
  kernel; peak memory (tracemalloc) is printed for both.

Run:  python -m pytest bench/test_information.py --benchmark-columns=min,mean,rounds -s

The ratios come from ``test_fresh_processes``: each contender runs in its own fresh
Python process, one after the other, so no thread of one (OpenMP team, Numba's pool,
OpenBLAS's spinning workers) is alive while another is timed; min over the calls, and
the peak traced memory (tracemalloc) of one more call. KDE inputs: "random" (the
issue's tanh(0.01 N(0,1)) rows, where every pair is far and the float32 screen prunes
all tile pairs) and the realistic "digits-replicated" / "digits-jittered" (the 1024
tanh units of an MLP trained on sklearn digits, inputs drawn with replacement to
10,000 rows, exact copies or with N(0, 0.05^2) input noise), and the worst case "near"
(tanh(0.001 N(0,1)): every pair is within the cutoff, nothing can be pruned):

    python -m pytest bench/test_information.py -k fresh -s --benchmark-columns=min

(``-k "fresh and idnns"`` for the information plane alone.)
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import fastmem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fresh import run_script_fresh

N_CKPT = 274
WIDTHS = (12, 10, 7, 5, 4, 3, 2)


def _void(x):
    x = np.ascontiguousarray(x)
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def _ent(x):
    _, counts = np.unique(_void(x), return_counts=True)
    p = counts / float(np.sum(counts))
    return -np.sum(p * np.log2(p))


def idnns_port(snapshots, y, X, bins=30):
    """IDNNs' calc_information_sampling, ported to NumPy 2 (plane of I(X;T), I(T;Y))."""
    edges = np.linspace(-1, 1, bins).astype(np.float32)
    _, inv_x, cnt_x = np.unique(_void(X), return_inverse=True, return_counts=True)
    p_x = cnt_x / len(X)
    _, inv_y, cnt_y = np.unique(y, return_inverse=True, return_counts=True)
    p_y = cnt_y / len(y)
    ixt = np.empty((len(snapshots), len(snapshots[0])))
    ity = np.empty_like(ixt)
    for c, layers in enumerate(snapshots):
        for layer, t in enumerate(layers):
            d = edges[np.digitize(np.squeeze(t.reshape(1, -1)), edges) - 1].reshape(len(t), -1)
            h = _ent(d)
            h_x = sum(p_x[i] * _ent(d[inv_x == i]) for i in range(len(p_x)))
            h_y = sum(p_y[i] * _ent(d[inv_y == i]) for i in range(len(p_y)))
            ixt[c, layer], ity[c, layer] = h - h_x, h - h_y
    return ixt, ity


def vectorized_plane(snapshots, y, X, bins=30):
    """IDNNs' estimator (edges float32 linspace(-1, 1, bins), wrap below) vectorized in
    NumPy: the strongest plain-NumPy baseline. Per checkpoint and layer: codes by one
    np.searchsorted, packed bit_length(bins - 1) bits each into one int64 per row with
    the label below them, one np.sort, run lengths of (T, Y) and of T; inputs' rows as
    ids once (H(T|X) from (T, x) runs only when inputs repeat). I(X;T), I(T;Y) in bits."""
    edges = np.linspace(-1, 1, bins).astype(np.float32)
    n = len(y)
    bits = int(bins - 1).bit_length()
    _, yid = np.unique(y, return_inverse=True)
    ybits = max(1, int(yid.max()).bit_length())
    yid = yid.astype(np.int64)
    xr = np.ascontiguousarray(X + 0.0)
    _, xid = np.unique(xr.view(np.dtype((np.void, xr.dtype.itemsize * xr.shape[1]))).ravel(),
                       return_inverse=True)  # fmt: skip
    n_x = int(xid.max()) + 1
    h_y = _ent_counts(np.bincount(yid), n)
    h_x = _ent_counts(np.bincount(xid), n)
    shifts = {}
    ixt = np.empty((len(snapshots), len(snapshots[0])))
    ity = np.empty_like(ixt)
    for c, layers in enumerate(snapshots):
        for ell, t in enumerate(layers):
            w = t.shape[1]
            assert w * bits + ybits <= 63, "rows must pack into one int64"
            if w not in shifts:
                shifts[w] = bits * np.arange(w, dtype=np.int64)
            k = np.searchsorted(edges, t, side="right")  # = np.digitize
            k[k == 0] = bins  # below the first edge: wraps to the last one (IDNNs)
            key = ((k - 1) << shifts[w]).sum(axis=1)
            ty = np.sort((key << ybits) | yid)
            h_ty = _ent_counts(_runs(ty), n)
            h_t = _ent_counts(_runs(ty >> ybits), n)
            h_tx = h_x
            if n_x < n:
                h_tx = _ent_counts(np.unique(key * n_x + xid, return_counts=True)[1], n)
            ixt[c, ell] = h_t - (h_tx - h_x)
            ity[c, ell] = h_t - (h_ty - h_y)
    return ixt, ity


def _runs(sorted_keys):
    start = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    return np.diff(np.append(start, len(sorted_keys)))


def _ent_counts(counts, n):
    c = counts[counts > 0].astype(np.float64)
    return float(np.log2(n) - np.sum(c * np.log2(c)) / n)


def idnns_workload():
    """(snapshots, y, X) of the IDNNs workload (a fixed draw, no pytest needed)."""
    rng = np.random.default_rng(0)
    X = ((np.arange(4096)[:, None] >> np.arange(12)) & 1).astype(np.float32)
    y = rng.integers(0, 2, 4096)
    snaps = []
    for c in range(N_CKPT):
        gain = 0.3 + 4.0 * c / N_CKPT  # weights grow over training: layers saturate
        h = X
        layers = []
        for i, o in itertools.pairwise(WIDTHS):
            W = rng.normal(scale=gain / np.sqrt(i), size=(i, o)).astype(np.float32)
            z = h @ W
            if o == 2:
                e = np.exp(z - z.max(axis=1, keepdims=True))
                h = e / e.sum(axis=1, keepdims=True)
            else:
                h = np.tanh(z)
            layers.append(np.ascontiguousarray(h))
        snaps.append(layers)
    return snaps, y, X


@pytest.fixture(scope="module")
def idnns_case():
    return idnns_workload()


_IDNNS_REF: dict = {}


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "vectorized-numpy", "idnns-port"])
def test_idnns_plane(benchmark, idnns_case, impl):
    snaps, y, X = idnns_case
    benchmark.group = "information plane, IDNNs workload (274 ckpt x 6 layers, 4096 rows)"
    if impl == "idnns-port":
        fn = lambda: idnns_port(snaps, y, X)  # noqa: E731
        rounds = 1
    elif impl == "vectorized-numpy":
        fn = lambda: vectorized_plane(snaps, y, X)  # noqa: E731
        rounds = 3
    else:
        backend = impl.split("-")[1]
        if not fastmem.backends()[backend].available:
            pytest.skip(f"{backend} unavailable")
        fastmem.information_plane(snaps[:2], y, inputs=X, backend=backend)  # JIT warm-up

        def fn():
            plane = fastmem.information_plane(snaps, y, inputs=X, backend=backend)
            return plane.i_xt, plane.i_ty

        rounds = 3
    ixt, ity = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    if "ref" not in _IDNNS_REF:
        _IDNNS_REF["ref"] = idnns_port(snaps[::40], y, X)
    ref_xt, ref_ty = _IDNNS_REF["ref"]
    np.testing.assert_allclose(ixt[::40], ref_xt, atol=1e-12)
    np.testing.assert_allclose(ity[::40], ref_ty, atol=1e-12)


@pytest.fixture(scope="module")
def stress_case():
    rng = np.random.default_rng(1)
    a = np.tanh(rng.normal(size=(60_000, 1024)).astype(np.float32))
    return a, rng.integers(0, 10, 60_000)


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "read-pass"])
def test_stress(benchmark, stress_case, impl):
    a, y = stress_case
    benchmark.group = "binned_mi 60,000 x 1024 float32, 30 bins, 10 classes"
    if impl == "read-pass":
        fn = lambda: np.add.reduce(a, axis=None)  # noqa: E731
    else:
        backend = impl.split("-")[1]
        if not fastmem.backends()[backend].available:
            pytest.skip(f"{backend} unavailable")
        fastmem.binned_mi(a[:10], y[:10], mode="equal_width", backend=backend)
        fn = lambda: fastmem.binned_mi(a, y, mode="equal_width", backend=backend)  # noqa: E731
    benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)


def dense_kde_upper(t, y, var=1e-3):
    """ibsgd kde.py with NumPy/SciPy: the full N x N distance matrix (nats)."""
    from scipy.special import logsumexp

    n, d = t.shape
    x2 = np.sum(t * t, axis=1)[:, None]
    dists = x2 + x2.T - 2 * (t @ t.T)
    lprobs = logsumexp(-dists / (2 * var), axis=1) - np.log(n) - d / 2 * np.log(2 * np.pi * var)
    return d / 2 - np.mean(lprobs)


@pytest.fixture(scope="module")
def kde_case():
    rng = np.random.default_rng(2)
    t = np.tanh(rng.normal(size=(10_000, 1024)) * 0.01)
    return t, rng.integers(0, 10, 10_000)


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "dense-numpy"])
def test_kde(benchmark, kde_case, impl):
    t, y = kde_case
    benchmark.group = "kde_mi upper bound, 10,000 x 1024"
    if impl == "dense-numpy":
        fn = lambda: dense_kde_upper(t, y)  # noqa: E731
    else:
        backend = impl.split("-")[1]
        if not fastmem.backends()[backend].available:
            pytest.skip(f"{backend} unavailable")
        fastmem.kde_mi(t[:50], y[:50], backend=backend)
        fn = lambda: fastmem.kde_mi(t, y, backend=backend).h_t  # noqa: E731
    benchmark.pedantic(fn, rounds=2, iterations=1, warmup_rounds=0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\n{impl}: peak traced memory {peak / 2**20:.0f} MiB")


# ---------------------------------------------------------------- fresh processes


def kde_input(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 x 1024 KDE inputs (see the module docstring)."""
    if name == "random":
        rng = np.random.default_rng(2)
        return np.tanh(rng.normal(size=(10_000, 1024)) * 0.01), rng.integers(0, 10, 10_000)
    if name == "near":  # the worst case: every pair within the cutoff, nothing pruned
        rng = np.random.default_rng(4)
        return np.tanh(rng.normal(size=(10_000, 1024)) * 0.001), rng.integers(0, 10, 10_000)
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged after 30 epochs: fine here
        mlp = MLPClassifier(
            hidden_layer_sizes=(1024,), activation="tanh", max_iter=30, random_state=0
        ).fit(X, y)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(X), 10_000)
    Xi = X[idx]
    if name == "digits-jittered":
        Xi = Xi + rng.normal(scale=0.05, size=Xi.shape)
    return np.tanh(Xi @ mlp.coefs_[0] + mlp.intercepts_[0]), y[idx]


def _contender(workload: str, contender: str) -> tuple:
    """(callable, value of interest) of one contender on one workload."""
    if workload == "idnns":
        snaps, y, X = idnns_workload()
        if contender == "vectorized-numpy":
            return lambda: [v.tolist() for v in vectorized_plane(snaps, y, X)]
        fastmem.information_plane(snaps[:2], y, inputs=X, backend=contender)  # JIT, pools

        def plane():
            p = fastmem.information_plane(snaps, y, inputs=X, backend=contender)
            return [p.i_xt.tolist(), p.i_ty.tolist()]

        return plane
    if workload == "stress":
        rng = np.random.default_rng(1)
        a = np.tanh(rng.normal(size=(60_000, 1024)).astype(np.float32))
        y = rng.integers(0, 10, 60_000)
        if contender == "read-pass":
            return lambda: float(np.add.reduce(a, axis=None))
        fastmem.binned_mi(a[:10], y[:10], mode="equal_width", backend=contender)
        return lambda: fastmem.binned_mi(a, y, mode="equal_width", backend=contender).i_xt
    t, y = kde_input(workload.removeprefix("kde-"))
    if contender == "dense-numpy":
        return lambda: dense_kde_upper(t, y) / np.log(2)
    fastmem.kde_mi(t[:50], y[:50], backend=contender)
    return lambda: fastmem.kde_mi(t, y, backend=contender)


def _run_contender(workload: str, contender: str, rounds: int) -> dict:
    fn = _contender(workload, contender)
    times, value = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = {"times": times, "peak_mib": peak / 2**20}
    if isinstance(value, fastmem.MutualInformation):
        out["value"] = value.h_t
        out["tiles"] = value.params.get("tiles")
    else:
        out["value"] = value
    return out


def fresh_process(workload: str, contender: str, rounds: int) -> dict:
    """Run one contender in a new Python process; it has exited when this returns."""
    return run_script_fresh(str(Path(__file__).resolve()), workload, contender, rounds)


FRESH = {
    "idnns": (("vectorized-numpy", 3), ("cpp", 5), ("numba", 5)),
    "stress": (("read-pass", 7), ("cpp", 7), ("numba", 7)),
    "kde-random": (("dense-numpy", 2), ("cpp", 3), ("numba", 3)),
    "kde-digits-replicated": (("dense-numpy", 2), ("cpp", 3), ("numba", 3)),
    "kde-digits-jittered": (("dense-numpy", 2), ("cpp", 3), ("numba", 3)),
    "kde-near": (("dense-numpy", 2), ("cpp", 3), ("numba", 3)),
}


@pytest.mark.parametrize("workload", list(FRESH))
def test_fresh_processes(benchmark, workload):
    benchmark.group = f"information {workload}, fresh process per contender"
    res = {}

    def run_all():
        for contender, rounds in FRESH[workload]:
            if contender in ("cpp", "numba") and not fastmem.backends()[contender].available:
                continue
            res[contender] = fresh_process(workload, contender, rounds)

    benchmark.pedantic(run_all, rounds=1)
    base = FRESH[workload][0][0]
    for name, r in res.items():
        benchmark.extra_info[f"{name}_min_s"] = min(r["times"])
        benchmark.extra_info[f"{name}_peak_mib"] = r["peak_mib"]
        ratio = min(res[base]["times"]) / min(r["times"])
        print(
            f"\n{workload} {name}: min {min(r['times']):.4f} s, peak {r['peak_mib']:.0f} MiB,"
            f" {base}/{name} = {ratio:.2f}x, value {str(r['value'])[:60]}, tiles {r.get('tiles')},"
            f" all times {[round(x, 4) for x in r['times']]}"
        )
    for name, r in res.items():
        if name != base and workload == "idnns":  # the same plane, to 1e-12 bits
            np.testing.assert_allclose(r["value"], res[base]["value"], atol=1e-12)
        elif name != base and workload != "stress":
            assert r["value"] == pytest.approx(res[base]["value"], rel=1e-10, abs=1e-10)


if __name__ == "__main__":
    print(json.dumps(_run_contender(sys.argv[1], sys.argv[2], int(sys.argv[3]))))

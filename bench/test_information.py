"""Information plane: fastmem (cpp, numba) side by side with the research codes' NumPy paths.

- idnns: the IDNNs workload (4096 x 12 binary inputs, a [10,7,5,4,3]+softmax(2) tanh net,
  274 checkpoints x 6 layers) against a NumPy 2 port of IDNNs' estimator (void-row
  np.unique, one np.unique per input x and per label y), same numbers.
- stress: 60,000 x 1024 float32, 30 bins, 10 classes, against one read pass
  (np.add.reduce over the same array).
- kde: 10,000 x 1024, the dense N x N logsumexp of ibsgd (NumPy/SciPy) against the tiled
  kernel; peak memory (tracemalloc) is printed for both.

Run:  python -m pytest bench/test_information.py --benchmark-columns=min,mean,rounds -s
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import fastmem

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


@pytest.fixture(scope="module")
def idnns_case():
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


_IDNNS_REF: dict = {}


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "idnns-port"])
def test_idnns_plane(benchmark, idnns_case, impl):
    snaps, y, X = idnns_case
    benchmark.group = "information plane, IDNNs workload (274 ckpt x 6 layers, 4096 rows)"
    if impl == "idnns-port":
        fn = lambda: idnns_port(snaps, y, X)  # noqa: E731
        rounds = 1
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

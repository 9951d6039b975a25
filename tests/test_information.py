"""fastmem.information against plain-NumPy ports of the IDNNs / ibsgd estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import on_backend_device

import fastmem
from fastmem import InputError
from fastmem import information as info

# ----------------------------------------------------------------------------- references


def _void_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def _probs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, inverse, counts = np.unique(_void_rows(x), return_inverse=True, return_counts=True)
    return counts / float(np.sum(counts)), inverse.ravel()


def _h(p: np.ndarray) -> float:
    return float(-np.sum(p * np.log2(p)))


def idnns_reference(t, labels, inputs=None, bins=30, lo=-1.0, hi=1.0):
    """A NumPy 2 port of IDNNs' calc_information_sampling (void-row np.unique, log2)."""
    edges = np.linspace(lo, hi, bins).astype(np.float32)
    digitized = edges[np.digitize(np.squeeze(t.reshape(1, -1)), edges) - 1].reshape(len(t), -1)
    return _mi_from_discrete(digitized, labels, inputs)


def ibsgd_reference(t, labels, inputs=None, binsize=0.07):
    """ibsgd's simplebinmi.bin_calc_information2: floor codes (converted to bits)."""
    return _mi_from_discrete(np.floor(t / binsize).astype(np.int64), labels, inputs)


def _mi_from_discrete(d, labels, inputs):
    p_t, _ = _probs(d)
    h_t = _h(p_t)
    x = np.arange(len(d))[:, None] if inputs is None else inputs
    p_x, inv_x = _probs(x)
    h_t_x = sum(p_x[i] * _h(_probs(d[inv_x == i])[0]) for i in range(len(p_x)))
    p_y, inv_y = _probs(np.asarray(labels)[:, None])
    h_t_y = sum(p_y[i] * _h(_probs(d[inv_y == i])[0]) for i in range(len(p_y)))
    return h_t - h_t_x, h_t - h_t_y, h_t


def equal_width_reference(t, labels, bins, lo, hi):
    codes = np.clip(np.floor((t.astype(np.float64) - lo) * (bins / (hi - lo))), 0, bins - 1)
    return _mi_from_discrete(codes.astype(np.int64), labels, None)


def kde_reference(t, labels, var, bound):
    """Dense N x N Kolchinsky-Tracey bounds (ibsgd kde.py), in bits."""
    t = t.astype(np.float64)
    n, d = t.shape

    def h_kl(x, v):
        dists = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        lse = np.log(np.exp(-dists / (2 * v)).sum(1))
        lprobs = lse - np.log(len(x)) - d / 2 * np.log(2 * np.pi * v)
        return d / 2 - lprobs.mean()

    def h(x):
        return h_kl(x, var) if bound == "upper" else h_kl(x, 4 * var) + np.log(0.25) * d / 2

    ht = h(t)
    classes, counts = np.unique(labels, return_counts=True)
    hy = sum(c / n * h(t[labels == k]) for k, c in zip(classes, counts, strict=True))
    hx = d / 2 * (np.log(2 * np.pi * var) + 1)
    return (ht - hx) / np.log(2), (ht - hy) / np.log(2), ht / np.log(2)


def _acts(rng, n, w, kind):
    z = rng.normal(scale=2.0, size=(n, w))
    if kind == "tanh":
        return np.tanh(z).astype(np.float32)
    return np.maximum(z, 0.0).astype(np.float32)  # ReLU: values far above 1


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("kind", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_idnns_matches_port(backend, kind, dtype):
    rng = np.random.default_rng(1)
    t = _acts(rng, 300, 3, kind).astype(dtype)
    t[:5] = [[-1.5, 1.0, -1.0], [2.0, -0.99, 0.5], [-7.0, 3.0, 0.0], [-0.0, 0.0, 1.2], [1, 1, 1]]
    y = rng.integers(0, 3, 300)
    x = rng.integers(0, 40, (300, 1))
    for inputs in (None, x):
        mi = fastmem.binned_mi(on_backend_device(t, backend), y, inputs=inputs, backend=backend)
        ixt, ity, ht = idnns_reference(t, y, inputs)
        assert mi.i_xt == pytest.approx(ixt, abs=1e-12)
        assert mi.i_ty == pytest.approx(ity, abs=1e-12)
        assert mi.h_t == pytest.approx(ht, abs=1e-12)
        assert mi.backend == backend


def test_idnns_wraps_below_range(backend):
    # -1.5 lands on the top edge, the same bin as 1.0: one distinct row.
    t = np.array([[-1.5], [1.0], [1.0], [-1.5]])
    mi = fastmem.binned_mi(t, [0, 0, 1, 1], backend=backend)
    assert mi.n_distinct == 1
    clean = fastmem.binned_mi(t, [0, 0, 1, 1], mode="equal_width", backend=backend)
    assert clean.n_distinct == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ibsgd_matches_floor_reference(backend, dtype):
    rng = np.random.default_rng(2)
    t = _acts(rng, 400, 4, "relu").astype(dtype) - dtype(0.3)
    y = rng.integers(0, 2, 400)
    mi = fastmem.binned_mi(t, y, mode="ibsgd", backend=backend)
    ixt, ity, ht = ibsgd_reference(t, y)
    assert (mi.i_xt, mi.i_ty, mi.h_t) == pytest.approx((ixt, ity, ht), abs=1e-12)
    assert math.isnan(mi.empty_bin_fraction)
    assert mi.to_dict()["empty_bin_fraction"] is None


def test_equal_width_and_adaptive(backend):
    rng = np.random.default_rng(3)
    t = rng.normal(size=(500, 5))
    y = rng.integers(0, 4, 500)
    mi = fastmem.binned_mi(t, y, mode="equal_width", bins=8, range=(-2, 2), backend=backend)
    assert (mi.i_xt, mi.i_ty) == pytest.approx(equal_width_reference(t, y, 8, -2, 2)[:2], abs=1e-12)
    ad = fastmem.binned_mi(t, y, mode="adaptive_max", bins=8, backend=backend)
    ref = equal_width_reference(t, y, 8, t.min(), t.max())
    assert (ad.i_xt, ad.i_ty) == pytest.approx(ref[:2], abs=1e-12)


def test_equal_mass(backend):
    rng = np.random.default_rng(4)
    t = rng.exponential(size=(600, 3))
    y = rng.integers(0, 2, 600)
    mi = fastmem.binned_mi(t, y, mode="equal_mass", bins=6, backend=backend)
    edges = np.quantile(t.ravel(), np.linspace(0, 1, 7)[1:-1])
    codes = np.searchsorted(edges, t, side="right")
    assert (mi.i_xt, mi.i_ty) == pytest.approx(_mi_from_discrete(codes, y, None)[:2], abs=1e-12)
    assert mi.empty_bin_fraction == pytest.approx(0.0)


def test_empty_bin_fraction(backend):
    t = np.array([[0.1, -0.9], [0.1, 0.9], [0.6, 0.9]])
    mi = fastmem.binned_mi(t, [0, 1, 1], mode="equal_width", bins=4, backend=backend)
    # unit 0 hits bins {2, 3}, unit 1 bins {0, 3}: 4 of 8 cells
    assert mi.empty_bin_fraction == pytest.approx(0.5)


def test_collisions_are_resolved_exactly(backend, monkeypatch):
    """All keys forced equal: the exact comparison must split the rows again."""
    rng = np.random.default_rng(5)
    t = np.tanh(rng.normal(size=(200, 3)) * 3)
    y = rng.integers(0, 3, 200)
    want = fastmem.binned_mi(t, y, backend=backend)
    monkeypatch.setattr(info, "_fold_keys", lambda k: k * np.uint64(0))
    got = fastmem.binned_mi(t, y, backend=backend, inputs=rng.integers(0, 9, 200))
    got0 = fastmem.binned_mi(t, y, backend=backend)
    assert (got0.i_xt, got0.i_ty, got0.n_distinct) == (want.i_xt, want.i_ty, want.n_distinct)
    ref = idnns_reference(t, y, None)
    assert got0.i_ty == pytest.approx(ref[1], abs=1e-12)
    assert got.h_t == pytest.approx(want.h_t, abs=1e-12)


def test_negative_zero_is_zero(backend):
    t = np.array([[-0.0, 1e-300], [0.0, 1e-300]])
    for mode in info.MODES:
        mi = fastmem.binned_mi(t, [0, 1], mode=mode, backend=backend)
        assert mi.n_distinct == 1, mode


# ----------------------------------------------------------------------------- known cases


def test_known_cases(backend):
    n = 64
    y = np.arange(n) % 4
    distinct = np.linspace(-0.99, 0.99, n)[:, None]
    mi = fastmem.binned_mi(distinct, y, mode="equal_width", bins=1000, backend=backend)
    assert mi.i_xt == pytest.approx(math.log2(n), abs=1e-12) and mi.saturation == 1.0
    const = fastmem.binned_mi(np.full((n, 3), 0.3), y, backend=backend)
    assert (const.i_xt, const.i_ty, const.n_distinct) == (0.0, 0.0, 1)
    onehot = np.eye(4)[y]
    hy = math.log2(4)
    ty = fastmem.binned_mi(onehot, y, mode="equal_width", bins=2, range=(0, 1), backend=backend)
    assert ty.i_ty == pytest.approx(hy, abs=1e-12)


def test_data_processing(backend):
    """Layer 2 = a deterministic function of layer 1's codes: I(X;T2) <= I(X;T1) etc."""
    rng = np.random.default_rng(6)
    t1 = rng.uniform(-1, 1, (500, 4))
    codes = np.clip(np.floor((t1 + 1) * 5), 0, 9)
    centres = -1 + (codes + 0.5) / 5
    t2 = np.tanh(centres @ rng.normal(size=(4, 2)))  # a function of t1's bins
    y = rng.integers(0, 3, 500)
    mi = fastmem.binned_mi([t1, t2], y, mode="equal_width", bins=10, backend=backend)
    assert mi.i_xt[1] <= mi.i_xt[0] + 1e-12
    assert mi.i_ty[1] <= mi.i_ty[0] + 1e-12


@given(
    n=st.integers(2, 80),
    w=st.integers(1, 70),
    bins=st.integers(2, 40),
    classes=st.integers(1, 5),
    seed=st.integers(0, 2**31),
    mode=st.sampled_from(["idnns", "equal_width"]),
)
def test_hypothesis_shapes(n, w, bins, classes, seed, mode):
    rng = np.random.default_rng(seed)
    t = (rng.normal(size=(n, w)) * 1.5).astype(np.float32)
    y = rng.integers(0, classes, n)
    results = [fastmem.binned_mi(t, y, mode=mode, bins=bins, backend=b) for b in _cpu_backends()]
    if mode == "idnns":
        ref = idnns_reference(t, y, None, bins=bins)
    else:
        ref = equal_width_reference(t, y, bins, -1.0, 1.0)
    for r in results:
        assert (r.i_xt, r.i_ty, r.h_t) == pytest.approx(ref, abs=1e-12)
    assert len({(r.i_xt, r.i_ty, r.n_distinct, r.empty_bin_fraction) for r in results}) == 1


@pytest.mark.parametrize(
    "kind, n_codes",
    # 32 / 33 / 64 / 65 codes: the C++ fast path's 32-bit, 64-bit and per-cell occupancy
    [(0, 30), (1, 7), (2, 30), (2, 32), (2, 33), (2, 64), (2, 65), (2, 300), (3, 0)],
)
def test_keys_identical_across_cpu_backends(kind, n_codes):
    """The C++ fast path (uniform byte codes) and generic path hash like Numba's."""
    import fastmem._numba as nk

    core = pytest.importorskip("fastmem._core")
    rng = np.random.default_rng(14)
    a = (rng.normal(size=(40, 301)) * 2).astype(np.float32)
    edges = np.sort(rng.normal(size=max(1, n_codes - 1))) if kind < 2 else np.empty(0)
    keys = []
    for mod in (core, nk):
        k1, k2 = np.empty(40, np.uint64), np.empty(40, np.uint64)
        occ = np.zeros(4 * 301 * n_codes if kind != 3 else 0, np.uint8)
        bad = np.zeros(1, np.int64)
        mod.bin_keys(a, kind, edges, -1.5, n_codes / 3.0, n_codes, 10, k1, k2, occ, bad)
        keys.append((k1, k2, occ))
    for x, z in zip(keys[0], keys[1], strict=True):
        np.testing.assert_array_equal(x, z)


def _row_keys_reference(codes, segments, width):
    """information.hpp's row keys of byte codes with NumPy uint64 arithmetic (wrapping):
    eight codes a little-endian word (zero padded), splitmix64 / murmur3 fmix64 chains
    seeded by the segment, the width folded in last."""
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    f1, f2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)

    def mix(z):
        z = z ^ (z >> np.uint64(30))
        z = z * m1
        z = z ^ (z >> np.uint64(27))
        z = z * m2
        return z ^ (z >> np.uint64(31))

    def fmix(z):
        z = z ^ (z >> np.uint64(33))
        z = z * f1
        z = z ^ (z >> np.uint64(33))
        z = z * f2
        return z ^ (z >> np.uint64(33))

    rows = codes.shape[0]
    padded = np.zeros((rows, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = codes
    words = padded.view("<u8").astype(np.uint64)
    with np.errstate(over="ignore"):
        seg = segments.astype(np.uint64)
        h1 = mix(np.uint64(0x243F6A8885A308D3) ^ seg)
        h2 = fmix(np.uint64(0x13198A2E03707344) ^ seg)
        for w in words.T:
            h1 = mix(h1 ^ w)
            h2 = fmix((h2 ^ w) * np.uint64(0x9E3779B97F4A7C15))
        return mix(h1 ^ np.uint64(width)), fmix(h2 ^ np.uint64(width))


@pytest.mark.parametrize(
    "kind, n_edges, n_codes",
    # the byte path up to 256 codes (wrap: n_edges codes; edges: n_edges + 1), the generic
    # path beyond, and where n_codes leaves room for codes the edges cannot give
    [(0, 1, 1), (0, 30, 30), (0, 256, 256), (0, 257, 257), (1, 1, 2), (1, 6, 7), (1, 255, 256),
     (1, 256, 257), (0, 5, 40), (1, 5, 40)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_keys_agree_across_cpu_backends(kind, n_edges, n_codes, dtype):
    """bin_keys of the edge kinds (in C++ byte codes by count_le's halvings over a block of
    values) equals Numba's bit for bit, and a NumPy reference (codes by searchsorted, keys
    by information.hpp's hashes): values on the edges, -0.0 at a 0.0 edge, NaN and +-Inf
    (code 0, counted), rows across the 256-value blocks, occupancy; unsorted edges: Numba."""
    import fastmem._numba as nk

    core = pytest.importorskip("fastmem._core")
    rng = np.random.default_rng(100 * kind + n_edges)
    rows, width, per_seg = 30, 301, 10
    edges = np.sort(rng.normal(size=n_edges).astype(dtype).astype(np.float64))
    edges[n_edges // 2] = 0.0
    edges.sort()
    a = (rng.normal(size=(rows, width)) * 1.5).astype(dtype)
    a[0, :n_edges] = edges[: min(n_edges, width)]
    a[1, :6] = [-0.0, 0.0, np.nan, np.inf, -np.inf, edges[0]]
    a[2, 260:] = edges[-1]
    for sort in (True, False):
        e = edges if sort else np.ascontiguousarray(rng.permutation(edges))
        got = []
        for mod in (core, nk):
            k1, k2 = np.empty(rows, np.uint64), np.empty(rows, np.uint64)
            occ = np.zeros((rows // per_seg) * width * n_codes, np.uint8)
            bad = np.zeros(1, np.int64)
            mod.bin_keys(a, kind, e, 0.0, 0.0, n_codes, per_seg, k1, k2, occ, bad)
            got.append((k1, k2, occ, bad))
        for x, z in zip(*got, strict=True):
            np.testing.assert_array_equal(x, z)
        if not sort:
            continue
        k = np.searchsorted(edges, a.astype(np.float64), side="right")
        code = np.where(k > 0, k - 1, n_edges - 1) if kind == 0 else k
        code = np.where(np.isfinite(a), code, 0)
        assert got[0][3][0] == 3
        occ = np.zeros((rows // per_seg, width, n_codes), np.uint8)
        seg = np.arange(rows) // per_seg
        occ[seg[:, None], np.arange(width)[None, :], code] = 1
        np.testing.assert_array_equal(got[0][2], occ.ravel())
        if n_codes <= 256:
            k1, k2 = _row_keys_reference(code.astype(np.uint8), seg, width)
            np.testing.assert_array_equal(got[0][0], k1)
            np.testing.assert_array_equal(got[0][1], k2)


@pytest.mark.parametrize("n_codes", [2, 30, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_uniform_fast_path_equals_generic(n_codes, dtype):
    """Numba's uniform byte-code kernel gives the generic per-value kernel's keys,
    occupancy and non-finite count (NaN, Inf, -0.0, ragged blocks, several segments)."""
    from fastmem._numba import information as nbi

    rng = np.random.default_rng(15)
    a = (rng.normal(size=(60, 301)) * 2).astype(dtype)
    a[3, 7], a[5, 300], a[9, 0], a[10, 5] = np.nan, np.inf, -np.inf, -0.0
    out = []
    for fast in (True, False):
        k1, k2 = np.empty(60, np.uint64), np.empty(60, np.uint64)
        occ = np.zeros(3 * 301 * n_codes, np.uint8)
        if fast:
            bad = nbi._uniform_byte_keys(a, -1.5, n_codes / 3.0, n_codes, 20, k1, k2, occ, True, 7)
        else:
            bad = nbi._bin_keys(
                a, 2, np.empty(0), -1.5, n_codes / 3.0, dtype(n_codes / 3.0), n_codes, 20, k1,
                k2, occ, True,
            )  # fmt: skip
        out.append((k1, k2, occ, np.array([bad])))
    for x, z in zip(out[0], out[1], strict=True):
        np.testing.assert_array_equal(x, z)
    assert out[0][3][0] == 3


def _cpu_backends():
    return [b for b in ("cpp", "numba") if fastmem.backends()[b].available]


# ----------------------------------------------------------------------------- KDE


def test_kde_far_apart_rows_and_values_past_float64():
    # rows 1e100 apart: every row its own cluster (I(X;T) = log2 n), with no warning;
    # values whose squared distances overflow float64 are refused, not estimated as 0 bits
    import warnings

    T = np.random.default_rng(0).normal(size=(40, 5))
    y = np.arange(40) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mi = fastmem.kde_mi(T * 1e100, y)
    assert mi.i_xt == pytest.approx(math.log2(40), abs=1e-9)
    with pytest.raises(InputError, match=r"^activations: values up to .* overflow float64"):
        fastmem.kde_mi(T * 1e200, y)


@pytest.mark.parametrize("bound", ["upper", "lower"])
def test_kde_matches_dense(backend, bound, monkeypatch):
    monkeypatch.setattr(info, "_KDE_TILE", 37)  # several tiles, ragged edges
    rng = np.random.default_rng(7)
    t = np.tanh(rng.normal(size=(150, 6)))
    y = rng.integers(0, 3, 150)
    mi = fastmem.kde_mi(on_backend_device(t, backend), y, noise_var=0.05, bound=bound)
    ref = kde_reference(t, y, 0.05, bound)
    assert (mi.i_xt, mi.i_ty, mi.h_t) == pytest.approx(ref, rel=1e-10, abs=1e-10)


def _clusters_and_noise(n=200, d=30, seed=11):
    """A tight cluster far out along one axis (near pairs; the projection bound skips
    its pairs with the rest) and wide noise (every pair far, but only the float32
    screen can tell)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(scale=0.5, size=(n, d))
    near = rng.random(n) < 0.4
    t[near] = rng.normal(scale=0.05, size=(int(near.sum()), d))
    t[near, 0] += 10.0
    return t, rng.integers(0, 3, n)


@pytest.mark.parametrize("bound", ["upper", "lower"])
def test_kde_pruned_matches_dense(backend, bound, monkeypatch):
    monkeypatch.setattr(info, "_KDE_TILE", 37)
    t, y = _clusters_and_noise()
    mi = fastmem.kde_mi(on_backend_device(t, backend), y, noise_var=0.01, bound=bound)
    tiles = mi.params["tiles"]
    assert tiles["skipped_bound"] > 0 and tiles["skipped_screen"] > 0  # both prunings act
    assert tiles["skipped_bound"] + tiles["skipped_screen"] < tiles["tiles"]
    ref = kde_reference(t, y, 0.01, bound)
    assert (mi.i_xt, mi.i_ty, mi.h_t) == pytest.approx(ref, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("bound", ["upper", "lower"])
def test_kde_sparse_tiles_match_dense(backend, bound, monkeypatch):
    """Near-copies (few near pairs per tile): exact values from float64 dot products."""
    monkeypatch.setattr(info, "_KDE_TILE", 37)
    monkeypatch.setattr(info, "_KDE_SPARSE", 0.2)
    rng = np.random.default_rng(13)
    base = rng.normal(size=(60, 29))
    t = np.repeat(base, 3, axis=0) + rng.normal(scale=0.02, size=(180, 29))
    t = t[rng.permutation(180)]
    y = rng.integers(0, 3, 180)
    mi = fastmem.kde_mi(on_backend_device(t, backend), y, noise_var=0.01, bound=bound)
    assert mi.params["tiles"]["sparse"] > 0
    ref = kde_reference(t, y, 0.01, bound)
    assert (mi.i_xt, mi.i_ty, mi.h_t) == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_kde_sparse_tiles_identical_across_cpu_backends(monkeypatch):
    from support import backends_to_compare

    monkeypatch.setattr(info, "_KDE_TILE", 37)
    monkeypatch.setattr(info, "_KDE_SPARSE", 0.2)
    rng = np.random.default_rng(14)
    t = np.repeat(rng.normal(size=(50, 31)), 3, axis=0) + rng.normal(scale=0.02, size=(150, 31))
    y = rng.integers(0, 2, 150)
    r = [
        fastmem.kde_mi(t, y, noise_var=0.01, backend=b)
        for b in backends_to_compare(_cpu_backends())
    ]
    assert r[0].params["tiles"]["sparse"] > 0
    assert len({(x.i_xt, x.i_ty, x.h_t) for x in r}) == 1


@given(
    n=st.integers(2, 60),
    d=st.integers(1, 12),
    log_var=st.floats(-3, 1),
    spread=st.floats(-1.0, 0.5),
    dups=st.booleans(),
    tile=st.integers(1, 25),
    sparse=st.sampled_from([0.0, 0.01, 0.3, 1.0]),
    seed=st.integers(0, 2**31),
)
def test_kde_any_pruning_matches_dense(backend, n, d, log_var, spread, dups, tile, sparse, seed):
    """Whatever the tiles, the pruning and the sparse threshold: the dense values.

    (Scales kept where the Gram form n_i + n_j - 2 g_ij, used by every tiled path and by
    ibsgd, loses less than 1e-10 to cancellation: scale |t|^2 eps << 1e-10.)"""
    import unittest.mock

    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, d)) * 10.0**spread
    if dups:
        t[rng.integers(0, n, n // 2)] = t[0]
    y = rng.integers(0, 3, n)
    var = 10.0**log_var
    with (
        unittest.mock.patch.object(info, "_KDE_TILE", tile),
        unittest.mock.patch.object(info, "_KDE_SPARSE", sparse),
    ):
        mi = fastmem.kde_mi(on_backend_device(t, backend), y, noise_var=var)
    ref = kde_reference(t, y, var, "upper")
    assert (mi.i_xt, mi.i_ty, mi.h_t) == pytest.approx(ref, rel=1e-10, abs=1e-9)


def test_kde_unprunable_matches_dense(backend, monkeypatch):
    monkeypatch.setattr(info, "_KDE_TILE", 37)
    t, y = _clusters_and_noise(seed=12)
    mi = fastmem.kde_mi(on_backend_device(t, backend), y, noise_var=5.0)  # all terms count
    tiles = mi.params["tiles"]
    assert tiles["skipped_bound"] == tiles["skipped_screen"] == 0
    ref = kde_reference(t, y, 5.0, "upper")
    assert (mi.i_xt, mi.i_ty, mi.h_t) == pytest.approx(ref, rel=1e-10, abs=1e-10)


@given(
    n=st.integers(2, 40),
    d=st.integers(1, 70),
    log_scale=st.floats(-12, 12),
    dup=st.floats(0.0, 1.0),
    q=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
)
def test_kde_screen_never_claims_a_near_pair_far(backend, n, d, log_scale, dup, q, seed):
    """The float32 screen's bound against distances taken directly in float64: rows
    of large norm at tiny distances (where float32 Gram entries cancel) included."""
    from fastmem import select_backend

    be = select_backend("cuda" if backend == "cuda" else "cpu", backend)
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, d)) * 10.0**log_scale
    copies = rng.random(n) < dup  # near-duplicates of row 0 (offset on the scale of t)
    t[copies] = t[0] + rng.normal(size=(int(copies.sum()), d)) * 10.0**log_scale * 1e-6
    dist = ((t[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    off = ~np.eye(n, dtype=bool)
    cutoff = float(np.quantile(dist[off], q))
    norms = np.einsum("ij,ij->i", t, t)
    lengths = np.sqrt(norms) * (1.0 + 1e-12)
    t32 = t.astype(np.float32)
    g32 = np.ascontiguousarray(t32 @ t32.T)
    count = np.zeros(1, dtype=np.int64)
    err = 1.01 * (d + 2) * 2.0**-24
    dev = lambda x: on_backend_device(x, backend)  # noqa: E731
    count = dev(count)
    be.kernels.kde_screen(
        dev(g32), dev(norms), dev(norms), dev(lengths), dev(lengths), err, cutoff, 0, 0, count
    )
    near = int(count[0])
    assert near >= int((dist[off] <= cutoff).sum())
    assert near <= int(off.sum())


@pytest.mark.parametrize("columns", [True, False])
@pytest.mark.parametrize("offsets", [(0, 0), (70, 0), (0, 40)])
def test_kde_screen_and_sparse_tile_kernels_agree_across_backends(backend, columns, offsets):
    """kde_screen and kde_sparse_tile (in C++ the bound evaluated 64 entries at a time into
    bytes, near entries visited by their bits, an AVX2 build picked at run time) equal
    Numba's bit for bit, the screen's count equals the bound written out in NumPy, and the
    sparse sums the kernel values of exactly the near entries (plus the global diagonal,
    whatever its bound): blocks of 64 columns and a tail, the diagonal crossing a block
    boundary, NaN Gram entries (never far)."""
    from support import to_numpy

    from fastmem import select_backend

    rng = np.random.default_rng(sum(offsets) + columns)
    rows, cols, d = 150, 130, 9
    base = rng.normal(size=(40, d))
    a = base[rng.integers(0, 40, rows)] + rng.normal(scale=0.05, size=(rows, d))
    b = base[rng.integers(0, 40, cols)] + rng.normal(scale=0.05, size=(cols, d))
    g32 = a.astype(np.float32) @ b.astype(np.float32).T
    g32[3, [5, 64, 129]] = np.nan
    na, nb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    la, lb = np.sqrt(na) * (1.0 + 1e-12), np.sqrt(nb) * (1.0 + 1e-12)
    ya, yb = rng.integers(0, 3, rows), rng.integers(0, 3, cols)
    err, cutoff, scale = 1.01 * (d + 2) * 2.0**-24, 0.05, 4.0
    ro, co = offsets
    lower = (na[:, None] + nb[None, :]) * (1.0 - 1e-12) - 2.0 * g32.astype(np.float64)
    lower = lower - 2.0 * err * la[:, None] * lb[None, :]
    near = ~(lower > cutoff)
    diag = (ro + np.arange(rows))[:, None] == (co + np.arange(cols))[None, :]
    assert 0 < near.sum() < near.size // 4 and diag.any()
    want_count = int((near & ~diag).sum())
    keep = near | diag
    dist = np.maximum(na[:, None] + nb[None, :] - 2.0 * (a @ b.T), 0.0)
    e = np.where(diag, 1.0, np.exp(-dist * scale)) * keep
    same = ya[:, None] == yb[None, :]
    want_sums = [e.sum(1), (e * same).sum(1), e.sum(0), (e * same).sum(0)]
    outs = {}
    for name in dict.fromkeys(("numba", backend)):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels

        def dev(x, name=name):
            return on_backend_device(np.ascontiguousarray(x), name)

        count = dev(np.zeros(1, dtype=np.int64))
        k.kde_screen(dev(g32), dev(na), dev(nb), dev(la), dev(lb), err, cutoff, ro, co, count)
        sums = [dev(np.full(n, 0.25)) for n in (rows, rows, cols, cols)]
        k.kde_sparse_tile(
            dev(g32), dev(a), dev(b), dev(na), dev(nb), dev(la), dev(lb), dev(ya), dev(yb),
            err, cutoff, scale, ro, co, *sums, columns,
        )  # fmt: skip
        outs[name] = [int(to_numpy(count)[0])] + [to_numpy(x) for x in sums]
    assert outs[backend][0] == want_count
    for x, y in zip(outs["numba"][1:], outs[backend][1:], strict=True):
        np.testing.assert_array_equal(x, y)
    got = outs[backend][1:]
    for i, want in enumerate(want_sums):
        if i >= 2 and not columns:
            np.testing.assert_array_equal(got[i], 0.25)
        else:
            np.testing.assert_allclose(got[i], 0.25 + want, rtol=1e-12)


def test_kde_lower_below_upper(backend):
    rng = np.random.default_rng(8)
    t = rng.normal(size=(120, 3)) * 0.2
    y = rng.integers(0, 2, 120)
    up = fastmem.kde_mi(t, y, bound="upper", noise_var=0.01, backend=backend)
    lo = fastmem.kde_mi(t, y, bound="lower", noise_var=0.01, backend=backend)
    assert lo.h_t <= up.h_t and lo.i_xt <= up.i_xt


def test_kde_backends_agree():
    rng = np.random.default_rng(9)
    t = rng.normal(size=(90, 5))
    y = rng.integers(0, 2, 90)
    from support import backends_to_compare

    r = [fastmem.kde_mi(t, y, backend=b).to_dict() for b in backends_to_compare(_cpu_backends())]
    for a in r[1:]:
        for key in ("i_xt", "i_ty", "h_t"):
            assert a[key] == pytest.approx(r[0][key], rel=1e-12)


# ----------------------------------------------------------------------------- plane


def test_plane_equals_per_checkpoint(backend, monkeypatch):
    monkeypatch.setattr(info, "_CHUNK_BYTES", 3000)  # chunks of a few checkpoints
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, 100)
    snaps = [
        [np.tanh(s * rng.normal(size=(100, 4))), np.tanh(s * rng.normal(size=(100, 2)))]
        for s in (0.3, 1.0, 3.0, 10.0, 30.0)
    ]
    for mode in info.MODES:
        plane = fastmem.information_plane(snaps, y, mode=mode, bins=12, backend=backend)
        assert plane.i_xt.shape == (5, 2) and plane.backend == backend
        if mode == "adaptive_max":
            continue  # range over all checkpoints: checked below
        for c, snap in enumerate(snaps):
            mi = fastmem.binned_mi(snap, y, mode=mode, bins=12, backend=backend)
            np.testing.assert_allclose(plane.i_xt[c], mi.i_xt, atol=1e-12)
            np.testing.assert_allclose(plane.i_ty[c], mi.i_ty, atol=1e-12)
    plane = fastmem.information_plane(snaps, y, mode="adaptive_max", bins=12, backend=backend)
    lo = min(s[0].min() for s in snaps)
    hi = max(s[0].max() for s in snaps)
    for c, snap in enumerate(snaps):
        ref = equal_width_reference(snap[0], y, 12, lo, hi)
        assert plane.i_xt[c, 0] == pytest.approx(ref[0], abs=1e-12)
    d = plane.to_dict()
    assert len(d["i_xt"]) == 5 and d["estimator"] == "binned"


def _plane_reference(snaps, y, inputs, mode, bins):
    """I(X;T), I(T;Y) of every (checkpoint, layer) from the plain-NumPy ports."""
    out = np.empty((len(snaps), len(snaps[0]), 2))
    for c, snap in enumerate(snaps):
        for ell, t in enumerate(snap):
            if mode == "idnns":
                ref = idnns_reference(t, y, inputs, bins=bins)
            elif mode == "ibsgd":
                ref = ibsgd_reference(t, y, inputs)
            else:
                codes = np.clip(np.floor((t.astype(np.float64) + 1.0) * (bins / 2.0)), 0, bins - 1)
                ref = _mi_from_discrete(codes.astype(np.int64), y, inputs)
            out[c, ell] = ref[:2]
    return out


@pytest.mark.parametrize("mode", ["idnns", "ibsgd", "equal_width"])
def test_plane_matches_reference(mode):
    """One bin_plane pass over all (checkpoint, layer) segments against the NumPy ports:
    float32 and float64 layers in one plane, rows of one and of several 64-bit words
    (width 30 at 5 bits per code: 3 words; ibsgd: one word per code), repeated inputs
    (H(T|X) > 0), and 40 classes (the (group, label) pairs overflow the dense table);
    cpp and numba give the same bits."""
    rng = np.random.default_rng(21)
    n = 97
    inputs = rng.integers(0, 30, (n, 2))
    for classes in (3, 40):
        y = rng.integers(0, classes, n)
        snaps = [
            [
                np.tanh(s * rng.normal(size=(n, 2))).astype(np.float32),
                np.tanh(s * rng.normal(size=(n, 30))),
                np.tanh(s * rng.normal(size=(n, 1))).astype(np.float32),
            ]
            for s in (0.05, 0.5, 3.0, 30.0)
        ]
        for x in (None, inputs):
            ref = _plane_reference(snaps, y, x, mode, 12)
            planes = [
                fastmem.information_plane(snaps, y, inputs=x, mode=mode, bins=12, backend=b)
                for b in _cpu_backends()
            ]
            for plane in planes:
                np.testing.assert_allclose(plane.i_xt, ref[..., 0], atol=1e-12)
                np.testing.assert_allclose(plane.i_ty, ref[..., 1], atol=1e-12)
            for plane in planes[1:]:
                for key in ("i_xt", "i_ty", "h_t"):
                    np.testing.assert_array_equal(getattr(plane, key), getattr(planes[0], key))


def test_plane_rejects_non_finite(backend):
    y = np.arange(20) % 2
    good = np.zeros((20, 3))
    bad = good.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InputError, match="NaN or Inf"):
        fastmem.information_plane([[good], [bad]], y, backend=backend)


def test_bin_plane_kernel_checks():
    """The kernels refuse a ragged segment, labels out of range and a short clog."""
    import fastmem._numba as nk

    mods = [nk] + ([pytest.importorskip("fastmem._core")] if _cpu_backends()[0] == "cpp" else [])
    e = np.linspace(-1, 1, 5)
    y = np.zeros(4, np.int64)
    good = (np.zeros((4, 2)), 0, e, 5, np.zeros(1, np.int64), np.zeros(1), np.zeros(1), 5)
    tail = (np.empty(0, np.int64), 1, info._clog_table(4), np.empty(0, np.int64))
    for mod in mods:
        out, bad = np.empty((1, 3)), np.zeros(1, np.int64)
        mod.bin_plane([good[0]], *good[1:], y, 1, *tail, out, bad)
        assert out[0, 0] == pytest.approx(8.0)  # one group of 4: 4 log2 4
        with pytest.raises(ValueError):
            mod.bin_plane([np.zeros((3, 2))], *good[1:], y, 1, *tail, out, bad)
        with pytest.raises(ValueError):
            mod.bin_plane([good[0]], *good[1:], y + 1, 1, *tail, out, bad)
        with pytest.raises(ValueError):
            mod.bin_plane([good[0]], *good[1:], y, 1, tail[0], 1, np.zeros(3), tail[3], out, bad)


def test_plane_kde_and_plot(tmp_path):
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 50)
    snaps = [[rng.normal(size=(50, 3))] for _ in range(3)]
    plane = fastmem.information_plane(snaps, y, estimator="kde", epochs=[1, 5, 9])
    assert plane.i_ty.shape == (3, 1)
    ref = kde_reference(snaps[1][0], y, 1e-3, "upper")
    assert plane.i_ty[1, 0] == pytest.approx(ref[1], rel=1e-10)
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = plane.plot()
    ax.figure.savefig(tmp_path / "plane.png")


@pytest.mark.parametrize("activation", ["relu", "hardtanh"])
def test_plane_from_networks(backend, activation):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(80, 3))
    y = rng.integers(0, 2, 80)
    nets = [
        fastmem.Network.from_arrays(
            [rng.normal(size=(4, 3)), rng.normal(size=(2, 4))], [np.zeros(4), np.zeros(2)],
            activation,
        )
        for _ in range(3)
    ]  # fmt: skip
    plane = fastmem.information_plane(
        nets, y, X=on_backend_device(X, backend), mode="equal_width", backend=backend
    )
    for c, net in enumerate(nets):
        mi = fastmem.binned_mi(net.layer_outputs(X), y, mode="equal_width")
        np.testing.assert_allclose(plane.i_ty[c], mi.i_ty, atol=1e-12)


def test_plane_from_tanh_networks():
    rng = np.random.default_rng(13)
    X = rng.normal(size=(60, 2))
    y = rng.integers(0, 2, 60)
    net = fastmem.Network.from_arrays(
        [rng.normal(size=(3, 2)), rng.normal(size=(2, 3))], [np.zeros(3), np.zeros(2)], "tanh"
    )
    plane = fastmem.information_plane([net], y, X=X)
    hidden = np.tanh(X @ net.weights[0].T + net.biases[0]) if hasattr(net, "weights") else None
    if hidden is not None:
        ref = idnns_reference(hidden, y)
        assert plane.i_xt[0, 0] == pytest.approx(ref[0], abs=1e-12)


# ----------------------------------------------------------------------------- errors


def test_errors():
    t = np.zeros((4, 2))
    y = np.array([0, 1, 0, 1])
    cases = [
        (lambda: fastmem.binned_mi(t, y.astype(float)), "labels"),
        (lambda: fastmem.binned_mi(t, y[:3]), "labels"),
        (lambda: fastmem.binned_mi(t[:1], y[:1]), "labels"),
        (lambda: fastmem.binned_mi(t, y, bins=1), "bins"),
        (lambda: fastmem.binned_mi(t, y, mode="nope"), "mode"),
        (lambda: fastmem.binned_mi(np.array([[np.nan, 0]] * 4), y), "activations"),
        (lambda: fastmem.binned_mi(np.array([[np.inf, 0]] * 4), y, mode="ibsgd"), "activations"),
        (lambda: fastmem.binned_mi(np.array([[0, np.nan]] * 4), y, mode="equal_width"), "activ"),
        (lambda: fastmem.kde_mi(t, y, noise_var=0.0), "noise_var"),
        (lambda: fastmem.kde_mi(t, y, bound="mid"), "bound"),
        (lambda: fastmem.kde_mi(np.array([[np.nan, 0]] * 4), y), "activations"),
        (lambda: fastmem.information_plane([[t], [t, t]], y), "snapshots[1]"),
        (lambda: fastmem.information_plane([[t], [np.zeros((4, 3))]], y), "snapshots[1][0]"),
        (lambda: fastmem.information_plane([[t]], y, estimator="x"), "estimator"),
        (lambda: fastmem.information_plane([[t]], y, epochs=[1, 2]), "epochs"),
        (lambda: fastmem.binned_mi(t, y, inputs=np.zeros((3, 1))), "inputs"),
    ]
    for fn, name in cases:
        with pytest.raises(InputError, match=name.replace("[", r"\[").replace("]", r"\]")):
            fn()

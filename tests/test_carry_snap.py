"""The snap of carried values in the ``next_preactivations`` kernels (``carry_band`` in
cpp/include/fastmem/regions.hpp, ``fastmem._kinds.carry_snap``): a next-layer neuron whose
inputs are all off along part of a piece is exactly its bias there; the rank-1 carry leaves
rounding noise, which the kernels set back to the bias within a rounding band.

References: the exact values ``act(z(t)) W^T + b`` at each breakpoint in plain NumPy, and
``carry_snap_reference`` (the band, in NumPy) on pieces with one breakpoint each."""

from __future__ import annotations

import numpy as np
import pytest

import fastmem
from fastmem import select_backend
from fastmem._kinds import LEAKY_RELU, RELU, carry_snap, carry_snap_reference

CPU = [n for n, info in fastmem.backends().items() if info.available and n != "cuda"]


def _pieces(k, z, vt, pseg, kind):
    n = pseg.shape[0]
    counts = np.empty(n, dtype=np.int64)
    k.count_crossings(z, pseg, kind, counts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    buf = np.empty(int(offsets[-1]), dtype=z.dtype)
    k.collect_crossings(z, vt, pseg, kind, 1e-12, offsets, buf, counts)
    child = np.zeros(n + 1, dtype=np.int64)
    child[1:] = np.cumsum(counts + 1)
    return buf, offsets, child, counts


def _carry(k, z, vt, pseg, kind, slope, W, bias, snap, sparse=False):
    buf, offsets, child, counts = _pieces(k, z, vt, pseg, kind)
    n = pseg.shape[0]
    h = np.maximum(z, 0.0) if kind == RELU else np.where(z > 0, z, slope * z)
    zn = np.ascontiguousarray(h @ W.T + bias)
    out = np.full((int(child[-1]) + n, W.shape[0]), np.nan)
    scratch = np.empty(2 * int(offsets[-1]), dtype=np.int64)
    nxt = np.empty(int(child[-1]), dtype=np.int64)
    if sparse:
        ptr = np.zeros(W.shape[1] + 1, dtype=np.int64)
        ptr[1:] = np.cumsum((W != 0).sum(axis=0))
        idx = np.concatenate([np.nonzero(W[:, j])[0] for j in range(W.shape[1])])
        val = np.concatenate([W[W[:, j] != 0, j] for j in range(W.shape[1])])
        k.next_preactivations_sparse(
            z, vt, pseg, buf, offsets, child, kind, slope, ptr, idx.astype(np.int64), val, bias,
            zn, scratch, out, 0, nxt, *snap,
        )  # fmt: skip
    else:
        wt = np.ascontiguousarray(np.concatenate([W.T, bias[None, :]]))
        k.next_preactivations(
            z, vt, pseg, buf, offsets, child, kind, slope, wt, zn, scratch, out, 0, nxt, *snap
        )
    return out, buf, offsets, child, counts, zn


def _structural(rng, kind, slope):
    """Pieces along which the inputs of the next layer's first outputs switch off one by
    one: those outputs (bias 0, ReLU's threshold) are exactly 0 after the last switch."""
    segments, width, width_next = 6, 24, 10
    z = rng.normal(size=(2 * segments, width))
    vt = np.tile([0.0, 1.0], segments)
    pseg = np.arange(segments, dtype=np.int64)
    z[0::2, :8] = rng.uniform(0.5, 2.0, (segments, 8))  # on at the start,
    z[1::2, :8] = -rng.uniform(0.5, 2.0, (segments, 8))  # off at the end
    W = rng.normal(size=(width_next, width))
    W[:4, 8:] = 0.0  # outputs 0..3 read neurons 0..7 only
    bias = rng.normal(size=width_next)
    bias[:4] = 0.0
    if kind == LEAKY_RELU:  # a leaky unit is never off: nothing is structural
        W[:4, 8:] = rng.normal(size=(4, width - 8))
    return z, vt, pseg, W, bias


def _exact(z, vt, pseg, buf, offsets, child, counts, W, bias, kind, slope):
    """act(z(t)) W^T + b at every new vertex, in plain NumPy (float64)."""
    rows, where = [], []
    n = pseg.shape[0]
    for i in range(n):
        zl, zh = z[i + pseg[i]], z[i + pseg[i] + 1]
        tl, th = vt[i + pseg[i]], vt[i + pseg[i] + 1]
        for c in range(counts[i]):
            r = (buf[offsets[i] + c] - tl) / (th - tl)
            zz = zl + r * (zh - zl)
            h = np.maximum(zz, 0.0) if kind == RELU else np.where(zz > 0, zz, slope * zz)
            rows.append(h @ W.T + bias)
            where.append(child[i] + pseg[i] + 1 + c)
    return np.array(where), np.array(rows)


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("sparse", [False, True])
def test_structural_zeros_are_exactly_the_bias(backend: str, sparse: bool) -> None:
    k = select_backend("cpu", backend=backend).kernels
    rng = np.random.default_rng(0)
    z, vt, pseg, W, bias = _structural(rng, RELU, 0.0)
    w_abs = np.abs(W).sum(axis=1)
    snap = carry_snap(bias, w_abs, 0.0, RELU, np)
    np.testing.assert_array_equal(snap[0], bias)
    out, buf, offsets, child, counts, _ = _carry(k, z, vt, pseg, RELU, 0.0, W, bias, snap, sparse)
    plain = _carry(k, z, vt, pseg, RELU, 0.0, W, bias, (None, 0.0, 0.0), sparse)[0]
    rows, exact = _exact(z, vt, pseg, buf, offsets, child, counts, W, bias, RELU, 0.0)
    structural = exact[:, :4] == 0.0
    assert structural.sum() > 20
    # without the snap some are rounding noise (the issue); with it all are exactly 0
    assert (plain[rows, :4][structural] != 0.0).any()
    np.testing.assert_array_equal(out[rows, :4][structural], 0.0)
    np.testing.assert_allclose(out[rows], exact, rtol=0, atol=1e-12)
    # the outputs that read live inputs everywhere are not touched
    np.testing.assert_array_equal(out[:, 4:], plain[:, 4:])


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("kind,slope", [(RELU, 0.0), (LEAKY_RELU, 0.3), (LEAKY_RELU, -2.0)])
def test_one_breakpoint_pieces_match_the_reference_band(backend: str, kind, slope) -> None:
    # with one breakpoint per piece the kernel snaps one row per piece from the same
    # values as carry_snap_reference: equal bit for bit
    k = select_backend("cpu", backend=backend).kernels
    rng = np.random.default_rng(1)
    segments, width, width_next = 40, 6, 7
    z = -rng.uniform(0.1, 1.0, (2 * segments, width))
    z[0::2, 0] = rng.uniform(0.1, 1.0, segments)  # neuron 0 crosses once per piece,
    z[:, 1] = rng.uniform(0.1, 1.0, 2 * segments)  # neuron 1 stays on
    vt = np.tile([0.0, 1.0], segments)
    pseg = np.arange(segments, dtype=np.int64)
    W = rng.normal(size=(width_next, width))
    bias = np.zeros(width_next)
    bias[::2] = rng.normal(size=(width_next + 1) // 2)
    out0, _, _, child, counts, zn = _carry(k, z, vt, pseg, kind, slope, W, bias, (None, 0.0, 0.0))
    assert (counts == 1).all()
    # targets placed within and beyond the bounds of the carried values
    target = out0[child[:-1] + pseg + 1].mean(axis=0)
    snap_to = np.where(bias == 0, target, np.nan)  # NaN: never snapped
    _, unit, w = carry_snap(bias, np.abs(W).sum(axis=1), slope, kind, np)
    ds = max(1.0, abs(1.0 - slope)) if kind == LEAKY_RELU else 1.0
    scale = 1e14  # bands (~1) wide enough to reach some carried values, not all
    out, *_ = _carry(k, z, vt, pseg, kind, slope, W, bias, (snap_to, unit * scale, w))
    expect = out0.copy()
    for i in range(segments):
        v, r = 2 * i, child[i] + pseg[i] + 1
        mag = np.abs(z[v, :1]) + np.abs(z[v + 1, :1])  # the one flip: neuron 0
        n_ops = 2 * 1 + 1 + 4
        carry_snap_reference(expect[r : r + 1], zn[v], zn[v + 1], mag, np.abs(W[:, :1]),
                             zn[v], zn[v + 1], n_ops, snap_to, unit * scale, ds)  # fmt: skip
    assert (expect != out0).any() and (expect == out0).any()
    np.testing.assert_array_equal(out, expect)


def test_cpp_and_numba_snap_bit_for_bit() -> None:
    if not {"cpp", "numba"} <= set(CPU):
        pytest.skip("needs both CPU backends")
    rng = np.random.default_rng(2)
    z, vt, pseg, W, bias = _structural(rng, RELU, 0.0)
    snap = carry_snap(bias, np.abs(W).sum(axis=1), 0.0, RELU, np)
    for sparse in (False, True):
        a = _carry(select_backend("cpu", backend="cpp").kernels, z, vt, pseg, RELU, 0.0, W,
                   bias, snap, sparse)[0]  # fmt: skip
        b = _carry(select_backend("cpu", backend="numba").kernels, z, vt, pseg, RELU, 0.0, W,
                   bias, snap, sparse)[0]  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_carry_snap_arguments() -> None:
    bias = np.array([0.0, 0.5, 0.0, 1.0, -1.0])
    w_abs = np.array([1.0, 9.0, 2.0, 3.0, 4.0])
    snap_to, unit, w = carry_snap(bias, w_abs, 0.0, RELU, np)
    np.testing.assert_array_equal(snap_to, bias)  # every output: exactly its bias
    assert unit == 2 * 2.0**-53 and w == 16 * 9.0
    assert carry_snap(bias, w_abs, 3.0, LEAKY_RELU, np)[2] == 16 * 2.0 * 9.0  # |1 - slope|
    assert carry_snap(bias, w_abs, 0.5, LEAKY_RELU, np)[2] == 16 * 9.0
    assert carry_snap(bias.astype(np.float32), w_abs, 0.0, RELU, np)[0] is None


@pytest.mark.parametrize("backend", CPU)
def test_snap_arguments_are_checked(backend: str) -> None:
    k = select_backend("cpu", backend=backend).kernels
    rng = np.random.default_rng(3)
    z, vt, pseg, W, bias = _structural(rng, RELU, 0.0)
    good = (np.zeros(W.shape[0]), 1e-16, 1.0)
    _carry(k, z, vt, pseg, RELU, 0.0, W, bias, good)
    for bad in [
        (np.zeros(W.shape[0] + 1), 1e-16, 1.0),  # one per output
        (np.zeros(W.shape[0]), -1.0, 1.0),
        (np.zeros(W.shape[0]), 1e-16, np.inf),
        (np.zeros(W.shape[0]), np.nan, 1.0),
    ]:
        with pytest.raises((TypeError, ValueError)):
            _carry(k, z, vt, pseg, RELU, 0.0, W, bias, bad)
    z32, W32, b32 = z.astype(np.float32), W.astype(np.float32), bias.astype(np.float32)
    buf, offsets, child, _ = _pieces(k, z32, vt.astype(np.float32), pseg, RELU)
    with pytest.raises((TypeError, ValueError), match=r"float64|dtype|incompatible"):
        k.next_preactivations(
            z32, vt.astype(np.float32), pseg, buf, offsets, child, RELU, 0.0,
            np.ascontiguousarray(np.concatenate([W32.T, b32[None, :]])),
            np.zeros((z.shape[0], W.shape[0]), np.float32),
            np.empty(2 * int(offsets[-1]), np.int64),
            np.empty((int(child[-1]) + pseg.shape[0], W.shape[0]), np.float32), -1,
            np.empty(0, np.int64), np.zeros(W.shape[0], np.float32), 1e-16, 1.0,
        )  # fmt: skip


def test_large_values_are_not_snapped() -> None:
    # above fastmem._engine.LARGE_VALUES a band wide enough for the carry's rounding would
    # set real values to the bias (a ResNet line over t in (-1e12, 1e12) lost 14 of 227
    # pieces): the walks are checked against the forward pass there instead
    from fastmem import _engine
    from fastmem._numba import regions

    assert regions._SNAP_LARGEST == _engine.LARGE_VALUES
    rng = np.random.default_rng(5)
    z, vt, pseg, W, bias = _structural(rng, RELU, 0.0)
    snap = carry_snap(bias, np.abs(W).sum(axis=1), 0.0, RELU, np)
    for backend in CPU:
        k = select_backend("cpu", backend=backend).kernels
        small = _carry(k, z, vt, pseg, RELU, 0.0, W, bias, snap)[0]
        big = _carry(k, z * 1e9, vt, pseg, RELU, 0.0, W, bias, snap)[0]
        plain = _carry(k, z * 1e9, vt, pseg, RELU, 0.0, W, bias, (None, 0.0, 0.0))[0]
        assert (small[:, :4] == 0.0).sum() > (plain[:, :4] == 0.0).sum()  # snapped when small
        np.testing.assert_array_equal(big, plain)  # not when large

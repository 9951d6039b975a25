"""CROWN's cheap intermediate bounds (spectral norm, Gram matrix, the second layer's GEMM
form, the first layer's step in centre form) and the fused backward kernel: rigorous
against sampled pre-activations and a per-class PGD, and identical across backends and
thread counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import centred_net

import fastmem
from fastmem import critical


def _net(seed, widths=(40, 16, 16, 16, 3), act="relu", dtype=np.float64):
    # more inputs than first-layer neurons: the Gram filter runs
    return centred_net(seed, widths, 50, act, dtype)


def _np_forward_pre(net, X):
    """Every hidden layer's pre-activations in float64 (plain NumPy)."""
    h = np.asarray(X, np.float64)
    pres = []
    for W, b, a, s in zip(net.weights[:-1], net.biases[:-1], net.activation,
                          net.negative_slopes, strict=True):  # fmt: skip
        z = h @ np.asarray(W, np.float64).T + np.asarray(b, np.float64)
        pres.append(z)
        if a == "relu":
            h = np.maximum(z, 0)
        elif a == "leaky_relu":
            h = np.where(z > 0, z, float(np.asarray(s, net.dtype)) * z)
        else:
            h = np.clip(z, *((0, 6) if a == "relu6" else (-1, 1)))
    return pres


# ------------------------------------------------------------------ the kernel


def _backward_err_reference(lam, rows, aL, bL, aU, bU, act, lin, with_lin, const, err):
    lam = lam.astype(np.float64)
    pos = lam >= 0
    a = np.where(pos, aL[rows], aU[rows])
    b = np.where(pos, bL[rows], bU[rows])
    new = lam * a
    c = const + (lam * b).sum(1)
    e = err + (np.abs(lam) * act[rows]).sum(1)
    if with_lin:
        e = e + (np.abs(new) * lin[rows]).sum(1)
    return new, c, e


@settings(max_examples=25, deadline=None)
@given(
    width=st.sampled_from([1, 5, 8, 11, 16, 37, 128]),
    dtype=st.sampled_from([np.float64, np.float32]),
    with_lin=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_backward_err_kernel_matches_numpy_and_backends(width, dtype, with_lin, seed):
    rng = np.random.default_rng(seed)
    n_s, n = 7, 19
    lam = rng.normal(size=(n, width)).astype(dtype)
    lam[0, : min(3, width)] = 0
    rows = rng.integers(0, n_s, n).astype(np.int64)
    arrs = [rng.normal(size=(n_s, width)).astype(dtype) for _ in range(4)]
    act, lin = (rng.random((n_s, width)).astype(dtype) for _ in range(2))
    const0 = rng.normal(size=n).astype(dtype)
    err0 = rng.random(n).astype(dtype)
    out = {}
    for name, b in fastmem.backends().items():
        if not b.available or name == "cuda":
            continue
        k = fastmem.select_backend("cpu", name).kernels
        lm, c, e = lam.copy(), const0.copy(), err0.copy()
        k.crit_backward_err(lm, rows, *arrs, act, lin, with_lin, c, e)
        out[name] = (lm, c, e)
    ref = _backward_err_reference(lam, rows, *arrs, act, lin, with_lin, const0, err0)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for lm, c, e in out.values():
        want = lam * np.where(lam >= 0, arrs[0][rows], arrs[2][rows])
        np.testing.assert_array_equal(lm, want.astype(dtype))
        scale = 1 + np.abs(lam).sum(1) * 4
        assert np.all(np.abs(c - ref[1]) <= tol * scale)
        assert np.all(np.abs(e - ref[2]) <= tol * scale)
    if len(out) == 2:  # the same lanes, the same order: the same bits
        for x, y in zip(out["cpp"], out["numba"], strict=True):
            np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ constants


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norm_constants_bound_the_first_layer(dtype):
    net, X = _net(1, dtype=dtype)
    _, _, model = critical._prepare(net, X, None, (0.0, 1.0))
    info = model._norms()
    W = np.asarray(net.weights[0], np.float64)
    smax = np.linalg.svd(W, compute_uv=False).max()
    assert smax**2 <= info["sigma2"] <= smax**2 * (1 + 1e-5)
    assert info["gram"]
    rng = np.random.default_rng(2)
    lam = rng.normal(size=(500, W.shape[0])).astype(dtype)
    lam[:10] *= 1e-3
    G = np.asarray(info["G"])
    q = np.einsum("ij,ij->i", lam @ G, lam).astype(np.float64)
    exact = ((lam.astype(np.float64) @ W) ** 2).sum(1)
    n2 = (lam.astype(np.float64) ** 2).sum(1)
    assert np.all(np.abs(q - exact) <= info["qfac"] * n2)


# ------------------------------------------------------------------ soundness


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tightened_bounds_contain_sampled_preactivations(act, dtype, monkeypatch):
    net, X = _net(3, act=act, dtype=dtype)
    radius = 0.03
    Xd, _be, model = critical._prepare(net, X, None, (0.0, 1.0))
    lo, hi = critical._ball(model, Xd, radius, (0.0, 1.0))
    seen = {}
    orig = model._tighten

    def spy(zl, zu, i, layers, lo_, hi_, geo=None):
        ibp = (zl.copy(), zu.copy())
        orig(zl, zu, i, layers, lo_, hi_, geo)
        seen[i] = (ibp, zl.copy(), zu.copy())

    monkeypatch.setattr(model, "_tighten", spy)
    pred = critical._predict(model, Xd)
    model.certify(lo, hi, pred, "crown")
    assert set(seen) == {1, 2}
    rng = np.random.default_rng(4)
    lo64, hi64 = lo.astype(np.float64), hi.astype(np.float64)
    tightened = 0
    for t in range(60):
        if t < 20:  # corners
            P = np.where(rng.random(lo.shape) < 0.5, lo64, hi64)
        else:
            P = lo64 + rng.random(lo.shape) * (hi64 - lo64)
        pres = _np_forward_pre(net, P)
        for i, (_, zl, zu) in seen.items():
            z = pres[i]
            assert np.all(zl.astype(np.float64) <= z) and np.all(z <= zu.astype(np.float64))
    for (il, iu), zl, zu in seen.values():
        assert np.all(zl >= il) and np.all(zu <= iu)  # never looser than IBP
        tightened += int(((zl > il) | (zu < iu)).sum())
    assert tightened > 0


def _affine_pieces(net, lo, hi):
    """Per sample, the exact range of every hidden layer's pre-activations over the box
    [lo, hi] for as long as the layers below are stable on it (the net is affine there);
    NaN from the first layer that may change state. Plain NumPy, float64."""
    n, d = lo.shape
    A = np.broadcast_to(np.eye(d), (n, d, d)).copy()  # h = A x + c, per sample
    c = np.zeros((n, d))
    alive = np.ones(n, dtype=bool)
    out = []
    for W, b, a, s in zip(net.weights[:-1], net.biases[:-1], net.activation,
                          net.negative_slopes, strict=True):  # fmt: skip
        W = np.asarray(W, np.float64)
        M = np.einsum("oi,nid->nod", W, A)
        z0 = np.einsum("oi,ni->no", W, c) + np.asarray(b, np.float64)
        mid = (lo + hi) / 2
        rad = (hi - lo) / 2
        zc = np.einsum("nod,nd->no", M, mid) + z0
        zr = np.einsum("nod,nd->no", np.abs(M), rad)
        zmin, zmax = zc - zr, zc + zr
        zmin[~alive] = zmax[~alive] = np.nan
        out.append((zmin, zmax))
        s = float(np.asarray(s, net.dtype))
        if a in ("hardtanh", "relu6"):
            c0, c1 = (-1.0, 1.0) if a == "hardtanh" else (0.0, 6.0)
            sat = (zmax <= c0) | (zmin >= c1)
            lin_ = (zmin >= c0) & (zmax <= c1)
            alive &= (sat | lin_).all(1)
            slope = lin_.astype(float)
            off = np.where(zmin >= c1, c1, np.where(zmax <= c0, c0, 0.0))
        else:
            neg = s if a == "leaky_relu" else 0.0
            alive &= ((zmin >= 0) | (zmax <= 0)).all(1)
            slope = np.where(zmin >= 0, 1.0, neg)
            off = np.zeros_like(slope)
        A = slope[:, :, None] * M
        c = slope * z0 + off
    return out


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tightened_bounds_below_exact_range_where_affine(act, dtype, monkeypatch):
    # small balls: the first layers are stable on most of them, the net is affine there
    # and every pre-activation's exact range over the box is known (a corner): the
    # cascade's bounds must contain it (a bound too tight by a third fails here)
    net, X = _net(9, act=act, dtype=dtype)
    X = np.random.default_rng(10).random((200, 40)).astype(dtype)
    radius = 0.002 if act != "hardtanh" else 0.001
    Xd, _be, model = critical._prepare(net, X, None, (0.0, 1.0))
    lo, hi = critical._ball(model, Xd, radius, (0.0, 1.0))
    seen = {}
    orig = model._tighten

    def spy(zl, zu, i, layers, lo_, hi_, geo=None):
        ibp = (zl.copy(), zu.copy())
        orig(zl, zu, i, layers, lo_, hi_, geo)
        seen[i] = (ibp, zl.copy(), zu.copy())

    monkeypatch.setattr(model, "_tighten", spy)
    model.certify(lo, hi, critical._predict(model, Xd), "crown")
    exact = _affine_pieces(net, lo.astype(np.float64), hi.astype(np.float64))
    checked = 0
    close = 0
    for i, (_, zl, zu) in seen.items():
        zmin, zmax = exact[i]
        ok = ~np.isnan(zmin)
        zl = zl.astype(np.float64)
        zu = zu.astype(np.float64)
        assert np.all(zl[ok] <= zmin[ok]) and np.all(zu[ok] >= zmax[ok])
        checked += int(ok.sum())
        width = (zmax - zmin)[ok]
        # the tightened bounds are informative: within 3x the exact range's width
        close += int(((zmin - zl)[ok] < 3 * width).sum())
    assert checked > 500 and close > checked // 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_certified_margins_below_per_class_pgd(dtype, backend):
    from test_critical_order import _per_class_pgd

    net, X = _net(5, widths=(30, 12, 12, 12, 4), dtype=dtype)
    ws = [np.asarray(w, np.float64) for w in net.weights]
    bs = [np.asarray(b, np.float64) for b in net.biases]
    certified = 0
    for radius in (0.005, 0.02):
        res = fastmem.critical_samples(
            net, X, radius=radius, certify="crown", steps=5, rng=0, backend=backend
        )
        robust = np.flatnonzero(res.status == "robust")
        certified += robust.size
        if not robust.size:
            continue
        found = _per_class_pgd(ws, bs, X[robust], res.predicted[robust], radius, restarts=2)
        assert np.all(res.margin_lower[robust] <= found + 1e-12 * (1 + np.abs(found)))
    assert certified > 0


def test_cascade_identical_across_backends_and_threads():
    from fastmem._threads import kernel_threads

    avail = [b for b in ("cpp", "numba") if fastmem.backends()[b].available]
    net, _ = _net(7, widths=(40, 16, 16, 16, 3), dtype=np.float32)
    X = np.random.default_rng(8).random((600, 40)).astype(np.float32)
    out = []
    for b in avail:
        kw = dict(radius=0.01, method="pgd", steps=3, rng=0, backend=b)
        out.append(fastmem.critical_samples(net, X, **kw))
        with kernel_threads(fastmem.select_backend(b), 1):
            out.append(fastmem.critical_samples(net, X, **kw))
    assert 0 < out[0].n_robust < 600
    for r in out[1:]:
        np.testing.assert_array_equal(r.status, out[0].status)
        np.testing.assert_array_equal(r.margin_lower, out[0].margin_lower)


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_side_first_and_blocked_last_step_keep_the_margins(act, dtype, monkeypatch):
    """The cascade's two shortcuts change no decision and no margin beyond rounding
    allowances: a ReLU's bound nearer 0 first (the other only where still unstable)
    against both bounds of every unstable neuron, and the intermediate rows' last step
    in blocks of a few rows against one product; the certified margins also stay below
    the exact minimum over sampled points of each ball."""
    net, X = _net(11, widths=(40, 24, 24, 24, 4), act=act, dtype=dtype)
    runs = {}
    for one_side, block in ((False, 1 << 30), (True, 1 << 30), (True, 40 * 8 * 3)):
        monkeypatch.setattr(critical, "_ONE_SIDE_FIRST", one_side)
        monkeypatch.setattr(critical, "_V_BLOCK_BYTES", block)  # 3 rows a block: many
        res = fastmem.critical_samples(net, X, radius=0.02, steps=0, certify="crown")
        runs[one_side, block] = res
    both = runs[False, 1 << 30]
    for res in runs.values():
        np.testing.assert_array_equal(res.status, both.status)
        m, m0 = res.margin_lower.astype(np.float64), both.margin_lower.astype(np.float64)
        np.testing.assert_allclose(m, m0, rtol=0, atol=1e-9 * (1 + np.abs(m0).max()))
    assert 0 < int((both.status == "robust").sum()) < len(X)  # some certified, some not
    np.testing.assert_array_equal(
        runs[True, 1 << 30].margin_lower, runs[True, 40 * 8 * 3].margin_lower
    )
    rng = np.random.default_rng(5)
    pred = both.predicted
    for _ in range(20):
        P = np.clip(X + rng.uniform(-0.02, 0.02, X.shape), 0, 1).astype(dtype)
        f = np.asarray(net.forward(P), dtype=np.float64)
        own = f[np.arange(len(X)), pred]
        f[np.arange(len(X)), pred] = -np.inf
        assert np.all(runs[True, 1 << 30].margin_lower <= own - f.max(axis=1) + 1e-6)

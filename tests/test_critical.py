"""Critical samples, certified bounds and loss sensitivity against plain-NumPy references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastmem
from fastmem import critical

# ------------------------------------------------------------------ references


def np_forward(ws, bs, acts, slopes, X):
    """Independent forward pass (plain NumPy)."""
    h = np.asarray(X, dtype=np.float64)
    for W, b, a, s in zip(ws[:-1], bs[:-1], acts, slopes, strict=True):
        z = h @ np.asarray(W, np.float64).T + b
        if a == "relu":
            h = np.maximum(z, 0)
        elif a == "leaky_relu":
            h = np.where(z > 0, z, s * z)
        elif a == "hardtanh":
            h = np.clip(z, -1, 1)
        elif a == "relu6":
            h = np.clip(z, 0, 6)
        else:
            h = (z >= 0).astype(np.float64)
    out = h @ np.asarray(ws[-1], np.float64).T + bs[-1]
    if out.shape[1] == 1:
        out = np.concatenate([np.zeros_like(out), out], axis=1)
    return out


def make_net(rng, widths, act="relu", slope=0.1, dtype=np.float64):
    """Random net whose decision boundaries cross the unit cube."""
    ws, bs = [], []
    centre = np.full(widths[0], 0.5)
    for i, o in itertools.pairwise(widths):
        W = rng.normal(scale=2.0 / np.sqrt(i), size=(o, i))
        ws.append(W)
        bs.append(-W @ centre + rng.normal(scale=0.2, size=o))
        centre = np.full(o, 0.0)
    acts = [act] * (len(widths) - 2)
    net = fastmem.Network.from_arrays(ws, bs, acts, negative_slope=slope, dtype=dtype)
    return net, ws, bs, acts, [slope if act == "leaky_relu" else 0.0] * len(acts)


ACTS = ["relu", "leaky_relu", "hardtanh", "relu6"]


# ------------------------------------------------------------------ kernels


@given(
    lo=st.floats(-3, 3),
    width=st.floats(0, 4),
    kind=st.sampled_from([0, 1, 2, 3]),
    slope=st.sampled_from([0.0, 0.1, 0.5, 2.0, -0.3]),
)
def test_relaxation_and_interval_sound(lo, width, kind, slope):
    import fastmem._numba as nbk

    hi = lo + width
    L = np.array([[lo]])
    H = np.array([[hi]])
    rel = [np.empty_like(L) for _ in range(4)]
    nbk.crit_relax(L, H, kind, slope, *rel)
    aL, bL, aU, bU = (float(r[0, 0]) for r in rel)
    z = np.linspace(lo, hi, 201)
    f = {
        0: np.maximum(z, 0),
        1: np.where(z > 0, z, slope * z),
        2: np.clip(z, -1, 1),
        3: (z >= 0).astype(float),
    }[kind]
    assert np.all(aL * z + bL <= f + 1e-12)
    assert np.all(aU * z + bU >= f - 1e-12)
    a, b = L.copy(), H.copy()
    nbk.crit_interval(a, b, kind, slope)
    assert a[0, 0] <= f.min() + 1e-12 and b[0, 0] >= f.max() - 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [5, 11, 16])  # concretize: tail only, block + tail, blocks
def test_kernels_agree_across_backends(backend, dtype, d):
    from support import on_backend_device, to_numpy

    if backend == "numba":
        pytest.skip("numba is the reference here: nothing to compare it with")

    from fastmem import select_backend

    rng = np.random.default_rng(3)
    n = 37
    lo = rng.normal(size=(n, d)).astype(dtype)
    hi = (lo + rng.random((n, d))).astype(dtype)
    ids = rng.integers(0, n, 23).astype(np.int64)
    x = rng.normal(size=(23, d)).astype(dtype)
    g = rng.normal(size=(23, d)).astype(dtype)
    g[0, :3] = 0
    results = {}
    for name in ("numba", backend):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels

        def dev(a, name=name):
            return on_backend_device(np.ascontiguousarray(a), name)

        out = {}
        xs = dev(x.copy())
        k.crit_step(xs, dev(g), dev(lo), dev(hi), dev(ids), 12345, 7, 0.3, 0.2)
        out["step"] = to_numpy(xs)
        xs = dev(x.copy())
        k.crit_random_start(xs, dev(lo), dev(hi), dev(ids), 99, 1 << 32)
        out["start"] = to_numpy(xs)
        rel = [dev(np.empty_like(lo)) for _ in range(4)]
        k.crit_relax(dev(lo), dev(hi), 2, 0.0, *rel)
        out["relax"] = [to_numpy(r) for r in rel]
        lam = dev(g.copy())
        cst = dev(np.zeros(23, dtype))
        k.crit_backward(lam, dev(ids), *rel, cst)
        out["backward"] = to_numpy(lam).copy()
        out["backward_const"] = to_numpy(cst).copy()
        k.crit_concretize(lam, dev(ids), dev(lo), dev(hi), cst)
        out["concretize"] = to_numpy(cst)
        flags = dev(np.empty(23, np.uint8))
        k.crit_check(dev(g), dev(ids % d), flags)
        out["check"] = to_numpy(flags)
        results[name] = out
    a, b = results["numba"], results[backend]
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
    # independent references for the deterministic parts
    xs = x + 0.3 * np.sign(g).astype(dtype)
    assert np.all((a["step"] >= lo[ids]) & (a["step"] <= hi[ids]))
    assert np.all((a["start"] >= lo[ids]) & (a["start"] <= hi[ids]))
    np.testing.assert_array_equal(a["check"], (g.argmax(1) != ids % d).astype(np.uint8))
    lam = a["backward"]
    ref = np.where(lam >= 0, lam * lo[ids], lam * hi[ids])
    np.testing.assert_allclose(a["concretize"], a["backward_const"] + ref.sum(1), rtol=1e-4)
    del xs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(3, 7), (700, 400)])  # one thread; an OpenMP team
def test_elementwise_activation_kernels_agree_across_backends(backend, dtype, kind, shape):
    """apply_activation and crit_interval (vectorised per kind in C++) equal Numba's and a
    plain NumPy reference bit for bit, kinks and signed zeros included."""
    from support import on_backend_device, to_numpy

    if backend == "numba":
        pytest.skip("numba is the reference here: nothing to compare it with")
    from fastmem import select_backend

    rng = np.random.default_rng(kind)
    z = rng.normal(scale=2.0, size=shape).astype(dtype)
    z.flat[:8] = [0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 3e30, -3e30]
    hi = (z + np.abs(rng.normal(size=shape))).astype(dtype)
    slope = 0.1
    s = np.asarray(slope, dtype=dtype)
    ref = {
        0: np.where(z > 0, z, np.zeros_like(z)),
        1: np.where(z > 0, z, s * z),
        2: np.where(z < -1, dtype(-1), np.where(z > 1, dtype(1), z)),
        3: np.where(z >= 0, dtype(1), dtype(0)),
    }[kind].astype(dtype)
    outs = {}
    for name in ("numba", backend):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels
        a = on_backend_device(z.copy(), name)
        k.apply_activation(a, kind, slope)
        lo_, hi_ = on_backend_device(z.copy(), name), on_backend_device(hi.copy(), name)
        k.crit_interval(lo_, hi_, kind, slope)
        outs[name] = [to_numpy(a), to_numpy(lo_), to_numpy(hi_)]
    for got in outs.values():
        np.testing.assert_array_equal(got[0], ref)
        assert np.array_equal(np.signbit(got[0]), np.signbit(ref))  # relu gives +0.0
    for x, y in zip(outs["numba"], outs[backend], strict=True):
        np.testing.assert_array_equal(x, y)
        assert np.array_equal(np.signbit(x), np.signbit(y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("noise", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(3, 7), (300, 784)])  # one thread; an OpenMP team
def test_step_kernel_agrees_across_backends(backend, dtype, noise, shape):
    """crit_step (select-based, vectorised, an AVX2 build picked at run time in C++) equals
    Numba's bit for bit, and without noise a plain NumPy reference: zero and NaN gradients
    step by 0, NaN iterates stay NaN, steps beyond the box are clipped to it."""
    from support import on_backend_device, to_numpy

    if backend == "numba":
        pytest.skip("numba is the reference here: nothing to compare it with")
    from fastmem import select_backend

    rng = np.random.default_rng(11)
    rows, d = shape
    n = rows + 5
    lo = rng.random((n, d)).astype(dtype)
    hi = (lo + 0.5 * rng.random((n, d))).astype(dtype)
    ids = rng.integers(0, n, rows).astype(np.int64)
    x = (lo[ids] + (hi[ids] - lo[ids]) * rng.random((rows, d))).astype(dtype)
    g = rng.normal(size=(rows, d)).astype(dtype)
    g.flat[:4] = [0.0, -0.0, np.nan, 1e-30]
    x.flat[4] = np.nan
    step = 0.3
    outs = {}
    for name in ("numba", backend):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels
        xs = on_backend_device(x.copy(), name)
        args = [on_backend_device(a, name) for a in (g, lo, hi, ids)]
        k.crit_step(xs, *args, 12345, 7, step, noise)
        outs[name] = to_numpy(xs)
    np.testing.assert_array_equal(outs["numba"], outs[backend])
    if noise == 0.0:
        sign = np.where(g > 0, 1, np.where(g < 0, -1, 0)).astype(dtype)
        ref = x + dtype(step) * sign
        ref = np.where(ref < lo[ids], lo[ids], ref)
        ref = np.where(ref > hi[ids], hi[ids], ref)
        np.testing.assert_array_equal(outs[backend], ref)
        assert outs[backend].flat[2] == x.flat[2]  # NaN gradient: no step
    assert np.isnan(outs[backend].flat[4])


def _uniform_reference(seed, samples, stream, d):
    """critical.hpp's uniform draws in [-1, 1) with NumPy uint64 arithmetic (wrapping):
    splitmix64 keyed by (seed, sample, stream, coordinate), top 32 bits, centred."""
    golden, c2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03)

    def mix(z):
        z = z ^ (z >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    with np.errstate(over="ignore"):
        s = np.asarray(samples, dtype=np.uint64)[:, None]
        row = mix(np.uint64(seed) + golden * (s + np.uint64(1)))
        key = mix(row ^ (np.uint64(stream) * c2 + golden))
        h = mix(key ^ (np.arange(d, dtype=np.uint64)[None, :] * golden + c2))
    k = (h >> np.uint64(32)).astype(np.float64)
    return (k + 0.5) * 2.0**-32 * 2.0 - 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 7), (300, 784)])  # one thread; an OpenMP team
def test_random_start_kernel_agrees_across_backends(backend, dtype, shape):
    """crit_random_start (the row key hoisted, the draw converted by its bits, the clipping
    as selects, an AVX2 build picked at run time in C++) equals Numba's and a plain NumPy
    reference bit for bit: zero-width and signed-zero boxes, NaN bounds stay NaN."""
    from support import on_backend_device, to_numpy

    from fastmem import select_backend

    rng = np.random.default_rng(5)
    rows, d = shape
    n = rows + 3
    lo = rng.normal(size=(n, d)).astype(dtype)
    hi = (lo + rng.random((n, d))).astype(dtype)
    lo[0, :4] = [0.0, -0.0, 1.5, np.nan]
    hi[0, :4] = [0.0, 0.0, 1.5, 2.0]
    ids = rng.integers(0, n, rows).astype(np.int64)
    ids[0] = 0
    seed, stream = 99, 3 << 32
    outs = {}
    for name in dict.fromkeys(("numba", backend)):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels
        x = on_backend_device(np.full((rows, d), 7.0, dtype=dtype), name)
        args = [on_backend_device(a, name) for a in (lo, hi, ids)]
        k.crit_random_start(x, *args, seed, stream)
        outs[name] = to_numpy(x)
    u = _uniform_reference(seed, ids, stream, d)
    a, b = lo[ids].astype(np.float64), hi[ids].astype(np.float64)
    ref = ((0.5 * (a + b)) + u * (0.5 * (b - a))).astype(dtype)
    ref = np.where(ref < lo[ids], lo[ids], ref)
    ref = np.where(ref > hi[ids], hi[ids], ref)
    for got in outs.values():
        np.testing.assert_array_equal(got, ref)
        assert np.array_equal(np.signbit(got), np.signbit(ref))
    assert outs[backend][0, 2] == 1.5 and np.isnan(outs[backend][0, 3])


def _relax_reference(lo, hi, kind, slope):
    """The relaxations of the stable (constant-branch) entries, written out with NumPy:
    where an entry is not stable the slots hold NaN (checked by soundness elsewhere)."""
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    if kind == 3:
        return [np.zeros_like(lo), np.where(lo >= 0, 1.0, 0.0), np.zeros_like(lo),
                np.where(hi >= 0, 1.0, 0.0)]  # fmt: skip
    if kind in (0, 1):
        s = slope if kind == 1 else 0.0
        up, down = lo >= 0, hi <= 0
        a = np.where(up, 1.0, np.where(down, s, np.nan))
        b = np.where(up | down, 0.0, np.nan)
        return [a, b, a, b]
    below, above, inside = hi <= -1, lo >= 1, (lo >= -1) & (hi <= 1)
    a = np.where(below | above, 0.0, np.where(inside, 1.0, np.nan))
    b = np.where(below, -1.0, np.where(above, 1.0, np.where(inside, 0.0, np.nan)))
    return [a, b, a, b]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(40, 33), (700, 400)])  # one thread; an OpenMP team
def test_relax_kernel_agrees_across_backends(backend, dtype, kind, shape):
    """crit_relax (in C++ every case computed, then selected, per kind at compile time, in
    blocks of 1024 with an AVX2 build picked at run time) equals Numba's branches bit for
    bit, signed zeros included (Numba's constants were lw * 0: -0.0 for a negative lower
    bound where C++ writes 0.0), and its constant-branch entries a plain NumPy reference;
    bounds at 0, -0, the kinks, +-inf and NaN, every case of hard-tanh's."""
    from support import on_backend_device, to_numpy

    from fastmem import select_backend

    rng = np.random.default_rng(20 + kind)
    lo = rng.normal(scale=2.0, size=shape).astype(dtype)
    hi = (lo + np.abs(rng.normal(scale=2.0, size=lo.shape))).astype(dtype)
    edge = [(0.0, 0.0), (-0.0, 0.0), (-0.0, -0.0), (-1.0, -1.0), (1.0, 1.0), (-2.0, -0.0)]
    edge += [(-np.inf, -3.0), (2.0, np.inf), (-np.inf, np.inf), (np.nan, 1.0), (-1.0, np.nan)]
    for i, (a, b) in enumerate(edge):
        lo.flat[i], hi.flat[i] = a, b
    slope = 0.1 if kind == 1 else 0.0
    outs = {}
    for name in dict.fromkeys(("numba", backend)):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels
        rel = [on_backend_device(np.full_like(lo, 5.0), name) for _ in range(4)]
        k.crit_relax(on_backend_device(lo, name), on_backend_device(hi, name), kind, slope, *rel)
        outs[name] = [to_numpy(r) for r in rel]
    for x, y in zip(outs["numba"], outs[backend], strict=True):
        np.testing.assert_array_equal(x, y)
        assert np.array_equal(np.signbit(x), np.signbit(y))
    ref = _relax_reference(lo, hi, kind, float(dtype(slope)))
    for got, want in zip(outs[backend], ref, strict=True):
        stable = ~np.isnan(want)
        assert stable.sum() > 20
        want = want.astype(dtype)
        np.testing.assert_array_equal(got[stable], want[stable])
        assert np.array_equal(np.signbit(got[stable]), np.signbit(want[stable]))


def test_noise_is_standard_normal_like():
    import fastmem._numba as nbk

    n, d = 200, 500
    lo = np.full((n, d), -1e9)
    hi = np.full((n, d), 1e9)
    x = np.zeros((n, d))
    nbk.crit_step(x, np.zeros((n, d)), lo, hi, np.arange(n, dtype=np.int64), 1, 1, 1.0, 1.0)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert len(np.unique(x)) > 0.99 * x.size  # no repeated streams


# ------------------------------------------------------------------ bounds


@pytest.mark.parametrize("act", ACTS)
def test_margin_bounds_below_true_margin_and_crown_tighter(act, backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(1)
    net, ws, bs, acts, slopes = make_net(rng, (5, 16, 16, 4), act)
    X = rng.random((40, 5))
    r = 0.08
    res = {
        c: fastmem.critical_samples(net, X, radius=r, certify=c, steps=1, rng=0, backend=backend)
        for c in ("ibp", "crown")
    }
    assert np.all(res["crown"].margin_lower >= res["ibp"].margin_lower)
    pred = np_forward(ws, bs, acts, slopes, X).argmax(1)
    lo, hi = np.clip(X - r, 0, 1), np.clip(X + r, 0, 1)
    for _ in range(30):
        P = lo + rng.random(X.shape) * (hi - lo)
        if _ == 0:
            P = np.where(rng.random(X.shape) < 0.5, lo, hi)  # corners
        f = np_forward(ws, bs, acts, slopes, P)
        own = f[np.arange(len(X)), pred]
        f[np.arange(len(X)), pred] = -np.inf
        true = own - f.max(1)
        assert np.all(res["ibp"].margin_lower <= true + 1e-9)
        assert np.all(res["crown"].margin_lower <= true + 1e-9)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("method", ["lass", "pgd"])
def test_critical_rows_valid_and_robust_never_broken(act, method, backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(2)
    net, ws, bs, acts, slopes = make_net(rng, (6, 24, 24, 3), act)
    X = rng.random((80, 6))
    r = 0.06
    res = fastmem.critical_samples(
        net,
        X,
        radius=r,
        method=method,
        steps=60,
        rng=4,
        backend=backend,
        **({"step_size": r / 4, "noise": r / 8} if method == "lass" else {}),
    )
    pred = np_forward(ws, bs, acts, slopes, X).argmax(1)
    crit = res.status == "critical"
    assert crit.any() and (res.status == "robust").any()
    adv = res.adversarial[crit]
    assert np.all(np.abs(adv - X[crit]) <= r * (1 + 1e-12))
    assert np.all((adv >= 0) & (adv <= 1))
    assert np.all(np_forward(ws, bs, acts, slopes, adv).argmax(1) != pred[crit])
    assert np.all(np.isnan(res.adversarial[~crit]))
    # a strong attack never breaks a certified sample
    rob = np.flatnonzero(res.status == "robust")
    strong = fastmem.critical_samples(
        net,
        X[rob],
        radius=r,
        method="pgd",
        steps=200,
        restarts=20,
        certify=None,
        rng=5,
        backend=backend,
    )
    assert strong.n_critical == 0
    assert res.csr_lower == crit.mean()
    assert res.csr_upper == 1 - (res.status == "robust").mean()
    d = res.to_dict()
    assert d["n_critical"] == crit.sum() and d["backend"] == backend


def test_sandwich_contains_exact_csr_by_brute_force(backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(7)
    net, ws, bs, acts, slopes = make_net(rng, (2, 24, 24, 3), "relu")
    X = rng.random((120, 2))
    g = np.linspace(-1, 1, 81)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    pred = np_forward(ws, bs, acts, slopes, X).argmax(1)
    for r in (0.02, 0.08):
        crit = np.array(
            [
                np.any(np_forward(ws, bs, acts, slopes, np.clip(x + r * G, 0, 1)).argmax(1) != p)
                for x, p in zip(X, pred, strict=True)
            ]
        )
        exact = crit.mean()
        for certify in ("crown", "ibp"):
            res = fastmem.critical_samples(
                net,
                X,
                radius=r,
                method="pgd",
                steps=100,
                restarts=3,
                certify=certify,
                rng=0,
                backend=backend,
            )
            assert res.n_critical <= crit.sum() <= len(X) - res.n_robust
            assert res.csr_lower <= exact + 1e-12 and exact <= res.csr_upper + 1e-12
            # sample-wise: every grid-critical point is not certified robust
            assert not np.any(crit & (res.status == "robust"))


def test_exact_decision_when_no_neuron_can_flip():
    # a linear model: always affine, so every sample is decided without search
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 4))
    net = fastmem.Network.from_arrays([W], [np.zeros(3)])
    X = rng.random((200, 4))
    res = fastmem.critical_samples(net, X, radius=0.05, rng=0)
    assert res.n_unknown == 0
    assert res.decided_exactly["critical"] + res.decided_exactly["robust"] == 200
    assert np.all(res.steps_taken == 0)
    # exact: the worst corner over the box decides
    pred = (X @ W.T).argmax(1)
    lo, hi = np.clip(X - 0.05, 0, 1), np.clip(X + 0.05, 0, 1)
    worst = np.full(200, np.inf)
    for j in range(3):
        D = W[pred] - W[j]
        m = (np.where(D >= 0, D * lo, D * hi)).sum(1)
        worst = np.where(pred == j, worst, np.minimum(worst, m))
    np.testing.assert_array_equal(res.status == "critical", worst < 0)


def test_early_stop_and_batches_do_not_change_results(backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(5)
    net, *_ = make_net(rng, (6, 20, 20, 3), "leaky_relu")
    X = rng.random((90, 6))
    for method in ("lass", "pgd"):
        kw = dict(radius=0.07, method=method, steps=40, restarts=2, certify=None, rng=3)
        a = fastmem.critical_samples(net, X, backend=backend, **kw)
        b = fastmem.critical_samples(net, X, backend=backend, _early_stop=False, **kw)
        c = fastmem.critical_samples(net, X, backend="numba", batch_size=16, **kw)
        for other in (b, c):
            np.testing.assert_array_equal(a.status, other.status)
            np.testing.assert_array_equal(a.adversarial, other.adversarial)
            np.testing.assert_array_equal(a.steps_taken, other.steps_taken)
        assert a.n_critical > 0


def test_search_split_over_threads_equals_one_thread(backend):
    # with two or more CPU threads a batch is searched in parts side by side; the
    # results (counter-based noise keyed by sample) must equal one thread's, bit for bit
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    from fastmem._threads import kernel_threads

    rng = np.random.default_rng(6)
    net, *_ = make_net(rng, (6, 24, 24, 3), "relu")
    X = rng.random((700, 6))
    kw = dict(radius=0.05, steps=30, certify=None, rng=4, backend=backend)
    for method in ("lass", "pgd"):
        a = fastmem.critical_samples(net, X, method=method, **kw)
        with kernel_threads(fastmem.select_backend(backend), 1):
            b = fastmem.critical_samples(net, X, method=method, **kw)
        np.testing.assert_array_equal(a.status, b.status)
        np.testing.assert_array_equal(a.adversarial, b.adversarial)
        np.testing.assert_array_equal(a.steps_taken, b.steps_taken)
        assert 0 < a.n_critical < 700
    y = rng.integers(0, 3, 700)
    ls = fastmem.loss_sensitivity(net, X, y, backend=backend).values
    with kernel_threads(fastmem.select_backend(backend), 1):
        one = fastmem.loss_sensitivity(net, X, y, backend=backend).values
    np.testing.assert_array_equal(ls, one)


def test_csr_curve_and_certified_radius(backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(9)
    net, ws, bs, *_ = make_net(rng, (3, 16, 3), "relu")
    X = rng.random((60, 3))
    curve = fastmem.csr_curve(net, X, [0.1, 0.01, 0.05], method="pgd", rng=0, backend=backend)
    np.testing.assert_array_equal(curve.radii, [0.01, 0.05, 0.1])
    assert np.all(np.diff(curve.csr_lower) >= 0) and np.all(curve.csr_lower <= curve.csr_upper)
    assert curve.to_dict()["radii"] == [0.01, 0.05, 0.1]
    cr = fastmem.certified_radius(net, X, backend=backend).radius
    assert np.all(cr >= 0)
    # a max_radius past the box's width bisects below the width (the same radii to
    # within the bisection's resolution, not 0 for every sample)
    huge = fastmem.certified_radius(net, X, max_radius=1e300, iterations=40, backend=backend)
    assert huge.params["max_radius"] == 1.0
    np.testing.assert_allclose(huge.radius, cr, atol=2e-8)
    some = cr > 0
    res = fastmem.critical_samples(
        net, X[some], radius=float(cr[some].min()), steps=1, rng=0, backend=backend
    )
    assert np.all(res.status == "robust")
    # threshold nets can be certified (no gradient needed)
    tnet = fastmem.Network.from_arrays(ws, bs, "threshold")
    assert fastmem.certified_radius(tnet, X).radius.shape == (60,)


# ------------------------------------------------------------------ loss sensitivity


@pytest.mark.parametrize("act", ACTS)
def test_loss_sensitivity_matches_finite_differences(act, backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(4)
    net, ws, bs, acts, slopes = make_net(rng, (4, 12, 12, 3), act)
    X = rng.random((25, 4))
    y = rng.integers(0, 3, 25)
    ls = fastmem.loss_sensitivity(net, X, y, backend=backend)

    def loss(P):
        f = np_forward(ws, bs, acts, slopes, P)
        f = f - f.max(1, keepdims=True)
        return -(f[np.arange(len(P)), y] - np.log(np.exp(f).sum(1)))

    h = 1e-6
    grad = np.stack([(loss(X + h * e) - loss(X - h * e)) / (2 * h) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(ls.values, np.abs(grad).sum(1), rtol=1e-5, atol=1e-8)
    v = np.sort(ls.values)
    n = len(v)
    gini = np.abs(v[:, None] - v[None, :]).sum() / (2 * n * n * v.mean())
    assert math.isclose(ls.gini, gini, rel_tol=1e-9)


@pytest.mark.parametrize("act", ACTS)
def test_loss_sensitivity_matches_torch_autograd(act):
    torch = pytest.importorskip("torch", reason="torch is optional: autograd reference")
    rng = np.random.default_rng(6)
    net, ws, bs, *_ = make_net(rng, (8, 16, 16, 5), act)
    X = rng.random((50, 8))
    y = rng.integers(0, 5, 50)
    layers = []
    for W, b in zip(ws[:-1], bs[:-1], strict=True):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        lin.weight.data = torch.tensor(W)
        lin.bias.data = torch.tensor(b)
        layers += [
            lin,
            {
                "relu": torch.nn.ReLU(),
                "leaky_relu": torch.nn.LeakyReLU(0.1),
                "hardtanh": torch.nn.Hardtanh(),
                "relu6": torch.nn.ReLU6(),
            }[act],
        ]
    last = torch.nn.Linear(ws[-1].shape[1], ws[-1].shape[0]).double()
    last.weight.data = torch.tensor(ws[-1])
    last.bias.data = torch.tensor(bs[-1])
    model = torch.nn.Sequential(*layers, last)
    xt = torch.tensor(X, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(model(xt), torch.tensor(y), reduction="sum")
    loss.backward()
    ref = xt.grad.numpy()
    for norm, fn in (
        (1, lambda g: np.abs(g).sum(1)),
        (2, lambda g: np.sqrt((g * g).sum(1))),
        (math.inf, lambda g: np.abs(g).max(1)),
    ):
        ls = fastmem.loss_sensitivity(net, X, y, norm=norm)
        np.testing.assert_allclose(ls.values, fn(ref), rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------ errors


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(0)
    net, ws, bs, *_ = make_net(rng, (3, 8, 3))
    X = rng.random((5, 3))
    cases = [
        (dict(radius=0), "radius"),
        (dict(radius=-1.0), "radius"),
        (dict(radius=0.1, steps=-1), "steps"),
        (dict(radius=0.1, steps=0, certify=None), "steps"),
        (dict(radius=0.1, steps=1.5), "steps"),
        (dict(radius=0.1, method="fgsm"), "method"),
        (dict(radius=0.1, certify="lp"), "certify"),
        (dict(radius=0.1, box=(1, 0)), "box"),
        (dict(radius=0.1, restarts=0), "restarts"),
    ]
    for kw, name in cases:
        with pytest.raises(fastmem.InputError, match=name):
            fastmem.critical_samples(net, X, **kw)
    with pytest.raises(fastmem.InputError, match="X: has values outside box"):
        fastmem.critical_samples(net, X + 2, radius=0.1)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(fastmem.InputError, match="X"):
        fastmem.critical_samples(net, bad, radius=0.1)
    with pytest.raises(fastmem.InputError, match="y"):
        fastmem.loss_sensitivity(net, X, [0, 1])
    with pytest.raises(fastmem.InputError, match="y"):
        fastmem.loss_sensitivity(net, X, [0, 1, 2, 3, 4])
    with pytest.raises(fastmem.InputError, match="norm"):
        fastmem.loss_sensitivity(net, X, [0] * 5, norm=3)
    tnet = fastmem.Network.from_arrays(ws, bs, "threshold")
    with pytest.raises(fastmem.InputError, match=r"threshold.*gradient"):
        fastmem.critical_samples(tnet, X, radius=0.1)
    with pytest.raises(fastmem.InputError, match=r"threshold.*gradient"):
        fastmem.loss_sensitivity(tnet, X, [0] * 5)
    with pytest.raises(fastmem.InputError, match="radii"):
        fastmem.csr_curve(net, X, [0.1, -1])
    assert critical.LASS_RADIUS == 0.3 / 255

"""``certify="ibp"`` on dense networks (the lean IBP pass, issue 21): its margin bounds
against a plain-NumPy interval reference written here, and the one-region samples it
decides exactly (the network is affine on their balls)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from reference import activate

import fastmem


def _interval_act(lo, hi, act, slope):
    """Image of [lo, hi] under a monotone activation."""
    return activate(lo, act, slope), activate(hi, act, slope)


def reference_ibp_margin(net, X, radius, pred):
    """Interval bound propagation in float64 (centre/radius form), the last layer folded
    with the margin rows ``W_c - W_j`` (as auto_LiRPA's IBP with a specification): the
    lower bound of ``min_j f_c - f_j`` over the L_inf ball clipped to [0, 1], and whether
    no hidden neuron can change state on the ball."""
    ws = [np.asarray(w, dtype=np.float64) for w in net.weights]
    bs = [np.asarray(b, dtype=np.float64) for b in net.biases]
    slope = float(np.asarray(net.negative_slopes[0], dtype=net.dtype)) if ws else 0.0
    # the ball in the net's dtype (a float32 ball holds every float32 point of the ball)
    x = np.asarray(X, dtype=net.dtype)
    r = np.asarray(radius, dtype=net.dtype)
    lo = np.clip(x - r, 0, 1).astype(np.float64)
    hi = np.clip(x + r, 0, 1).astype(np.float64)
    one_region = np.ones(len(x), dtype=bool)
    for W, b, act in zip(ws[:-1], bs[:-1], net.activation, strict=True):
        c, r = (lo + hi) / 2, (hi - lo) / 2
        zc, zr = c @ W.T + b, r @ np.abs(W).T
        lo, hi = zc - zr, zc + zr
        kinks = (-1.0, 1.0) if act == "hardtanh" else (0.0,)
        for t in kinks:
            one_region &= ~((lo < t) & (hi > t)).any(axis=1)
        lo, hi = _interval_act(lo, hi, act, slope)
    c, r = (lo + hi) / 2, (hi - lo) / 2
    out = np.full(len(x), np.inf)
    for s in range(len(x)):
        p = pred[s]
        for j in range(ws[-1].shape[0]):
            if j == p:
                continue
            d = ws[-1][p] - ws[-1][j]
            out[s] = min(out[s], c[s] @ d + bs[-1][p] - bs[-1][j] - r[s] @ np.abs(d))
    return out, one_region


def _net(seed, widths, act, dtype):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, np.sqrt(2.0 / i), (o, i)) for i, o in itertools.pairwise(widths)]
    bs = [rng.normal(0, 0.1, o) for o in widths[1:]]
    net = fastmem.Network.from_arrays(
        ws, bs, [act] * (len(widths) - 2), negative_slope=0.1, dtype=dtype
    )
    return net, rng.random((60, widths[0])).astype(dtype)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ibp_margin_equals_plain_interval_reference(act, dtype, backend):
    """Below the reference (rigorous rounding allowances) and within a few roundings of
    it: float64 arithmetic throughout, so ~1e-9 relative even for float32 nets (plus
    the final rounding down to float32 and the first layer's float32 radius product)."""
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    net, X = _net(3, (30, 24, 24, 24, 5), act, dtype)
    tol = 1e-9 if dtype == np.float64 else 2e-5
    for radius in (0.002, 0.02, 0.1):
        res = fastmem.critical_samples(net, X, radius=radius, certify="ibp", steps=0,
                                       backend=backend)  # fmt: skip
        ref, one_region = reference_ibp_margin(net, X, radius, res.predicted)
        ours = res.margin_lower.astype(np.float64)
        scale = 1 + np.abs(ref)
        assert np.all(ours >= ref - tol * scale)
        # (a one-region ball IBP does not prove gets the exact bound, above IBP's)
        same = ~one_region | (ref > 0)
        assert np.all(ours[same] <= ref[same] + 1e-12 * scale[same])
        robust = res.status == "robust"
        assert np.all(robust == (ours > 0))


def test_ibp_decides_one_region_balls_exactly(backend):
    """Hidden neurons active on the whole box (positive biases): the network is affine
    there, IBP's intervals lose the weights' signs and prove fewer samples than the
    exact minimum over the box, which the one-region pass gives (its corner minimises a
    linear function): statuses follow the exact minimum's sign, margins equal it."""
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    rng = np.random.default_rng(5)
    d, w, k = 6, 12, 3
    W1 = rng.normal(0, 1, (w, d))
    b1 = np.abs(W1).sum(axis=1) + 1.0  # z1 >= 1 on [0, 1]^d: every ReLU active
    W2 = rng.normal(0, 1, (k, w))
    b2 = -W2 @ b1 + rng.normal(0, 0.5, k)  # logits of either sign
    net = fastmem.Network.from_arrays([W1, W2], [b1, b2])
    X = rng.random((300, d))
    radius = 0.05
    res = fastmem.critical_samples(net, X, radius=radius, certify="ibp", steps=0,
                                   backend=backend)  # fmt: skip
    A = W2 @ W1  # the affine map on the box
    c0 = W2 @ b1 + b2
    pred = (X @ A.T + c0).argmax(1)
    assert np.array_equal(res.predicted, pred)
    lo, hi = np.clip(X - radius, 0, 1), np.clip(X + radius, 0, 1)
    exact = np.full(len(X), np.inf)
    for j in range(k):
        row = A[pred] - A[j]  # (n, d)
        m = np.where(row >= 0, lo, hi)
        val = np.einsum("nd,nd->n", row, m) + c0[pred] - c0[j]
        exact = np.where(pred == j, exact, np.minimum(exact, val))
    ibp, one_region = reference_ibp_margin(net, X, radius, pred)
    assert one_region.all()
    assert np.any((ibp <= 0) & (exact > 0)), "the test needs samples only the exact pass proves"
    assert np.any(exact < 0)
    status = np.where(exact > 0, "robust", "critical")
    assert np.array_equal(res.status, status)
    assert res.decided_exactly == {
        "critical": int((exact < 0).sum()),
        "robust": int((exact > 0).sum()),
    }
    undecided_by_ibp = ibp <= 0
    np.testing.assert_allclose(res.margin_lower[undecided_by_ibp], exact[undecided_by_ibp],
                               rtol=0, atol=1e-9)  # fmt: skip
    crit = res.status == "critical"
    adv = res.adversarial[crit]
    assert np.all((X[crit] @ A.T + c0).argmax(1) != (adv @ A.T + c0).argmax(1))


@pytest.mark.parametrize("certify", ["ibp", "crown"])
def test_tables_kept_between_calls_change_nothing(certify, backend):
    """The float64 tables a call derives from the weights are kept on the network for the
    next call (and left out of its pickle): a second call, and a call on a pickled copy,
    give the same bounds bit for bit."""
    import pickle

    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    for dtype in (np.float32, np.float64):
        net, X = _net(8, (20, 16, 16, 4), "relu", dtype)
        kw = dict(radius=0.03, certify=certify, steps=0, backend=backend)
        first = fastmem.critical_samples(net, X, **kw)
        assert net._memo  # the tables were kept
        copy = pickle.loads(pickle.dumps(net))
        assert copy._memo == {}
        for again in (
            fastmem.critical_samples(net, X, **kw),
            fastmem.critical_samples(copy, X, **kw),
        ):
            np.testing.assert_array_equal(again.margin_lower, first.margin_lower)
            np.testing.assert_array_equal(again.status, first.status)


def test_work_arrays_not_kept_above_the_cap_same_bounds(monkeypatch, backend):
    """Work arrays above the size cap are allocated per call instead of kept: the same
    bounds bit for bit."""
    from fastmem import _threads

    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    net, X = _net(9, (30, 24, 24, 5), "relu", np.float32)
    kw = dict(radius=0.02, certify="ibp", steps=0, backend=backend)
    kept = fastmem.critical_samples(net, X, **kw)
    monkeypatch.setattr(_threads, "SCRATCH_KEEP_BYTES", 0)
    fresh = fastmem.critical_samples(net, X, **kw)
    np.testing.assert_array_equal(fresh.margin_lower, kept.margin_lower)


def test_ibp_on_a_float32_layer_graph():
    """A float32 network with max pooling (a layer graph) takes its own IBP pass: it used
    to reach the dense float32 branch and raise AttributeError. Its bounds lie below the
    true margins at the balls' corners and random points, and within float32 rounding of
    the float64 network's."""
    torch = pytest.importorskip("torch", reason="the layer graph comes from a torch module")
    torch.manual_seed(0)
    nn = torch.nn
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    ).eval()
    X = np.random.default_rng(0).random((30, 64))
    r = 0.01
    res = {}
    for dt in (np.float32, np.float64):
        net = fastmem.Network.from_torch(m, input_shape=(1, 8, 8), dtype=dt)
        assert net.layer_graph is not None
        res[dt] = fastmem.critical_samples(net, X.astype(dt), radius=r, certify="ibp", steps=0)
    m64 = m.double()
    pred = res[np.float64].predicted
    rng = np.random.default_rng(1)
    lo, hi = np.clip(X - r, 0, 1), np.clip(X + r, 0, 1)
    for _ in range(20):
        P = lo + rng.random(X.shape) * (hi - lo)
        with torch.no_grad():
            f = m64(torch.from_numpy(P).reshape(-1, 1, 8, 8)).numpy()
        own = f[np.arange(len(X)), pred]
        f[np.arange(len(X)), pred] = -np.inf
        true = own - f.max(axis=1)
        assert np.all(res[np.float64].margin_lower <= true + 1e-9)
    np.testing.assert_allclose(
        res[np.float32].margin_lower, res[np.float64].margin_lower, rtol=0, atol=1e-4
    )
    assert np.all(res[np.float32].margin_lower <= res[np.float64].margin_lower + 1e-6)


def test_first_layer_radius_by_max_is_sound_and_no_looser(backend):
    """The float32 first layer's radius term without its product (``Rmax sum |W|`` less
    the exact share of the clipped coordinates, 784 inputs): it holds the exact float64
    interval of the first layer over the ball and is nowhere looser than the float32
    product it replaces; a batch with many pixels at the box's faces takes the product."""
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    from fastmem import critical as C
    from fastmem._backend import select_backend

    net, X = _net(7, (784, 48, 16, 5), "relu", np.float32)
    X = np.repeat(X, 3, axis=0)
    X[:, :3] = [0.0, 1.0, 0.5 / 255]  # a few coordinates at or near the faces
    faces = X.copy()
    faces[:, ::2] = 0.0  # half the pixels at a face: over 1/8 of the radii are short
    model = C._Model(net, select_backend("cpu", backend))
    W = np.asarray(net.weights[0], dtype=np.float64)
    b = np.asarray(net.biases[0], dtype=np.float64)
    for data, by_max in ((X, True), (faces, False)):
        for radius in (0.3 / 255, 2 / 255, 0.05):
            lo, hi = (a.copy() for a in C._ball(model, data, radius, (0.0, 1.0)))
            bufs = [C._Scratch(np) for _ in range(2)]
            zl, zu = (a.copy() for a in model._ibp_first_lean(lo, hi, bufs[0]))
            taken = []
            orig = model._radius_by_max
            model._radius_by_max = lambda *a, t=taken, f=orig: t.append(f(*a)) or False
            pl, pu = (a.copy() for a in model._ibp_first_lean(lo, hi, bufs[1]))
            del model._radius_by_max
            assert taken == [by_max]
            l64, h64 = lo.astype(np.float64), hi.astype(np.float64)
            c, r = (l64 + h64) / 2, (h64 - l64) / 2
            ec, er = c @ W.T + b, r @ np.abs(W).T
            assert np.all(zl <= ec - er) and np.all(zu >= ec + er)
            if by_max:  # the product's path widened by its float32 rounding allowance
                assert np.all(zu - zl <= pu - pl)
                assert np.all(zu - zl >= 2 * er)
                # at most 2^-15 of the radii above the exact term (plus float64 roundings)
                assert np.all((zu - zl) / 2 <= er * (1 + 3.1e-5) + 1e-12 * (1 + np.abs(ec)))
            else:
                np.testing.assert_array_equal(zl, pl)


def _ball_reference(x, r, box):
    """The clipped ball as NumPy computes it in x's dtype (the box's ends cast to it)."""
    t = x.dtype.type
    return np.maximum(x - r, t(box[0])), np.minimum(x + r, t(box[1]))


def _centre_reference(lo, hi, up, thr):
    """crit_centre's outputs, each with plain NumPy operations in the boxes' dtype."""
    t = lo.dtype.type
    c = (lo + hi) * t(0.5)
    radius = np.maximum(hi - c, c - lo) * t(up)
    rmax = radius.max(axis=1)
    cmax = np.abs(c).max(axis=1)
    low = (radius < (rmax * t(thr))[:, None]).sum(axis=1)
    return c.astype(np.float64), radius, rmax, cmax, low


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (5, 13), (300, 784)])  # one thread; an OpenMP team
@pytest.mark.parametrize("box", [(0.0, 1.0), (-1.0, 0.7)])
def test_ball_and_centre_kernels_equal_numpy(backend, dtype, shape, box):
    """crit_ball, crit_centre and crit_radius_share (the lean IBP's first layer) against
    plain NumPy: the ball and the centre form bit for bit (one radius and one per row;
    coordinates at and beyond the box's faces, negative centres), the short radii's share
    to float64 rounding of a dense product over the same coordinates, and every backend's
    share bit for bit equal to Numba's (the same order of sums)."""
    from support import on_backend_device, to_numpy

    from fastmem import select_backend

    rng = np.random.default_rng(shape[1])
    n, d = shape
    x = rng.uniform(box[0], box[1], shape).astype(dtype)
    x.flat[: min(4, x.size)] = np.array([box[0], box[1], box[0] + 1e-4, box[1] - 1e-4])[
        : min(4, x.size)
    ]
    w = 9
    absw = np.abs(rng.normal(size=(d, w)))
    up, thr = 1 + 2 * float(np.finfo(dtype).eps), 1 - 2.0**-15
    radii = (np.array([0.003], dtype), rng.uniform(0, 0.02, n).astype(dtype))
    shares = {}
    for name in ("numba", backend):
        k = select_backend("cuda" if name == "cuda" else "cpu", name).kernels
        dev = lambda a, name=name: on_backend_device(np.ascontiguousarray(a), name)  # noqa: E731
        for r in radii:
            lo, hi = dev(np.empty_like(x)), dev(np.empty_like(x))
            k.crit_ball(dev(x), dev(r), box[0], box[1], lo, hi)
            ref_lo, ref_hi = _ball_reference(x, r if r.size == 1 else r[:, None], box)
            np.testing.assert_array_equal(to_numpy(lo), ref_lo)
            np.testing.assert_array_equal(to_numpy(hi), ref_hi)
            outs = [
                dev(np.empty(shape)),
                dev(np.empty_like(x)),
                dev(np.empty(n, dtype)),
                dev(np.empty(n, dtype)),
                dev(np.empty(n, np.int64)),
            ]
            k.crit_centre(lo, hi, up, thr, *outs)
            ref = _centre_reference(ref_lo, ref_hi, up, thr)
            for got, want in zip(outs, ref, strict=True):
                np.testing.assert_array_equal(to_numpy(got), want)
            _, radius, rmax, _, low = (to_numpy(a) for a in outs)
            share = dev(np.empty((n, w)))
            k.crit_radius_share(outs[1], outs[2], outs[4], thr, dev(absw), share)
            short = radius < (rmax * dtype(thr))[:, None]
            diff = np.where(short, rmax[:, None].astype(np.float64) - radius, 0.0)
            np.testing.assert_allclose(to_numpy(share), diff @ absw, rtol=1e-13, atol=0)
            assert np.array_equal(short.sum(axis=1), low)
            shares.setdefault(name, []).append(to_numpy(share))
    for a, b in zip(shares["numba"], shares[backend], strict=True):
        np.testing.assert_array_equal(a, b)


def test_ball_kernels_reject_contract_violations(backend):
    """The ball kernels refuse what the Python layer never passes: a radius array of the
    wrong length or dtype, mismatched shapes, a float32 centre array."""
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    from fastmem import select_backend

    k = select_backend("cpu", backend).kernels
    x = np.zeros((4, 3), np.float32)
    lo, hi = np.empty_like(x), np.empty_like(x)
    for r in (np.zeros(2, np.float32), np.zeros(1, np.float64)):
        with pytest.raises((ValueError, TypeError)):
            k.crit_ball(x, r, 0.0, 1.0, lo, hi)
    with pytest.raises((ValueError, TypeError)):
        k.crit_ball(x, np.zeros(1, np.float32), 0.0, 1.0, lo, np.empty((4, 2), np.float32))
    rows = [np.empty(4, np.float32), np.empty(4, np.float32), np.empty(4, np.int64)]
    with pytest.raises((ValueError, TypeError)):
        k.crit_centre(x, x, 1.0, 1.0, np.empty((4, 3), np.float32), x.copy(), *rows)
    with pytest.raises((ValueError, TypeError)):
        k.crit_centre(x, x, 1.0, 1.0, np.empty((4, 3)), x.copy(), *rows[:2], np.empty(3, np.int64))

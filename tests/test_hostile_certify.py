"""Hostile inputs to the certification paths (critical_samples, certified_radius with
certify="ibp" | "crown" | "alpha-crown"): balls whose bounds overflow, radii that do not
round to the net's dtype, linear models under the lean IBP pass, corners and search
points whose logits overflow. Each case is checked against facts established here
(forward passes of the network, exact arithmetic), never against the code under test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastmem
from fastmem import critical as C
from fastmem.network import ACTIVATIONS

CERTIFY = ("ibp", "crown", "alpha-crown")


def _backends():
    return [n for n in ("cpp", "numba") if fastmem.backends()[n].available]


def _net(seed, widths, act="relu", dtype=np.float32):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, np.sqrt(2.0 / i), (o, i)) for i, o in itertools.pairwise(widths)]
    bs = [rng.normal(0, 0.1, o) for o in widths[1:]]
    acts = [act] * (len(widths) - 2) or "relu"
    return fastmem.Network.from_arrays(ws, bs, acts, negative_slope=0.1, dtype=dtype)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("kind", sorted(ACTIVATIONS.values()))
def test_interval_kernel_keeps_nan_bounds(backend, kind):
    """A NaN bound (an overflow's inf - inf) bounds nothing: the activation's interval
    must not turn it into a finite value (relu's upper bound 0 made an unbounded neuron
    dead, and a float32 net was certified robust on the whole float32 range)."""
    k = fastmem.select_backend("cpu", backend).kernels
    for dtype in (np.float32, np.float64):
        lo = np.array([[np.nan, -1.0, np.nan, -np.inf]], dtype=dtype)
        hi = np.array([[np.nan, np.nan, 2.0, np.nan]], dtype=dtype)
        k.crit_interval(lo, hi, kind, 0.1)
        assert np.isnan(hi[0, :2]).all() and np.isnan(hi[0, 3])  # no upper bound
        assert np.isnan(lo[0, 0]) and np.isnan(lo[0, 2])


def test_unstable_counts_nan_bounds():
    nan = np.nan
    zl = np.array([[nan, nan, -2.0, 0.5]])
    zu = np.array([[nan, 3.0, nan, 0.7]])
    for kind in ACTIVATIONS.values():
        bad = C._unstable(zl, zu, kind)
        assert bad[0, :3].all(), kind  # not proved stable
        assert not bad[0, 3], kind  # inside one piece


@pytest.mark.parametrize("backend", _backends())
def test_overflowing_ball_certifies_nothing(backend):
    """float32 net, box (-1e308, 1e308), radius 1e307: the ball is every float32 input.
    Points of it far apart get different classes (checked by forward passes here), so no
    sample may be certified robust."""
    net = _net(3, (4, 6, 6, 3))
    X = np.random.default_rng(0).random((8, 4))
    far = np.random.default_rng(1).uniform(-1e30, 1e30, (200, 4))
    assert len(np.unique(net.predict(far))) > 1  # the class does change on the ball
    box = (-1e308, 1e308)
    for cert in CERTIFY:
        res = fastmem.critical_samples(
            net, X, radius=1e307, steps=0, certify=cert, box=box, backend=backend
        )
        assert not (res.status == "robust").any(), cert
        cr = fastmem.certified_radius(net, X, certify=cert, box=box, backend=backend, iterations=4)
        # far points at distance <= 1e30 change class: no radius of that size is certified
        assert (cr.radius < 1e30).all(), cert


@pytest.mark.parametrize("backend", _backends())
def test_float64_bounds_overflow_certifies_nothing(backend):
    """float64: the first layer's radius term overflows (1e308 x sum|W|), the next layer's
    centre is inf and its radius NaN."""
    net = _net(4, (4, 8, 8, 3), dtype=np.float64)
    X = np.random.default_rng(2).random((6, 4))
    far = np.random.default_rng(3).uniform(-1e300, 1e300, (200, 4))
    assert len(np.unique(net.predict(far))) > 1
    for cert in CERTIFY:
        res = fastmem.critical_samples(
            net, X, radius=1e308, steps=0, certify=cert, box=(-1e308, 1e308), backend=backend
        )
        assert not (res.status == "robust").any(), cert


@pytest.mark.parametrize("backend", _backends())
def test_adversarial_points_are_finite_inputs(backend):
    """Infinite box ends in float32: the ball's corners (candidate adversarial points) and
    the search's points must be finite inputs whose class (Network.predict) changes."""
    net = _net(5, (4, 6, 3))
    X = np.random.default_rng(4).random((6, 4))
    pred = net.predict(X)
    for box in ((-1e308, 1e308), (-np.inf, np.inf)):
        for steps in (0, 3):
            res = fastmem.critical_samples(
                net, X, radius=1e300, steps=steps, method="pgd", certify="ibp", box=box,
                backend=backend, rng=0,
            )  # fmt: skip
            crit = res.status == "critical"
            adv = res.adversarial[crit]
            assert np.isfinite(adv).all()
            # the class at these points in float64 (their float32 products may overflow,
            # which Network.predict refuses; relu maps the overflow's -inf to 0 exactly)
            h = adv.astype(np.float64)
            W = [np.asarray(w, np.float64) for w in net.weights]
            B = [np.asarray(b_, np.float64) for b_ in net.biases]
            for w, b_ in zip(W[:-1], B[:-1], strict=True):
                h = np.maximum(h @ w.T + b_, 0)
            logits = h @ W[-1].T + B[-1]
            assert np.isfinite(logits).all()
            assert (logits.argmax(axis=1) != pred[crit]).all()


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("n_out", [1, 2, 3])
def test_linear_model_lean_ibp(backend, n_out):
    """A network with no hidden layer under certify="ibp" (the lean pass took the output
    layer for a hidden one: a ValueError, or with as many inputs as classes a wrong
    margin). Its margin over the box is exact here: c (W_p - W_j) + b_p - b_j - r |W_p - W_j|."""
    rng = np.random.default_rng(n_out)
    d = 3
    W = rng.normal(size=(n_out, d))
    b = rng.normal(size=n_out)
    X = rng.random((10, d))
    r = 0.05
    for dtype in (np.float32, np.float64):
        net = fastmem.Network.from_arrays([W], [b], dtype=dtype)
        W2 = np.asarray(net.weights[0], np.float64)
        b2 = np.asarray(net.biases[0], np.float64)
        if n_out == 1:
            W2, b2 = np.vstack([np.zeros(d), W2]), np.concatenate([[0.0], b2])
        x = np.asarray(X, dtype)
        lo = np.clip(x - np.asarray(r, dtype), 0, 1).astype(np.float64)
        hi = np.clip(x + np.asarray(r, dtype), 0, 1).astype(np.float64)
        c, rad = (lo + hi) / 2, (hi - lo) / 2
        pred = net.predict(X)
        exact = np.full(len(X), np.inf)
        for j in range(W2.shape[0]):
            dW = W2[pred] - W2[j]
            m = (c * dW).sum(1) + b2[pred] - b2[j] - (rad * np.abs(dW)).sum(1)
            exact = np.where(pred == j, exact, np.minimum(exact, m))
        res = fastmem.critical_samples(net, X, radius=r, steps=0, certify="ibp", backend=backend)
        m = res.margin_lower.astype(np.float64)
        assert (m <= exact + 1e-12).all()
        assert np.allclose(m, exact, rtol=1e-4, atol=1e-5)
        crown = fastmem.critical_samples(
            net, X, radius=r, steps=0, certify="crown", backend=backend
        )
        np.testing.assert_array_equal(res.status == "robust", crown.status == "robust")


@pytest.mark.parametrize("backend", _backends())
def test_float32_radius_rounded_up(backend):
    """radius 0.7 rounds down in float32 (0.69999999): the float32 point p = x - 0.69999999..
    below the ball's float32 corner lies in the ball (distance <= 0.7, checked in float64)
    and has the other class (a one-logit net f(x) = x - p, 0 at p). No certificate may
    call x robust."""
    r = 0.7
    assert float(np.float32(r)) < r
    x0 = np.float32(0.6)
    corner = np.float32(x0 - np.float32(r))  # the ball's float32 face if r rounds down
    p = np.nextafter(corner, np.float32(-1))
    assert float(x0) - float(p) <= r  # p is in the ball
    net = fastmem.Network.from_arrays(
        [np.array([[1.0]])], [np.array([-float(p)])], dtype=np.float32
    )
    np.testing.assert_array_equal(net.predict(np.array([[x0], [p]], np.float32)), [1, 0])
    for cert in CERTIFY:
        res = fastmem.critical_samples(
            net, np.array([[x0]]), radius=r, steps=0, certify=cert, box=(-1, 1), backend=backend
        )
        assert res.status[0] != "robust", cert
        cr = fastmem.certified_radius(
            net, np.array([[x0]]), certify=cert, box=(-1, 1), max_radius=1.0,
            iterations=40, backend=backend,
        )  # fmt: skip
        assert cr.radius[0] < float(x0) - float(p), cert


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adversarial_points_lie_in_the_real_ball(backend, dtype):
    """Every critical sample's point is within the radius (real arithmetic, checked in
    float64 where the float32 differences are exact) and the box: the search's ball is
    rounded inward. Rounded to nearest, ``x - r`` may fall below the real face: half an
    ulp past the radius, and a float32 radius rounded up even further."""
    rng = np.random.default_rng(7)
    net = _net(3, (6, 12, 12, 3), dtype=dtype)
    X = rng.uniform(0, 1, (300, 6)).astype(dtype)
    radii = [0.7, 0.1, 3 / 255, 1 / 3]
    for r in radii:
        res = fastmem.critical_samples(
            net, X, radius=r, steps=60, method="pgd", certify="ibp", rng=1, backend=backend
        )
        hit = np.flatnonzero(res.status == "critical")
        assert hit.size  # the check sees points
        adv = np.asarray(res.adversarial, dtype=np.float64)[hit]
        x = X[hit].astype(np.float64)
        assert (np.abs(adv - x) <= r).all(), np.abs(adv - x).max() - r
        assert ((adv >= 0) & (adv <= 1)).all()
        # and each is what the network says it is: another class than x's
        assert (net.predict(adv.astype(dtype)) != net.predict(X[hit])).all()

"""alpha-CROWN (certify="alpha-crown"): sound against a strong per-class PGD, never
looser than CROWN and tighter where CROWN leaves samples unknown, the same on every CPU
backend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support import centred_net

import fastmem
from fastmem import critical


def _net(seed, widths=(20, 24, 24, 4), act="relu", dtype=np.float64):
    return centred_net(seed, widths, 80, act, dtype)


def _logits_and_jac(net, X):
    """Logits and their input Jacobians of a (leaky) ReLU net, float64, plain NumPy."""
    h = np.asarray(X, np.float64)
    J = np.broadcast_to(np.eye(X.shape[1]), (X.shape[0], X.shape[1], X.shape[1]))
    for W, b, a, s in zip(net.weights[:-1], net.biases[:-1], net.activation,
                          net.negative_slopes, strict=True):  # fmt: skip
        W = np.asarray(W, np.float64)
        z = h @ W.T + np.asarray(b, np.float64)
        neg = float(np.asarray(s, net.dtype)) if a == "leaky_relu" else 0.0
        d = np.where(z > 0, 1.0, neg)
        J = np.matmul(W, J) * d[:, :, None]
        h = z * d
    W = np.asarray(net.weights[-1], np.float64)
    return h @ W.T + np.asarray(net.biases[-1], np.float64), np.matmul(W, J)


def _per_class_pgd(net, X, pred, radius, steps=150, restarts=3, seed=0):
    """Smallest margin f_c - f_j found by PGD on each class j, random restarts."""
    rng = np.random.default_rng(seed)
    lo = np.clip(X - radius, 0, 1).astype(np.float64)
    hi = np.clip(X + radius, 0, 1).astype(np.float64)
    n, k = X.shape[0], np.asarray(net.weights[-1]).shape[0]
    rows = np.arange(n)
    best = np.full(n, np.inf)
    for j, rs in itertools.product(range(k), range(restarts)):
        x = lo + rng.random(X.shape) * (hi - lo) if rs else X.astype(np.float64)
        for t in range(steps):
            out, J = _logits_and_jac(net, x)
            best = np.minimum(best, np.where(pred == j, np.inf, out[rows, pred] - out[:, j]))
            g = J[rows, pred] - J[:, j]
            x = np.clip(x - 10 * radius / steps * 0.98**t * np.sign(g), lo, hi)
        out, _ = _logits_and_jac(net, x)
        best = np.minimum(best, np.where(pred == j, np.inf, out[rows, pred] - out[:, j]))
    return best


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_alpha_crown_sound_and_at_least_crown(act, dtype, backend):
    if backend == "cuda":
        pytest.skip("run on the CPU backends")
    net, X = _net(1, act=act, dtype=dtype)
    gained = 0.0
    for radius in (0.01, 0.03):
        kw = dict(radius=radius, steps=1, rng=0, backend=backend)
        crown = fastmem.critical_samples(net, X, certify="crown", **kw)
        alpha = fastmem.critical_samples(net, X, certify="alpha-crown", **kw)
        assert alpha.params["certify"] == "alpha-crown"
        m_c, m_a = crown.margin_lower, alpha.margin_lower
        both = ~np.isnan(m_c) & ~np.isnan(m_a)
        assert both.sum() > 40
        assert np.all(m_a[both] >= m_c[both])  # never looser than CROWN
        assert alpha.n_robust >= crown.n_robust
        # rigorous: below every margin a strong attack reaches
        found = _per_class_pgd(net, X[both], alpha.predicted[both], radius)
        assert np.all(m_a[both] <= found + 1e-12 * (1 + np.abs(found)))
        gained += float((m_a[both] - m_c[both]).sum())
    assert gained > 0  # the slopes moved somewhere


def test_alpha_crown_certified_never_broken_by_search():
    net, X = _net(2, widths=(10, 32, 32, 3))
    X = np.random.default_rng(3).random((300, 10))
    for radius in (0.02, 0.05):
        res = fastmem.critical_samples(
            net, X, radius=radius, certify="alpha-crown", method="pgd", steps=20, rng=0
        )
        rob = np.flatnonzero(res.status == "robust")
        assert rob.size
        strong = fastmem.critical_samples(
            net, X[rob], radius=radius, method="pgd", steps=200, restarts=10, certify=None,
            rng=1,
        )  # fmt: skip
        assert strong.n_critical == 0


def test_alpha_crown_with_crown_slopes_is_crown():
    # with no Adam step the rigorous evaluation uses CROWN's own slopes: the same bound
    net, X = _net(4)
    Xd, _be, model = critical._prepare(net, X, None, (0.0, 1.0))
    lo, hi = critical._ball(model, Xd, 0.03, (0.0, 1.0))
    pred = critical._predict(model, Xd)
    out = model.certify(lo, hi, pred, "crown", keep=True)
    m0 = critical._alpha_crown(model, lo, hi, pred, out["pre"], iters=0)
    m20 = critical._alpha_crown(model, lo, hi, pred, out["pre"], iters=20)
    crown = out["rows"].min(axis=1)  # CROWN's own rows (IBP kept aside)
    np.testing.assert_allclose(m0, crown, rtol=1e-9, atol=1e-9)
    assert np.all(m20 >= m0) and np.any(m20 > m0 + 1e-6)


def test_alpha_crown_identical_across_backends_and_radius():
    avail = [b for b in ("cpp", "numba") if fastmem.backends()[b].available]
    net, X = _net(5, dtype=np.float32)
    res = [
        fastmem.critical_samples(net, X, radius=0.02, certify="alpha-crown", steps=5, rng=0,
                                 backend=b)
        for b in avail
    ]  # fmt: skip
    for r in res[1:]:
        np.testing.assert_array_equal(r.status, res[0].status)
        np.testing.assert_array_equal(r.margin_lower, res[0].margin_lower)
    rad = {
        c: fastmem.certified_radius(net, X[:20], certify=c, max_radius=0.2, iterations=12).radius
        for c in ("crown", "alpha-crown")
    }
    assert np.all(rad["alpha-crown"] >= rad["crown"])

"""CROWN's certificate: rigorous in float32 and float64 against a strong per-class PGD
(plain NumPy), float32 nets certified as tightly as float64, and auto_LiRPA where it is
installed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support import centred_net

import fastmem
from fastmem import critical


def _net(seed: int, widths=(12, 24, 24, 4), dtype=np.float64):
    return centred_net(seed, widths, 60, "relu", dtype)


def _logits_and_jac(ws, bs, X):
    """Logits (n, k) and their input Jacobians (n, k, d) of a ReLU net, in float64."""
    h = X
    J = np.broadcast_to(np.eye(X.shape[1]), (X.shape[0], X.shape[1], X.shape[1]))
    for W, b in zip(ws[:-1], bs[:-1], strict=True):
        z = h @ W.T + b
        J = np.matmul(W, J) * (z > 0)[:, :, None]
        h = np.maximum(z, 0)
    return h @ ws[-1].T + bs[-1], np.matmul(ws[-1], J)


def _per_class_pgd(ws, bs, X, pred, radius, *, steps=200, restarts=4, seed=0):
    """Smallest margin f_c - f_j found over the ball (clipped to [0, 1], its ends rounded
    to X's dtype as fastmem's are) by PGD on each target class j separately, with random
    restarts (float64)."""
    rng = np.random.default_rng(seed)
    lo = np.clip(X - radius, 0, 1).astype(np.float64)
    hi = np.clip(X + radius, 0, 1).astype(np.float64)
    X = X.astype(np.float64)
    n, k = X.shape[0], ws[-1].shape[0]
    best = np.full(n, np.inf)
    rows = np.arange(n)
    for j, rs in itertools.product(range(k), range(restarts)):
        x = lo + rng.random(X.shape) * (hi - lo) if rs else X.copy()
        step = 2.5 * radius / steps * 4
        for t in range(steps):
            out, J = _logits_and_jac(ws, bs, x)
            m = out[rows, pred] - out[:, j]
            best = np.minimum(best, np.where(pred == j, np.inf, m))
            g = J[rows, pred] - J[:, j]
            x = np.clip(x - step * (0.98**t) * np.sign(g), lo, hi)
        out, _ = _logits_and_jac(ws, bs, x)
        best = np.minimum(best, np.where(pred == j, np.inf, out[rows, pred] - out[:, j]))
    return best


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("certify", ["crown", "ibp"])
def test_certificate_sound_against_per_class_pgd(dtype, certify, backend):
    net, X = _net(3, dtype=dtype)
    ws = [np.asarray(w, np.float64) for w in net.weights]
    bs = [np.asarray(b, np.float64) for b in net.biases]
    for radius in (0.01, 0.03, 0.08):
        res = fastmem.critical_samples(
            net, X, radius=radius, certify=certify, steps=5, rng=0, backend=backend
        )
        robust = np.flatnonzero(res.status == "robust")
        if not robust.size:
            continue
        found = _per_class_pgd(ws, bs, X[robust], res.predicted[robust], radius)
        # the certified lower bound lies below every margin the attack reaches
        assert np.all(res.margin_lower[robust] <= found + 1e-12 * (1 + np.abs(found)))
        assert np.all(found > 0)


def test_float32_net_certified_as_tightly_as_in_float64(backend):
    net32, X = _net(5, dtype=np.float32)
    net64 = net32.astype(np.float64)
    X = np.round(X * 1024) / 1024  # X +- radius exact in float32: the same balls
    for radius in (2.0**-7, 2.0**-5):
        kw = dict(radius=radius, certify="crown", steps=1, rng=0, backend=backend)
        r32 = fastmem.critical_samples(net32, X, **kw)
        r64 = fastmem.critical_samples(net64, X.astype(np.float64), **kw)
        assert r32.margin_lower.dtype == np.float32
        # rigorous in float32 (an allowance of its rounding), or, within a few allowances
        # of 0, the float64 certificate of the same (exactly representable) net: never
        # above the float64 bound beyond float32 rounding, and the same samples proven
        m64 = r64.margin_lower
        assert np.all(r32.margin_lower <= m64 + 1e-6 * (1 + np.abs(m64)))
        np.testing.assert_allclose(r32.margin_lower, m64, rtol=1e-2, atol=1e-2)
        np.testing.assert_array_equal(r32.status == "robust", r64.status == "robust")
        assert r32.n_robust == r64.n_robust


def test_crown_never_looser_than_ibp_per_sample(backend):
    net, X = _net(7, widths=(10, 32, 32, 32, 5))
    for radius in (0.005, 0.02, 0.05):
        m = {
            c: fastmem.critical_samples(
                net, X, radius=radius, certify=c, steps=1, rng=0, backend=backend
            ).margin_lower
            for c in ("ibp", "crown")
        }
        assert np.all(m["crown"] >= m["ibp"])


def test_crown_matches_auto_lirpa():
    """Per-sample margin bounds against auto_LiRPA's CROWN (the reference implementation)."""
    pytest.importorskip("torch", reason="auto_LiRPA needs torch")
    lirpa = pytest.importorskip(
        "auto_LiRPA", reason="auto_LiRPA is not installed (not current on PyPI: install it "
        "from its public source to run this comparison)"
    )  # fmt: skip
    import torch

    net, X = _net(11)
    layers = []
    for i, (W, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        lin.weight.data = torch.tensor(np.asarray(W))
        lin.bias.data = torch.tensor(np.asarray(b))
        layers.append(lin)
        if i < len(net.weights) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    xt = torch.tensor(X)
    radius = 0.02
    res = fastmem.critical_samples(net, X, radius=radius, certify="crown", steps=1, rng=0)
    pred = torch.tensor(res.predicted)
    k = net.weights[-1].shape[0]
    C = torch.zeros(len(X), k - 1, k, dtype=torch.float64)
    for s in range(len(X)):
        others = [j for j in range(k) if j != int(pred[s])]
        for r, j in enumerate(others):
            C[s, r, pred[s]] = 1
            C[s, r, j] = -1
    bm = lirpa.BoundedModule(model, xt)
    ptb = lirpa.PerturbationLpNorm(
        norm=np.inf, x_L=(xt - radius).clamp(0, 1), x_U=(xt + radius).clamp(0, 1)
    )
    lb, _ = bm.compute_bounds(x=(lirpa.BoundedTensor(xt, ptb),), C=C, method="CROWN")
    theirs = lb.min(dim=1).values.detach().numpy()
    # fastmem keeps the best of CROWN and IBP: never below auto_LiRPA's CROWN (bar rounding)
    assert np.all(res.margin_lower >= theirs - 1e-9 * (1 + np.abs(theirs)))


@pytest.mark.parametrize("radius", [0.004, 0.03, 0.15])
def test_certify_first_and_search_first_agree(radius, backend, monkeypatch):
    """The order (chosen by a look at a few samples) changes no status: a certificate
    never proves a sample the search breaks, and the search's trajectories do not depend
    on which samples are searched with it."""
    net, X = _net(13, widths=(12, 32, 32, 4))
    X = np.random.default_rng(1).random((300, 12))
    out = {}
    for order in (None, "certify", "search"):
        monkeypatch.setattr(critical, "_ORDER", order)
        out[order] = fastmem.critical_samples(
            net, X, radius=radius, method="pgd", steps=20, rng=0, backend=backend
        )
    for order in ("certify", "search"):
        np.testing.assert_array_equal(out[order].status, out[None].status)
    for res in out.values():
        crit = np.flatnonzero(res.status == "critical")
        ws = [np.asarray(w) for w in net.weights]
        bs = [np.asarray(b) for b in net.biases]
        logits, _ = _logits_and_jac(ws, bs, res.adversarial[crit])
        assert np.all(logits.argmax(1) != res.predicted[crit])
        assert np.all(np.abs(res.adversarial[crit] - X[crit]) <= radius + 1e-12)


def test_order_and_results_identical_across_backends():
    avail = [b for b in ("cpp", "numba") if fastmem.backends()[b].available]
    if len(avail) < 2:
        pytest.skip("needs both the cpp and numba backends")
    net, _ = _net(17, widths=(12, 32, 32, 4), dtype=np.float32)
    X = np.random.default_rng(2).random((300, 12)).astype(np.float32)
    for radius in (0.004, 0.15):
        r = [
            fastmem.critical_samples(net, X, radius=radius, method="pgd", steps=20, rng=0,
                                     backend=b)
            for b in avail
        ]  # fmt: skip
        np.testing.assert_array_equal(r[0].status, r[1].status)
        np.testing.assert_array_equal(r[0].adversarial, r[1].adversarial)
        np.testing.assert_array_equal(r[0].margin_lower, r[1].margin_lower)
        np.testing.assert_array_equal(r[0].steps_taken, r[1].steps_taken)


def test_margin_loss_finds_valid_points(backend):
    net, _ = _net(19, widths=(12, 32, 32, 4))
    X = np.random.default_rng(3).random((200, 12))
    ws = [np.asarray(w) for w in net.weights]
    bs = [np.asarray(b) for b in net.biases]
    for method in ("pgd", "lass"):
        res = fastmem.critical_samples(
            net, X, radius=0.03, method=method, loss="margin", steps=30, rng=0, backend=backend
        )
        assert res.params["loss"] == "margin"
        crit = np.flatnonzero(res.status == "critical")
        assert crit.size > 0
        logits, _ = _logits_and_jac(ws, bs, res.adversarial[crit])
        assert np.all(logits.argmax(1) != res.predicted[crit])
        ce = fastmem.critical_samples(
            net, X, radius=0.03, method=method, steps=30, rng=0, backend=backend
        )
        # the certificate does not depend on the loss: no sample robust in one, critical
        # in the other
        assert not np.any((res.status == "robust") & (ce.status == "critical"))
        assert not np.any((res.status == "critical") & (ce.status == "robust"))


def test_margin_loss_gradient_matches_finite_differences():
    net, _ = _net(23, widths=(6, 16, 16, 3))
    X = np.random.default_rng(4).random((8, 6))
    ws = [np.asarray(w) for w in net.weights]
    bs = [np.asarray(b) for b in net.biases]
    Xd, _be, model = critical._prepare(net, X, "cpp" if fastmem.backends()["cpp"].available
                                      else "numba", (0.0, 1.0))  # fmt: skip
    logits, ds = model.forward(Xd, derivs=True)
    pred = logits.argmax(1)
    g = model.margin_input_grad(logits, ds, pred)

    def loss(x):
        out, _ = _logits_and_jac(ws, bs, x)
        other = out.copy()
        other[np.arange(len(x)), pred] = -np.inf
        return other.max(1) - out[np.arange(len(x)), pred]

    h = 1e-6
    fd = np.stack([(loss(X + h * e) - loss(X - h * e)) / (2 * h) for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_bad_loss_is_named():
    net, X = _net(1)
    with pytest.raises(fastmem.InputError, match="loss"):
        fastmem.critical_samples(net, X, radius=0.01, loss="hinge")


def test_look_searches_first_where_the_certificate_proves_nothing(backend):
    """The look picks the order: at a radius where the certificate proves no sample and
    the search breaks most at once, search first; at a tiny one, certify first. Either
    way the statuses are those of the other order (see above)."""
    net, _ = _net(13, widths=(12, 32, 32, 4))
    X = np.random.default_rng(1).random((300, 12))
    big = fastmem.critical_samples(net, X, radius=0.3, method="pgd", steps=20, rng=0,
                                   backend=backend)  # fmt: skip
    assert big.n_robust == 0 and big.n_critical > 150
    assert big.params["order"] == "search"
    small = fastmem.critical_samples(net, X, radius=1e-4, method="pgd", steps=20, rng=0,
                                     backend=backend)  # fmt: skip
    assert small.n_robust > 150
    assert small.params["order"] == "certify"
    only = fastmem.critical_samples(net, X, radius=0.3, steps=0, rng=0, backend=backend)
    assert only.params["order"] == "certify" and np.all(only.steps_taken == 0)

"""CROWN as tight as the reference: per-sample margin bounds against auto_LiRPA's CROWN
(where installed) on a random He-init net and an MLP trained on scikit-learn's digits, in
float32 and float64; the first layer's bounds of float32 nets to one float32 rounding of
the exact interval; the certificate-only call (``steps=0``)."""

from __future__ import annotations

import numpy as np
import pytest
from support import centred_net

import fastmem
from fastmem import critical


def _he_net(dtype):
    rng = np.random.default_rng(0)
    widths = (40, 32, 32, 32, 10)
    ws = [rng.normal(0, np.sqrt(2.0 / widths[i]), (widths[i + 1], widths[i])) for i in range(4)]
    bs = [np.zeros(widths[i + 1]) for i in range(4)]
    X = np.random.default_rng(1).random((120, widths[0]))
    return fastmem.Network.from_arrays(ws, bs).astype(dtype), X.astype(dtype)


def _digits_net(dtype):
    pytest.importorskip("sklearn", reason="the digits MLP is trained by scikit-learn")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from fastmem import datasets

    X, y = datasets.digits()
    clf = MLPClassifier(hidden_layer_sizes=(32, 32), max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[:600], y[:600])
    return fastmem.Network.from_sklearn(clf).astype(dtype), X[600:720].astype(dtype)


def _lirpa_margins(net, X, pred, radius, method="CROWN"):
    """auto_LiRPA's CROWN (or IBP) lower bound of the smallest margin f_pred - f_j per sample."""
    import torch
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    tdt = torch.float32 if net.dtype == np.float32 else torch.float64
    layers = []
    for i, (W, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).to(tdt)
        lin.weight.data = torch.tensor(np.asarray(W), dtype=tdt)
        lin.bias.data = torch.tensor(np.asarray(b), dtype=tdt)
        layers.append(lin)
        if i < len(net.weights) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()
    xt = torch.tensor(X, dtype=tdt)
    k = net.widths[-1]
    C = torch.zeros(len(X), k - 1, k, dtype=tdt)
    for s, p in enumerate(pred):
        for r, j in enumerate(j for j in range(k) if j != int(p)):
            C[s, r, int(p)] = 1
            C[s, r, j] = -1
    bm = BoundedModule(model, xt, device="cpu")
    ptb = PerturbationLpNorm(
        norm=np.inf, x_L=(xt - radius).clamp(0, 1), x_U=(xt + radius).clamp(0, 1)
    )
    with torch.no_grad():
        lb, _ = bm.compute_bounds(x=(BoundedTensor(xt, ptb),), C=C, method=method)
    return lb.min(dim=1).values.double().numpy()


@pytest.mark.parametrize("which", ["he", "digits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["crown", "ibp"])
def test_crown_per_sample_at_least_auto_lirpa(which, dtype, method):
    """fastmem's margin bound >= auto_LiRPA's minus 1e-5 (relative to 1 + |theirs|) per
    sample and at least as many samples certified, at several radii (L_inf clipped to
    [0, 1]); the same for IBP (1e-4 in float32: its radius term is a float32 product).
    auto_LiRPA, without rounding control, may sit above the exact bound by float
    rounding only, so the tolerance is a few float32 roundings of the margin."""
    pytest.importorskip("torch", reason="auto_LiRPA needs torch")
    pytest.importorskip(
        "auto_LiRPA", reason="auto_LiRPA is not installed (not current on PyPI: install it "
        "from its public source to run this comparison)"
    )  # fmt: skip
    net, X = _he_net(dtype) if which == "he" else _digits_net(dtype)
    for r255 in (0.3, 2.0, 8.0, 32.0):
        r = r255 / 255
        res = fastmem.critical_samples(net, X, radius=r, certify=method, steps=0)
        theirs = _lirpa_margins(net, X, res.predicted, r, method.upper())
        ours = res.margin_lower.astype(np.float64)
        rel = (ours - theirs) / (1 + np.abs(theirs))
        # IBP of float32 nets: its first layer's radius term is a float32 product
        tol = 1e-4 if method == "ibp" and dtype == np.float32 else 1e-5
        assert rel.min() >= -tol, (r255, rel.min())
        assert int((ours > 0).sum()) >= int((theirs > 0).sum())


def test_first_layer_bounds_of_float32_nets_one_rounding_from_exact(backend):
    """The first layer's interval over a box (the centre product in float64, the radius
    term in float32 rounded up, rounded outward): contains the exact range, and is wider
    by at most two float32 ulps plus float32's relative error of the radius term (its
    centre product's float32 allowance, ~d eps |c| |W|, is what it avoids)."""
    net, X = centred_net(3, (50, 40, 40, 5), 80, "relu", np.float32)
    Xd, _be, model = critical._prepare(net, X, backend, (0.0, 1.0))
    for radius in (1e-3, 0.05):
        lo, hi = critical._ball(model, Xd, radius, (0.0, 1.0))
        zl, zu = (np.asarray(a.get() if hasattr(a, "get") else a) for a in model._ibp_first(lo, hi))
        assert zl.dtype == np.float32
        W = np.asarray(net.weights[0], dtype=np.float64)
        b = np.asarray(net.biases[0], dtype=np.float64)
        lo64 = np.asarray(lo, dtype=np.float64)
        hi64 = np.asarray(hi, dtype=np.float64)
        # the exact range: each neuron's minimizing / maximizing corner (float64 sums of
        # exact products: within 1e-12 here, far below a float32 ulp)
        lower = np.where(W > 0, lo64[:, None, :], hi64[:, None, :])
        upper = np.where(W > 0, hi64[:, None, :], lo64[:, None, :])
        ex_l = np.einsum("nod,od->no", lower, W) + b
        ex_u = np.einsum("nod,od->no", upper, W) + b
        assert np.all(zl <= ex_l) and np.all(zu >= ex_u)
        ulp_l = np.spacing(np.abs(ex_l).astype(np.float32)).astype(np.float64)
        ulp_u = np.spacing(np.abs(ex_u).astype(np.float32)).astype(np.float64)
        # the radius term |W| (hi - lo) / 2, and float32's relative error of it
        rad = ((hi64 - lo64) / 2) @ np.abs(W).T
        d = W.shape[1]
        tol = rad * 4 * (d + 4) * float(np.finfo(np.float32).eps) + 1e-30
        assert np.all(zl >= ex_l - 2 * ulp_l - tol)
        assert np.all(zu <= ex_u + 2 * ulp_u + tol)
        # far tighter than float32's worst-case allowance of the whole product
        c_mag = np.abs((hi64 + lo64) / 2) @ np.abs(W).T + np.abs(b) + rad
        allowance = 2 * (d + 4) * float(np.finfo(np.float32).eps) * c_mag
        assert np.median(ex_l - zl) < 0.25 * np.median(allowance)


@pytest.mark.parametrize("certify", ["ibp", "crown"])
def test_certificate_only_equals_certify_first(certify, backend, monkeypatch):
    """``steps=0``: no search; the margins and robust samples of the certificate-first
    call, critical only where the certificate's corner changes the class."""
    net, X = centred_net(29, (12, 32, 32, 4), 200, "relu", np.float64)
    monkeypatch.setattr(critical, "_ORDER", "certify")
    for radius in (0.004, 0.05):
        kw = dict(radius=radius, certify=certify, rng=0, backend=backend)
        only = fastmem.critical_samples(net, X, steps=0, **kw)
        full = fastmem.critical_samples(net, X, steps=5, method="pgd", **kw)
        assert np.all(only.steps_taken == 0)
        np.testing.assert_array_equal(only.margin_lower, full.margin_lower)
        np.testing.assert_array_equal(only.status == "robust", full.status == "robust")
        crit = only.status == "critical"
        assert np.all(full.status[crit] == "critical")
        assert only.n_unknown >= full.n_unknown


def test_certificate_alone_of_float32_net_is_float64s_rounded_down(backend):
    """``steps=0``: a float32 net's CROWN margins are those of the same (exactly
    representable) net in float64, rounded down to float32; beside a search
    (``steps >= 1``, float32 arithmetic rechecked near 0) the same samples are robust."""
    net32, X = centred_net(31, (12, 24, 24, 4), 80, "relu", np.float32)
    net64 = net32.astype(np.float64)
    X = np.round(X * 1024) / 1024  # X +- radius exact in float32: the same balls
    for radius in (2.0**-8, 2.0**-5):
        kw = dict(radius=radius, certify="crown", rng=0, backend=backend)
        m32 = fastmem.critical_samples(net32, X.astype(np.float32), steps=0, **kw)
        m64 = fastmem.critical_samples(net64, X.astype(np.float64), steps=0, **kw)
        a = m32.margin_lower.astype(np.float64)
        b = m64.margin_lower
        assert m32.margin_lower.dtype == np.float32
        assert np.all(a <= b)
        ulp = np.spacing(np.abs(b).astype(np.float32)).astype(np.float64)
        assert np.all(a >= b - 2 * ulp)
        side = fastmem.critical_samples(net32, X.astype(np.float32), steps=1, **kw)
        np.testing.assert_array_equal(side.status == "robust", m32.status == "robust")

"""alpha-CROWN through convolutions, max pooling and residual additions
(fastmem._graph_alpha).

References independent of the code under test: torch's forward and autograd (a strong
per-class PGD and random points of each ball), the dense path's alpha-CROWN on the same
convolutional network lowered to dense matrices (``fastmem.critical._alpha_crown``,
separate code), finite differences of the optimized bound, and auto_LiRPA's alpha-CROWN
where it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmem

torch = pytest.importorskip("torch", reason="layer graphs are imported from torch modules")
nn = torch.nn

from support import traced as Traced  # noqa: E402
from test_graph import MODELS, SHAPE  # noqa: E402
from test_graph_crown import _conv_chain, _margins_torch, _strong_pgd  # noqa: E402

BACKENDS = [n for n, info in fastmem.backends().items() if info.available and n != "cuda"]

# (model, seed, radius): balls where CROWN leaves samples unknown and alpha-CROWN gains
CASES = [("pool", 3, 0.3), ("pool", 1, 0.1), ("resnet", 3, 0.05), ("resnet", 1, 0.05)]


def _setup(name: str, seed: int, n: int = 16):
    model = MODELS[name](seed=seed).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(4).uniform(0, 1, (n, 64))
    return model, net, X


@pytest.mark.parametrize(("name", "seed", "radius"), CASES)
def test_alpha_crown_at_least_crown_and_sound(name: str, seed: int, radius: float) -> None:
    model, net, X = _setup(name, seed)
    crown = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
    alpha = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="alpha-crown")
    assert alpha.params["certify"] == "alpha-crown"
    np.testing.assert_array_equal(alpha.predicted, crown.predicted)
    assert (alpha.margin_lower >= crown.margin_lower).all()  # each row the better bound
    assert alpha.n_robust >= crown.n_robust
    assert (alpha.margin_lower - crown.margin_lower).max() > 1e-3  # the slopes moved
    # rigorous: below every margin a strong per-class attack reaches ...
    found = _strong_pgd(model, X, alpha.predicted, radius, restarts=3, steps=50)
    assert (alpha.margin_lower <= found).all()
    # ... and every margin at random points of each ball
    rng = np.random.default_rng(5)
    pts = np.clip(X[:, None, :] + rng.uniform(-radius, radius, (X.shape[0], 200, 64)), 0, 1)
    pred = np.repeat(alpha.predicted, 200)
    m = _margins_torch(model, torch.from_numpy(pts.reshape(-1, *SHAPE)), pred)
    assert (m.reshape(X.shape[0], 200).min(axis=1) >= alpha.margin_lower).all()


def test_float32_alpha_crown_is_sound_and_identical_across_backends() -> None:
    model = MODELS["resnet"](seed=1).float()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE, dtype=np.float32)
    X = np.random.default_rng(4).uniform(0, 1, (16, 64)).astype(np.float32)
    got = [
        fastmem.critical_samples(net, X, radius=0.05, steps=0, certify="alpha-crown", backend=b)
        for b in BACKENDS
    ]
    res = got[0]
    assert res.margin_lower.dtype == np.float32
    for other in got[1:]:
        np.testing.assert_array_equal(other.margin_lower, res.margin_lower)
        np.testing.assert_array_equal(other.status, res.status)
    crown = fastmem.critical_samples(net, X, radius=0.05, steps=0, certify="crown")
    assert (res.margin_lower >= crown.margin_lower).all() and res.n_robust > crown.n_robust
    found = _strong_pgd(model.double(), X.astype(np.float64), res.predicted, 0.05, 2, 40)
    assert (res.margin_lower.astype(np.float64) <= found).all()


def test_float64_identical_across_backends() -> None:
    _, net, X = _setup("pool", 3, 10)
    got = [
        fastmem.critical_samples(net, X, radius=0.3, steps=0, certify="alpha-crown", backend=b)
        for b in BACKENDS
    ]
    for other in got[1:]:
        np.testing.assert_array_equal(other.margin_lower, got[0].margin_lower)


@pytest.mark.parametrize("seed", [0, 5])
def test_conv_graph_alpha_equals_dense_lowering(seed: int) -> None:
    """A convolutional ``nn.Sequential`` runs alpha-CROWN on its convolutions; the same
    network given as its dense matrices runs the dense path's alpha-CROWN (separate
    code). Same algorithm (same intermediate bounds, slopes, Adam steps), so the same
    bounds but for the rounding allowances, which the two paths bound differently
    (per op here, per layer there: the CROWN bounds agree to ~1e-12, as
    ``test_graph_crown``'s 1e-9): margins within 1e-9 (1 + |m|), the same statuses."""
    seq = _conv_chain(seed)
    net = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    assert net.layer_graph is None  # the lowered kind: its convolutions kept aside
    dense = fastmem.Network.from_arrays(net.weights, net.biases, activation=net.activation)
    X = np.random.default_rng(seed).uniform(0, 1, (30, 64))
    gained = 0.0
    for radius in (0.05, 0.1):
        kw = dict(radius=radius, steps=0, certify="alpha-crown")
        a = fastmem.critical_samples(dense, X, **kw)
        b = fastmem.critical_samples(net, X, **kw)
        c = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
        np.testing.assert_array_equal(a.status, b.status)
        assert b.n_robust >= a.n_robust
        assert np.abs(a.margin_lower - b.margin_lower).max() <= 1e-9 * (
            1 + np.abs(a.margin_lower).max()
        )
        gained += float((b.margin_lower - c.margin_lower).sum())
    assert gained > 0.1


def test_certified_radius_csr_curve_and_search_with_alpha_crown() -> None:
    model, net, X = _setup("resnet", 3, 8)
    rad = {
        c: fastmem.certified_radius(net, X, certify=c, max_radius=0.2, iterations=8).radius
        for c in ("crown", "alpha-crown")
    }
    assert (rad["alpha-crown"] >= rad["crown"]).all() and (rad["alpha-crown"] > rad["crown"]).any()
    res = fastmem.critical_samples(net, X, radius=0.05, method="pgd", steps=20, rng=0,
                                   certify="alpha-crown")  # fmt: skip
    found = _strong_pgd(model, X, res.predicted, 0.05, restarts=2, steps=40)
    assert not ((found < 0) & (res.status == "robust")).any()
    curves = {
        c: fastmem.csr_curve(net, X, [0.02, 0.05], steps=0, certify=c)
        for c in ("crown", "alpha-crown")
    }
    assert (curves["alpha-crown"].n_robust >= curves["crown"].n_robust).all()
    assert curves["alpha-crown"].n_robust[1] == res.n_robust


@pytest.mark.parametrize("name", sorted(MODELS))
def test_slope_gradient_and_crown_start(name: str) -> None:
    """The analytic gradient of the optimized bound equals central finite differences
    (random slopes, random directions), and with no step the rigorous bound with
    CROWN's own slopes is CROWN's row bound exactly."""
    from fastmem import _graph_alpha as ga
    from fastmem.critical import _ball, _predict, _prepare

    _, net, X = _setup(name, 3, 6)
    Xd, _, gm = _prepare(net, X, None, (0.0, 1.0), "alpha-crown")
    lo, hi = _ball(gm, Xd, 0.1, (0.0, 1.0))
    pred = _predict(gm, Xd)
    out = gm.certify(lo, hi, pred, "crown", keep=True)
    cr, st = gm._crown, out["bounds"]
    s_idx, lam, pos = gm._spec(pred)
    sr = ga._rows_bounds(cr, st, s_idx)
    acts = [j for j, nd in enumerate(cr.nodes) if nd.kind == "act"]
    masks = {j: ga._lower_mask(cr, st, j)[s_idx] for j in acts}
    assert sum(int(m.sum()) for m in masks.values()) > 50
    rng = np.random.default_rng(0)
    alpha = {j: np.where(masks[j], rng.uniform(0, 1, masks[j].shape), sr.relax[j]["rel"][0])
             for j in acts}  # fmt: skip
    _, saved, g0 = ga._pass(cr, sr, lam, alpha, sr.L[0], sr.U[0])
    grads = ga._grads(cr, sr, saved, g0, masks)
    d = {j: np.where(masks[j], rng.normal(size=masks[j].shape), 0.0) for j in acts}
    h = 1e-6

    def bound(sign: float) -> np.ndarray:
        moved = {j: alpha[j] + sign * h * d[j] for j in acts}
        return ga._pass(cr, sr, lam, moved, sr.L[0], sr.U[0])[0]

    fd = (bound(1.0) - bound(-1.0)) / (2 * h)
    an = sum((grads[j] * d[j]).sum(axis=1) for j in acts)
    assert np.abs(fd - an).max() <= 1e-6 * (1 + np.abs(an).max())
    got = ga.alpha_rows(cr, st, np.arange(X.shape[0]), lam, s_idx, 0, 0.25)
    s, c = np.nonzero(pos >= 0)
    np.testing.assert_array_equal(got, out["rows"][s, c])


# ------------------------------------------------------------------ against auto_LiRPA
def test_counts_against_auto_lirpa_alpha_crown() -> None:
    """auto_LiRPA's alpha-CROWN (float32: its alpha-CROWN fails in float64) on a small
    conv net certifies as many samples as fastmem's here (5 of 10; CROWN: 4, both). Per
    sample auto_LiRPA's bounds are tighter (by up to ~0.9 on these balls): it also
    optimizes the slopes of every intermediate layer's bounds (its own slopes per start
    node), which fastmem's alpha-CROWN keeps at CROWN's (only the final rows' slopes
    move); the counts are a measured property of this net, not a theorem."""
    lirpa = pytest.importorskip("auto_LiRPA", reason="auto_LiRPA is not installed")
    seq = _conv_chain(5).float()
    net = fastmem.Network.from_torch(Traced(seq), input_shape=SHAPE, dtype=np.float32)
    n = 10
    X = np.random.default_rng(10).uniform(0, 1, (n, 64)).astype(np.float32)
    radius = 0.03
    x = torch.from_numpy(X.reshape(-1, *SHAPE))
    with torch.no_grad():
        pred = seq(x).argmax(1)
    k = 4
    C = torch.zeros(n, k - 1, k)
    for i in range(n):
        for r, j in enumerate(j for j in range(k) if j != int(pred[i])):
            C[i, r, pred[i]], C[i, r, j] = 1, -1
    bm = lirpa.BoundedModule(seq, torch.zeros(1, *SHAPE), device="cpu", verbose=0)
    ptb = lirpa.PerturbationLpNorm(
        norm=np.inf, x_L=(x - radius).clamp(0, 1), x_U=(x + radius).clamp(0, 1)
    )
    ref = {}
    for method in ("CROWN", "alpha-CROWN"):
        lb, _ = bm.compute_bounds(
            x=(lirpa.BoundedTensor(x, ptb),), C=C, method=method, bound_upper=False
        )
        ref[method] = int((lb.min(dim=1).values > 0).sum())
    crown = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
    alpha = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="alpha-crown")
    assert crown.n_robust >= ref["CROWN"]
    assert alpha.n_robust >= ref["alpha-CROWN"] > ref["CROWN"]


class _TwoLogits(nn.Module):
    """A one-logit net as fastmem reads it: the classes are argmax (0, f)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x):
        f = self.m(x)
        return torch.cat([torch.zeros_like(f), f], 1)


@pytest.mark.parametrize(("act", "n_out", "radius"), [("leaky", 1, 0.1), ("hardtanh", 3, 0.05)])
def test_leaky_relu_hardtanh_and_one_logit(act: str, n_out: int, radius: float) -> None:
    """Leaky ReLU's lower slopes move in [s, 1]; hard-tanh's relaxation stays CROWN's
    (only the ReLU after it moves); one logit: the rows are +-f."""
    first = nn.LeakyReLU(0.1) if act == "leaky" else nn.Hardtanh()
    seq = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), first, nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16, n_out),
    )  # fmt: skip
    from test_graph import _init

    seq = _init(seq, 2).double()
    net = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    assert net.layer_graph is not None
    X = np.random.default_rng(1).uniform(0, 1, (16, 64))
    crown = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
    alpha = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="alpha-crown")
    assert (alpha.margin_lower >= crown.margin_lower).all()
    assert (alpha.margin_lower - crown.margin_lower).max() > 0.05
    model = _TwoLogits(seq) if n_out == 1 else seq
    found = _strong_pgd(model, X, alpha.predicted, radius, restarts=2, steps=40)
    assert (alpha.margin_lower <= found).all()

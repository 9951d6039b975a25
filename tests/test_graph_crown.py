"""CROWN through convolutions, max pooling and residual additions (fastmem._graph_crown).

References independent of the code under test: the dense path's CROWN on the same
convolutional network lowered to dense matrices (``fastmem.critical._Model``, separate
code), torch's forward, autograd and a strong per-class PGD, and auto_LiRPA's CROWN where
it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmem

torch = pytest.importorskip("torch", reason="layer graphs are imported from torch modules")
nn = torch.nn

from support import traced as Traced  # noqa: E402
from test_graph import MODELS, SHAPE, _init  # noqa: E402

BACKENDS = [n for n, info in fastmem.backends().items() if info.available and n != "cuda"]


def _conv_chain(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    seq = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1, groups=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 12),
        nn.ReLU(),
        nn.Linear(12, 4),
    )
    return _init(seq, seed).double()


def _margins_torch(model: nn.Module, x: torch.Tensor, pred: np.ndarray) -> np.ndarray:
    """Each sample's smallest ``f_c - f_j`` (j != c) at the points x (float64)."""
    with torch.no_grad():
        out = model(x).double().numpy()
    rows = np.arange(out.shape[0])
    m = out[rows, pred][:, None] - out
    m[rows, pred] = np.inf
    return m.min(axis=1)


def _strong_pgd(model, X, pred, radius, restarts=4, steps=60) -> np.ndarray:
    """The smallest margin a per-class PGD (each wrong class targeted, random starts)
    finds in each ball [X - r, X + r] clipped to [0, 1]."""
    x0 = torch.from_numpy(X.reshape(-1, *SHAPE))
    lo, hi = (x0 - radius).clamp(0, 1), (x0 + radius).clamp(0, 1)
    labels = torch.from_numpy(pred)
    n, k = X.shape[0], int(model(x0[:1]).shape[1])
    rows = torch.arange(n)
    best = _margins_torch(model, x0, pred)
    gen = torch.Generator().manual_seed(0)
    for target in range(k):
        for _ in range(restarts):
            x = lo + (hi - lo) * torch.rand(x0.shape, generator=gen, dtype=x0.dtype)
            for _ in range(steps):
                x.requires_grad_(True)
                out = model(x)
                obj = (out[rows, target] - out[rows, labels]).sum()
                (g,) = torch.autograd.grad(obj, x)
                with torch.no_grad():
                    x = torch.minimum(torch.maximum(x + radius / 10 * g.sign(), lo), hi)
            best = np.minimum(best, _margins_torch(model, x.detach(), pred))
    return best


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("radius", [0.01, 0.05])
def test_conv_graph_crown_equals_dense_lowering(seed: int, radius: float) -> None:
    seq = _conv_chain(seed)
    dense = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    graph = fastmem.Network.from_torch(Traced(seq), input_shape=SHAPE)
    assert dense.layer_graph is None and graph.layer_graph is not None
    X = np.random.default_rng(seed).uniform(0, 1, (30, 64))
    a = fastmem.critical_samples(dense, X, radius=radius, steps=0, certify="crown")
    b = fastmem.critical_samples(graph, X, radius=radius, steps=0, certify="crown")
    np.testing.assert_array_equal(a.status, b.status)
    scale = 1 + np.abs(a.margin_lower)
    assert np.abs(a.margin_lower - b.margin_lower).max() <= 1e-9 * scale.max()
    assert a.decided_exactly == b.decided_exactly


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("radius", [0.005, 0.02])
def test_crown_is_sound_and_at_least_ibp(name: str, radius: float) -> None:
    model = MODELS[name](seed=3).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(4).uniform(0, 1, (24, 64))
    crown = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
    ibp = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="ibp")
    assert (crown.margin_lower >= ibp.margin_lower).all()
    assert crown.n_robust >= ibp.n_robust
    found = _strong_pgd(model, X, crown.predicted, radius)
    assert (crown.margin_lower <= found).all()
    # and at random points of each ball
    rng = np.random.default_rng(5)
    for i in range(6):
        pts = np.clip(X[i] + rng.uniform(-radius, radius, (300, 64)), 0, 1)
        m = _margins_torch(
            model, torch.from_numpy(pts.reshape(-1, *SHAPE)), np.full(300, crown.predicted[i])
        )
        assert m.min() >= crown.margin_lower[i]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_region_balls_are_decided_exactly(name: str) -> None:
    """On a ball where every activation and pooling window is decided the net is affine:
    the bound is the exact minimum of each margin, the torch gradient's corner value."""
    model = MODELS[name](seed=7).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(8).uniform(0.2, 0.8, (12, 64))
    radius = 1e-7
    res = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
    x = torch.from_numpy(X.reshape(-1, *SHAPE)).requires_grad_(True)
    out = model(x)
    pred = res.predicted
    for i in range(X.shape[0]):
        best = np.inf
        for j in range(out.shape[1]):
            if j == pred[i]:
                continue
            (g,) = torch.autograd.grad(out[i, pred[i]] - out[i, j], x, retain_graph=True)
            g = g[i].reshape(-1).numpy()
            val = float((out[i, pred[i]] - out[i, j]).detach())
            best = min(best, val - radius * np.abs(g).sum())
        assert abs(res.margin_lower[i] - best) <= 1e-9 * (1 + abs(best))
    assert res.decided_exactly["robust"] + res.decided_exactly["critical"] == X.shape[0]


def test_float32_graph_crown_is_sound() -> None:
    model = MODELS["resnet"](seed=2).float()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE, dtype=np.float32)
    assert net.dtype == np.float32
    X = np.random.default_rng(6).uniform(0, 1, (16, 64)).astype(np.float32)
    res = fastmem.critical_samples(net, X, radius=0.01, steps=0, certify="crown")
    assert res.margin_lower.dtype == np.float32
    found = _strong_pgd(model.double(), X.astype(np.float64), res.predicted, 0.01)
    assert (res.margin_lower.astype(np.float64) <= found).all()


def test_backends_give_identical_bounds() -> None:
    model = MODELS["resnet"](seed=1).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(2).uniform(0, 1, (10, 64))
    got = [
        fastmem.critical_samples(net, X, radius=0.02, steps=0, certify="crown", backend=b)
        for b in BACKENDS
    ]
    for other in got[1:]:
        np.testing.assert_array_equal(got[0].margin_lower, other.margin_lower)


def test_parts_side_by_side_equal_one_thread_and_single_samples() -> None:
    # a small batch of a layer graph is certified in four parts that the threads take in
    # turn: the bounds must not depend on the threads, nor on which samples share a part
    from fastmem._threads import kernel_threads

    model = MODELS["resnet"](seed=3).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(5).uniform(0, 1, (36, 64))
    kw = dict(radius=0.02, steps=0, certify="crown")
    both = fastmem.critical_samples(net, X, **kw).margin_lower
    with kernel_threads(fastmem.select_backend("cpu"), 1):
        one = fastmem.critical_samples(net, X, **kw).margin_lower
    np.testing.assert_array_equal(both, one)
    alone = np.array([fastmem.critical_samples(net, X[i : i + 1], **kw).margin_lower[0]
                      for i in (0, 9, 10, 35)])  # fmt: skip
    np.testing.assert_allclose(both[[0, 9, 10, 35]], alone, rtol=1e-12, atol=1e-12)
    assert np.isfinite(both).all()


def test_crown_beside_a_search_finds_and_proves() -> None:
    model = MODELS["pool"](seed=4).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(9).uniform(0, 1, (30, 64))
    res = fastmem.critical_samples(net, X, radius=0.03, method="pgd", rng=0)  # certify="crown"
    assert res.params["certify"] == "crown"
    found = _strong_pgd(model, X, res.predicted, 0.03)
    assert not ((found < 0) & (res.status == "robust")).any()
    crit = np.flatnonzero(res.status == "critical")
    if crit.size:
        x = torch.from_numpy(res.adversarial[crit].reshape(-1, *SHAPE))
        with torch.no_grad():
            assert (model(x).argmax(1).numpy() != res.predicted[crit]).all()


# ------------------------------------------------------------------ against auto_LiRPA
def _lirpa_crown(model: nn.Module, X: np.ndarray, radius: float, dtype) -> np.ndarray:
    lirpa = pytest.importorskip("auto_LiRPA", reason="auto_LiRPA is not installed")
    x = torch.from_numpy(X.reshape(-1, *SHAPE)).to(dtype)
    bm = lirpa.BoundedModule(model, torch.zeros(1, *SHAPE, dtype=dtype), device="cpu")
    with torch.no_grad():
        pred = model(x).argmax(1)
    n, k = x.shape[0], int(model(x[:1]).shape[1])
    C = torch.zeros(n, k - 1, k, dtype=dtype)
    for i in range(n):
        for r, j in enumerate(j for j in range(k) if j != int(pred[i])):
            C[i, r, pred[i]] = 1
            C[i, r, j] = -1
    ptb = lirpa.PerturbationLpNorm(
        norm=np.inf, x_L=(x - radius).clamp(0, 1), x_U=(x + radius).clamp(0, 1)
    )
    lb, _ = bm.compute_bounds(
        x=(lirpa.BoundedTensor(x, ptb),), C=C, method="CROWN", bound_upper=False
    )
    return lb.min(dim=1).values.detach().double().numpy()


@pytest.mark.parametrize("radius", [0.01, 0.03])
def test_conv_graph_at_least_as_tight_as_auto_lirpa(radius: float) -> None:
    seq = _conv_chain(5)
    net = fastmem.Network.from_torch(Traced(seq), input_shape=SHAPE)
    X = np.random.default_rng(10).uniform(0, 1, (20, 64))
    ref = _lirpa_crown(seq, X, radius, torch.float64)
    got = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
    assert (got.margin_lower >= ref - 1e-9 * (1 + np.abs(ref))).all()
    assert got.n_robust >= int((ref > 0).sum())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pooling_and_skips_against_auto_lirpa(name: str) -> None:
    """auto_LiRPA's CROWN (float32: its max pooling refuses float64) on the same nets:
    as many samples certified. Per sample the bounds differ both ways by up to ~1e-3:
    fastmem's intermediate bounds are the tighter of IBP and CROWN everywhere, which
    moves some neurons' adaptive lower slope (``u > -l``); neither is a bound on the
    other. Both are sound (the PGD test above)."""
    if name == "ceil":
        pytest.skip("auto_LiRPA 0.7.1 takes neither PReLU nor ZeroPad2d, and ignores ceil_mode")
    model = MODELS[name](seed=3).float()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE, dtype=np.float32)
    X = np.random.default_rng(11).uniform(0, 1, (24, 64)).astype(np.float32)
    for radius in (0.005, 0.02):
        ref = _lirpa_crown(model, X, radius, torch.float32)
        got = fastmem.critical_samples(net, X, radius=radius, steps=0, certify="crown")
        assert got.n_robust >= int((ref > 0).sum())
        m = got.margin_lower.astype(np.float64)
        assert (m >= ref - 2e-3 * (1 + np.abs(ref))).all()
        assert np.mean(m - ref) >= -1e-5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_linear_lower_bounds_hold_on_the_whole_ball(name: str) -> None:
    """Each margin row's CROWN bound is the minimum over the ball of a linear function
    ``lam . x + c`` that must lie below the margin ``f_c - f_j`` everywhere in the ball:
    a PGD on the gap ``f_c(x) - f_j(x) - lam . x - c`` (which an unsound relaxation of
    pooling or of a skip makes negative) and random points never find it below 0."""
    from fastmem.critical import _ball, _predict, _prepare

    model = MODELS[name](seed=6).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(12).uniform(0, 1, (8, 64))
    radius = 0.05
    Xd, _, gm = _prepare(net, X, None, (0.0, 1.0), "crown")
    lo, hi = _ball(gm, Xd, radius, (0.0, 1.0))
    pred = _predict(gm, Xd)
    out = gm.certify(lo, hi, pred, "crown")
    s_idx, c_idx = np.nonzero(out["pos"] >= 0)
    r_idx = out["pos"][s_idx, c_idx]
    lam = out["lam_x"][r_idx]
    bound = out["rows"][s_idx, c_idx]
    const = bound - np.where(lam >= 0, lam * lo[s_idx], lam * hi[s_idx]).sum(axis=1)
    lo_t, hi_t = torch.from_numpy(lo[s_idx]), torch.from_numpy(hi[s_idx])
    lam_t, c_t = torch.from_numpy(lam), torch.from_numpy(const)
    own, other = torch.from_numpy(pred[s_idx]), torch.from_numpy(c_idx)
    rows = torch.arange(s_idx.size)

    def gap(x):
        f = model(x.reshape(-1, *SHAPE))
        return f[rows, own] - f[rows, other] - (x * lam_t).sum(1) - c_t

    gen = torch.Generator().manual_seed(1)
    worst = np.inf
    for _ in range(6):
        x = lo_t + (hi_t - lo_t) * torch.rand(lo_t.shape, generator=gen, dtype=lo_t.dtype)
        for _ in range(80):
            x.requires_grad_(True)
            (g,) = torch.autograd.grad(gap(x).sum(), x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x - radius / 8 * g.sign(), lo_t), hi_t)
        with torch.no_grad():
            worst = min(worst, float(gap(x).min()))
    assert worst >= -1e-12


def test_patch_rows_equal_the_dense_lowering() -> None:
    """Convolution rows carried as local patches (a 12x12 input: the windows are well
    under the image) give the dense lowering's bounds: strides, padding, groups,
    dilation, a kept BatchNorm (channel map) between two convolutions."""
    torch.manual_seed(3)
    seq = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 6, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 5),
    )
    seq = _init(seq, 3).double()
    shape = (1, 12, 12)
    dense = fastmem.Network.from_torch(seq, input_shape=shape)
    graph = fastmem.Network.from_torch(Traced(seq), input_shape=shape)
    kinds = [op.kind for op in graph.layer_graph.ops]
    assert "channel_affine" in kinds  # the BatchNorm after the activation is kept
    from fastmem._graph_crown import GraphCrown

    gc = GraphCrown(fastmem.critical._prepare(graph, np.zeros((1, 144)), None, None)[2])
    convs = [k for k, nd in enumerate(gc.nodes) if nd.kind == "conv2d"]
    assert all(gc._patch_pays(k) for k in convs[1:])
    X = np.random.default_rng(3).uniform(0, 1, (12, 144))
    for radius in (0.01, 0.04):
        a = fastmem.critical_samples(dense, X, radius=radius, steps=0, certify="crown")
        b = fastmem.critical_samples(graph, X, radius=radius, steps=0, certify="crown")
        scale = 1 + np.abs(a.margin_lower)
        assert np.abs(a.margin_lower - b.margin_lower).max() <= 1e-9 * scale.max()
        np.testing.assert_array_equal(a.status, b.status)


def test_patch_merges_equal_full_rows() -> None:
    """Uniting two paths' patches (same relative offset: one window) and the fallback to
    full rows (offsets that differ from row to row) both give the sum of the full rows."""
    from fastmem._graph_crown import GraphCrown

    net = fastmem.Network.from_torch(MODELS["resnet"](seed=1).double(), input_shape=SHAPE)
    X = np.random.default_rng(0).uniform(0, 1, (3, 64))
    gm = fastmem.critical._prepare(net, X, None, (0.0, 1.0))[2]
    gc = GraphCrown(gm)
    st = gc.bounds(X - 0.01, X + 0.01, False)
    node = next(k for k, nd in enumerate(gc.nodes) if nd.kind == "add")
    C = gc._shape(node)[0]
    rng = np.random.default_rng(1)
    rows = np.array([0, 1, 2, 2])
    a = (rng.normal(size=(4, C, 3, 3)), np.array([0, 1, 2, 5]), np.array([1, 0, 3, 4]))
    for b in (
        (rng.normal(size=(4, C, 1, 2)), a[1] + 1, a[2] + 2),  # inside a's window
        (rng.normal(size=(4, C, 2, 2)), a[1] - 1, a[2] + 3),  # overlapping it
        (rng.normal(size=(4, C, 2, 2)), np.array([0, 4, 1, 6]), np.array([0, 0, 5, 1])),
    ):
        want = gc._densify(*a, node) + gc._densify(*b, node)
        pend = {node: a}
        err = np.zeros(4)
        gc._merge(pend, node, b, err, st, rows)
        np.testing.assert_allclose(gc._densify(*pend[node], node), want, rtol=0, atol=1e-15)
        assert (err > 0).all()

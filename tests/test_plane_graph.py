"""fastmem.plane_regions on layer graphs (max pooling, residual blocks, traced convs).

References, none of them the plane code: the forward pass of ``Network.pattern_hashes``
and the torch module itself at sampled points, point-in-convex-polygon tests written
here, the exact segment walk of ``along_segments`` on lines of the slice, a brute-force
grid of hashes, and the dense path of ``plane_regions`` on the same convolutions
lowered to dense matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastmem
from fastmem import InputError, Network
from fastmem import _graph as G

torch = pytest.importorskip("torch", reason="the layer-graph networks are built in torch")
nn = torch.nn

from support import traced  # noqa: E402
from test_graph import CeilNet  # noqa: E402


# ------------------------------------------------------------------ networks
def _init(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.6)
    return module.double().eval()


def pool_cnn(act: str = "relu", seed: int = 0, padded: bool = True) -> nn.Module:
    """Conv - act - MaxPool2d(2) - conv - act - MaxPool2d (overlapping and padded,
    ``(3, 2, 1)``, or ``2``) - Linear, on (1, 8, 8)."""
    a = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1), "hardtanh": nn.Hardtanh}[act]
    last = nn.MaxPool2d(3, stride=2, padding=1) if padded else nn.MaxPool2d(2)
    return _init(
        nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1), a(), nn.MaxPool2d(2),
            nn.Conv2d(3, 4, 3, padding=1), a(), last, nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
        ),
        seed,
    )  # fmt: skip


class Block(nn.Module):
    """A ResNet basic block (BatchNorm left out: folded or kept, it is affine)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.short = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.short(x))


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.layer1 = Block(2, 2)
        self.layer2 = Block(2, 3)
        self.fc = nn.Linear(3 * 6 * 6, 3)

    def forward(self, x):
        x = self.layer2(self.layer1(torch.relu(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


class ConvNet(nn.Module):
    """Convs only, traced into a layer graph (a class of its own, not an nn.Sequential)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(),
            nn.Flatten(), nn.Linear(4, 3),
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)


class Inception(nn.Module):
    """Branches joined by ``torch.cat`` (the ``concat`` op), a DenseNet-style join
    ``[z, relu(z)]``, max pooling over it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.a1 = nn.Conv2d(2, 1, 1)
        self.a3 = nn.Conv2d(2, 2, 3, padding=1)
        self.mix = nn.Conv2d(3, 2, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = torch.cat([torch.relu(self.a1(h)), torch.relu(self.a3(h))], 1)
        z = self.mix(h)
        return self.fc(torch.flatten(self.pool(torch.cat((z, torch.relu(z)), 1)), 1))


CASES = {
    "inception": (lambda: _init(Inception(), 4), (1, 8, 8), 0.8),
    "pool": (lambda: pool_cnn("relu", 0), (1, 8, 8), 1.0),
    "pool_leaky": (lambda: pool_cnn("leaky_relu", 1, padded=False), (1, 8, 8), 0.5),
    "pool_hardtanh": (lambda: pool_cnn("hardtanh", 2, padded=False), (1, 8, 8), 0.35),
    "resnet": (lambda: _init(ResNet(), 3), (1, 6, 6), 0.8),
    "ceil": (lambda: CeilNet(seed=2).double(), (1, 8, 8), 0.8),
}


def _case(name: str, seed: int = 0):
    make, shape, half = CASES[name]
    module = make()
    net = Network.from_torch(module, input_shape=shape)
    assert net.layer_graph is not None
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    o = rng.uniform(-1, 1, d)
    D = rng.normal(size=(2, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    ext = (-half, half * 0.8, -half * 0.9, half)
    return module, net, shape, o, D, ext


# ------------------------------------------------------------------ helpers (independent)
def _polys(r):
    V, off, idx = r.vertices, r.polygons.offsets, r.polygons.values
    return [V[idx[off[i] : off[i + 1]]] for i in range(r.count)]


def _inside(r, pts, eps=1e-12):
    """(n_points, count): point strictly inside polygon, plain NumPy polygon by polygon."""
    out = np.zeros((pts.shape[0], r.count), dtype=bool)
    for i, P in enumerate(_polys(r)):
        e = np.roll(P, -1, axis=0) - P
        ln = np.hypot(e[:, 0], e[:, 1])
        keep = ln > 0
        P, e, ln = P[keep], e[keep], ln[keep]
        cr = e[:, 0] * (pts[:, 1:2] - P[:, 1]) - e[:, 1] * (pts[:, 0:1] - P[:, 0])
        out[:, i] = (cr > eps * ln).all(axis=1)
    return out


def _torch_logits(module, shape, X):
    with torch.no_grad():
        return module(torch.from_numpy(X.reshape(-1, *shape))).numpy()


def _check_tiling(r, net, rng, n_samples=300):
    s0, s1, t0, t1 = r.extent
    area = (s1 - s0) * (t1 - t0)
    assert r.count == len(r.polygons) == r.areas.shape[0] == r.pattern_hashes.shape[0]
    assert abs(float(r.areas.sum()) - area) <= 1e-12 * area
    assert (r.areas > 0).all()
    for P in _polys(r):  # counter-clockwise and convex
        assert P.shape[0] >= 3
        e = np.roll(P, -1, axis=0) - P
        f = np.roll(e, -1, axis=0)
        turn = e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0]
        assert (turn >= -1e-9 * np.hypot(*e.T) * np.hypot(*f.T)).all()
    # conforming: an inner side is shared by exactly two polygons, a border side by one
    V, off, idx = r.vertices, r.polygons.offsets, r.polygons.values
    sides: dict[tuple[int, int], int] = {}
    for i in range(r.count):
        c = idx[off[i] : off[i + 1]].tolist()
        for a, b in zip(c, c[1:] + c[:1], strict=True):
            sides[(min(a, b), max(a, b))] = sides.get((min(a, b), max(a, b)), 0) + 1
    for (a, b), n in sides.items():
        pa, pb = V[a], V[b]
        border = any(pa[k] == pb[k] == bound for k, bound in ((0, s0), (0, s1), (1, t0), (1, t1)))
        assert n == (1 if border else 2), (pa, pb, n)
    assert len({tuple(v) for v in V.tolist()}) == V.shape[0]
    # every vertex is a corner of some polygon
    assert np.array_equal(np.unique(idx), np.arange(V.shape[0]))
    # random points: in exactly one polygon, with its pattern
    pts = np.column_stack([rng.uniform(s0, s1, n_samples), rng.uniform(t0, t1, n_samples)])
    inside = _inside(r, pts)
    assert (inside.sum(axis=1) == 1).all()
    which = inside.argmax(axis=1)
    np.testing.assert_array_equal(
        r.pattern_hashes[which], net.pattern_hashes(r.point(pts[:, 0], pts[:, 1]))
    )
    # each polygon's hash at its vertex mean (interior), and its packed pattern
    c = r.centroids()
    X = r.point(c[:, 0], c[:, 1])
    np.testing.assert_array_equal(r.pattern_hashes, net.pattern_hashes(X))
    np.testing.assert_array_equal(r.patterns, net.activation_patterns(X))
    # the network is affine on a region given its pattern (pooling argmax included), so a
    # pattern's region is convex: one polygon per pattern (the pieces were merged)
    assert np.unique(r.pattern_hashes).shape[0] == r.count


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", list(CASES))
def test_tiling_patterns_and_backends(name: str) -> None:
    _m, net, _s, o, D, ext = _case(name)
    r = fastmem.plane_regions(net, o, D, extent=ext, backend="cpp")
    assert 30 <= r.count <= 3000, r.count  # a slice with something to cut
    _check_tiling(r, net, np.random.default_rng(1))
    # the numba kernels: the same result, bit for bit
    q = fastmem.plane_regions(net, o, D, extent=ext, backend="numba")
    assert (r.backend, q.backend) == ("cpp", "numba")
    for f in ("vertices", "areas", "pattern_hashes", "patterns", "predicted", "logits"):
        np.testing.assert_array_equal(getattr(r, f), getattr(q, f), err_msg=f)
    np.testing.assert_array_equal(r.polygons.values, q.polygons.values)
    np.testing.assert_array_equal(r.polygons.offsets, q.polygons.offsets)
    np.testing.assert_array_equal(r.boundary.values, q.boundary.values)


@pytest.mark.parametrize("name", ["pool", "resnet", "inception"])
def test_logits_and_predicted_against_torch(name: str) -> None:
    module, net, shape, o, D, ext = _case(name, seed=2)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    rng = np.random.default_rng(3)
    s0, s1, t0, t1 = ext
    pts = np.column_stack([rng.uniform(s0, s1, 200), rng.uniform(t0, t1, 200)])
    which = _inside(r, pts).argmax(axis=1)
    # the affine map of each region gives the torch forward at any point inside it
    L = r.logits[which]
    got = L[:, 0] + pts[:, :1] * L[:, 1] + pts[:, 1:] * L[:, 2]
    ref = _torch_logits(module, shape, r.point(pts[:, 0], pts[:, 1]))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    # the predicted class, where constant, is torch's at the vertex mean and at the points
    c = r.centroids()
    top = _torch_logits(module, shape, r.point(c[:, 0], c[:, 1])).argmax(axis=1)
    const = r.predicted >= 0
    assert const.any()
    np.testing.assert_array_equal(r.predicted[const], top[const])
    # where the class is not constant, torch predicts two classes near the corners
    for i in np.flatnonzero(~const):
        P = _polys(r)[i]
        near = P + 1e-6 * (c[i] - P)
        assert np.unique(_torch_logits(module, shape, r.point(*near.T)).argmax(axis=1)).size > 1
    at_pts = r.predicted[which]
    ok = at_pts >= 0
    np.testing.assert_array_equal(at_pts[ok], ref.argmax(axis=1)[ok])


@pytest.mark.parametrize("name", ["pool_leaky", "pool_hardtanh", "resnet", "pool", "inception"])
def test_lines_in_the_slice_agree_with_along_segments(name: str) -> None:
    _m, net, _s, o, D, ext = _case(name, seed=4)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    rng = np.random.default_rng(5)
    s0, s1, t0, t1 = ext
    polys = _polys(r)
    for _ in range(4):
        a = np.array([rng.uniform(s0, s1), rng.uniform(t0, t1)])
        b = np.array([rng.uniform(s0, s1), rng.uniform(t0, t1)])
        pieces = []  # the segment a + lam (b - a) clipped by every (convex) polygon
        for i, P in enumerate(polys):
            e = np.roll(P, -1, axis=0) - P
            lo, hi = 0.0, 1.0
            for p, ed in zip(P, e, strict=True):
                c0 = ed[0] * (a[1] - p[1]) - ed[1] * (a[0] - p[0])
                c1 = ed[0] * (b[1] - a[1]) - ed[1] * (b[0] - a[0])
                if c1 == 0:
                    if c0 < 0:
                        lo, hi = 1.0, 0.0
                    continue
                lam = -c0 / c1
                if c1 > 0:
                    lo = max(lo, lam)
                else:
                    hi = min(hi, lam)
            if hi - lo > 1e-12:
                pieces.append((lo, hi, int(r.pattern_hashes[i])))
        pieces.sort()
        merged = [pieces[0]]
        for p in pieces[1:]:
            assert p[0] == pytest.approx(merged[-1][1], abs=1e-9)
            if p[2] == merged[-1][2]:
                merged[-1] = (merged[-1][0], p[1], p[2])
            else:
                merged.append(p)
        assert merged[-1][1] == pytest.approx(1.0, abs=1e-12)
        seg = fastmem.along_segments(net, r.point(*a)[None], r.point(*b)[None])
        assert int(seg.counts[0]) == len(merged)
        np.testing.assert_allclose(seg.breakpoints[0], [p[0] for p in merged[1:]], atol=1e-9)
        np.testing.assert_array_equal(seg.pattern_hashes[0], [p[2] for p in merged])


@pytest.mark.parametrize("name", ["pool", "resnet", "inception"])
def test_brute_force_grid(name: str) -> None:
    """Every hash on a fine grid is a polygon's; every polygon holding a disc wider than a
    grid cell's diagonal around its vertex mean is hit by the grid."""
    _m, net, _s, o, D, ext = _case(name, seed=6)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    s0, s1, t0, t1 = ext
    n = 200
    ss, tt = np.meshgrid(np.linspace(s0, s1, n + 2)[1:-1], np.linspace(t0, t1, n + 2)[1:-1])
    grid = set(net.pattern_hashes(r.point(ss.ravel(), tt.ravel())).tolist())
    assert grid <= set(r.pattern_hashes.tolist())
    cell = math.hypot((s1 - s0) / (n + 1), (t1 - t0) / (n + 1))
    c = r.centroids()
    hit = 0
    for i, P in enumerate(_polys(r)):
        e = np.roll(P, -1, axis=0) - P
        ln = np.hypot(*e.T)
        k = ln > 0
        dist = (e[k, 0] * (c[i, 1] - P[k, 1]) - e[k, 1] * (c[i, 0] - P[k, 0])) / ln[k]
        if dist.min() > cell:
            assert int(r.pattern_hashes[i]) in grid
            hit += 1
    assert hit >= r.count // 4


def test_conv_graph_equals_its_dense_lowering() -> None:
    """A traced conv network (a layer graph without pooling or residual ops) against the
    same modules as an nn.Sequential, which from_torch lowers to dense matrices."""
    module = _init(ConvNet(), 7)
    graph_net = Network.from_torch(module, input_shape=(1, 6, 6))
    dense_net = Network.from_torch(module.body, input_shape=(1, 6, 6))
    assert graph_net.layer_graph is not None and dense_net.layer_graph is None
    rng = np.random.default_rng(8)
    o = rng.uniform(-1, 1, 36)
    D = rng.normal(size=(2, 36))
    ext = (-1.5, 1.2, -1.0, 1.4)
    g = fastmem.plane_regions(graph_net, o, D, extent=ext)
    d = fastmem.plane_regions(dense_net, o, D, extent=ext)
    assert g.count == d.count > 50
    np.testing.assert_allclose(g.vertices, d.vertices, atol=1e-9)
    np.testing.assert_array_equal(g.polygons.values, d.polygons.values)
    np.testing.assert_allclose(g.areas, d.areas, atol=1e-9)
    np.testing.assert_allclose(g.logits, d.logits, atol=1e-9, rtol=1e-9)
    np.testing.assert_array_equal(g.pattern_hashes, d.pattern_hashes)
    np.testing.assert_array_equal(g.predicted, d.predicted)


def test_relu6_conv_graph_equals_its_dense_lowering(backend) -> None:
    """ReLU6 (its own kind, both clamp ends crossed): the traced graph and its dense
    lowering tile the slice alike, each tiling valid against the forward pass."""
    torch.manual_seed(1)
    body = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU6(), nn.Conv2d(3, 2, 3), nn.ReLU6(),
        nn.Flatten(), nn.Linear(2 * 4 * 4, 3),
    ).double().eval()  # fmt: skip
    with torch.no_grad():
        body[0].weight.mul_(6.0)
    dense_net = Network.from_torch(body, input_shape=(1, 6, 6))
    graph_net = Network.from_torch(traced(body), input_shape=(1, 6, 6))
    assert dense_net.activation == ("relu6", "relu6") and graph_net.layer_graph is not None
    rng = np.random.default_rng(0)
    o, D, ext = rng.uniform(0, 1, 36), rng.normal(size=(2, 36)), (-2.0, 2.0, -2.0, 2.0)
    g = fastmem.plane_regions(graph_net, o, D, extent=ext, backend=backend)
    d = fastmem.plane_regions(dense_net, o, D, extent=ext, backend=backend)
    assert g.count == d.count > 1000
    np.testing.assert_array_equal(np.sort(g.pattern_hashes), np.sort(d.pattern_hashes))
    _check_tiling(g, graph_net, rng)
    X = g.point(*g.centroids().T)
    z = body[:1](torch.from_numpy(X.reshape(-1, 1, 6, 6))).detach().numpy()
    assert (z > 6).any() and ((z > 0) & (z < 6)).any()


def _graph(ops_fn, shape):
    ops = ops_fn(shape)
    return Network._from_graph(G.LayerGraph(tuple(ops), shape), np.float64)


def test_threshold_activation_and_refusals() -> None:
    rng = np.random.default_rng(9)
    shape = (1, 4, 4)

    def ops(shape, inner_threshold=False):
        conv = G.make_conv2d("c", "Conv2d", shape, rng.normal(size=(2, 1, 3, 3)),
                             rng.normal(size=2), 1, (1, 1), 1, 1)  # fmt: skip
        act = G.make_act("a", "ReLU", conv.out_shape, "relu", 0.0)
        pool = G.make_pool("maxpool2d", "p", "MaxPool2d", act.out_shape, 2, 2, (0, 0))
        conv2 = G.make_conv2d("c2", "Conv2d", pool.out_shape, rng.normal(size=(2, 2, 1, 1)),
                              rng.normal(size=2), 1, (0, 0), 1, 1)  # fmt: skip
        step = G.make_act("s", "Threshold", conv2.out_shape, "threshold", 0.0)
        body = (conv2, step) if inner_threshold else (conv2,)
        res = G.make_residual("r", "add", pool.out_shape, body, ())
        after = () if inner_threshold else (G.make_act("s", "Threshold", res.out_shape,
                                                       "threshold", 0.0),)  # fmt: skip
        flat = G.make_flatten("f", "Flatten", (after[-1] if after else res).out_shape)
        lin = G.make_linear("l", "Linear", flat.out_shape, rng.normal(size=(3, 8)), None)
        return [conv, act, pool, res, *after, flat, lin]

    net = _graph(ops, shape)
    o = rng.uniform(-1, 1, 16)
    D = rng.normal(size=(2, 16))
    ext = (-1.0, 1.0, -1.0, 1.0)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    assert r.count > 5
    c = r.centroids()
    np.testing.assert_array_equal(r.pattern_hashes, net.pattern_hashes(r.point(*c.T)))
    assert abs(r.areas.sum() - 4.0) <= 4e-12
    # constant after the step: the logits' slopes are zero, the values torch-free forward's
    assert not r.logits[:, 1:].any()
    np.testing.assert_allclose(r.logits[:, 0], net.forward(r.point(*c.T)), rtol=1e-12)
    # a threshold inside a residual block is refused (naming the op)
    bad = _graph(lambda s: ops(s, inner_threshold=True), shape)
    with pytest.raises(InputError, match=r"s \(Threshold\): a threshold activation inside"):
        fastmem.plane_regions(bad, o, D, extent=ext)


def test_bad_inputs_are_refused() -> None:
    smooth = _init(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(2 * 3 * 3, 2)), 0
    )  # fmt: skip
    net = Network.from_torch(smooth, input_shape=(1, 8, 8))
    o, D = np.zeros(64), np.eye(64)[:2]
    with pytest.raises(InputError, match=r"net: 1 \(Tanh\) \(tanh\) is not piecewise linear"):
        fastmem.plane_regions(net, o, D)
    _m, net, _s, o, D, _e = _case("pool")
    with pytest.raises(InputError, match="origin: has shape"):
        fastmem.plane_regions(net, o[:-1], D)
    with pytest.raises(InputError, match="directions: the two rows are parallel"):
        fastmem.plane_regions(net, o, np.stack([D[0], 2 * D[0]]))


def test_refuses_what_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import fastmem._validate as v

    _m, net, _s, o, D, ext = _case("resnet")
    monkeypatch.setattr(v, "_UNCHECKED_BYTES", 0)
    monkeypatch.setattr(v, "available_memory", lambda xp=np: (20_000, "test"))
    with pytest.raises(InputError, match=r"net: .*regions of the slice.* would need about"):
        fastmem.plane_regions(net, o, D, extent=ext)

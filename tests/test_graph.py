"""The layer model (fastmem._graph): max pooling and residual blocks.

References written here, independent of fastmem's code: torch's own forward (float64),
the dense lowering of the same convolutional network (``Network.from_torch`` on an
``nn.Sequential`` without max pooling), and a region walk along each segment that steps
from event to event using torch forward-mode derivatives (``torch.func.jvp``) of every
pre-activation and pooling window.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import init_torch_module, traced

import fastmem
from fastmem import InputError

torch = pytest.importorskip("torch", reason="the layer model imports torch modules")
nn = torch.nn
F = torch.nn.functional

BACKENDS = [n for n, info in fastmem.backends().items() if info.available and n != "cuda"]


def _init(module: nn.Module, seed: int) -> nn.Module:
    return init_torch_module(module, seed, 0.5)


class PoolNet(nn.Module):
    """conv-relu-maxpool-conv-relu-flatten-linear (``forward`` traced by torch.fx)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 2 * 2, 3)
        _init(self, seed)

    def forward(self, x):
        x = self.pool(F.relu(self.c1(x)))
        x = torch.relu(self.c2(x))
        return self.fc(torch.flatten(x, 1))

    def probe(self, x):
        """Every quantity whose sign or order sets the pattern, in fastmem's op order."""
        z1 = self.c1(x)
        win = F.unfold(F.relu(z1), 2, stride=2)  # (n, C*4, L): the pooling windows
        n = x.shape[0]
        win = win.reshape(n, 3, 4, -1).permute(0, 1, 3, 2).reshape(n, -1, 4)
        z2 = self.c2(F.max_pool2d(F.relu(z1), 2))
        return [("act", z1.reshape(n, -1)), ("pool", win), ("act", z2.reshape(n, -1))]


class Basic(nn.Module):
    """A ResNet basic block (BatchNorm, optional 1x1 downsampling shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = None
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.short is None else self.short(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
        self.layer1 = Basic(2, 2, 1)
        self.layer2 = Basic(2, 3, 2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(3 * 2 * 2, 4)
        _init(self, seed)

    def forward(self, x):
        x = self.pool(self.layer2(self.layer1(self.stem(x))))
        return self.fc(x.view(x.size(0), -1))

    def probe(self, x):
        n = x.shape[0]
        out = []
        z = self.stem[0](x)
        out.append(("act", z.reshape(n, -1)))
        h = F.relu(z)
        for blk in (self.layer1, self.layer2):
            z1 = blk.bn1(blk.conv1(h))
            out.append(("act", z1.reshape(n, -1)))
            z2 = blk.bn2(blk.conv2(F.relu(z1))) + (h if blk.short is None else blk.short(h))
            out.append(("act", z2.reshape(n, -1)))
            h = F.relu(z2)
        win = F.unfold(h, 2, stride=2).reshape(n, 3, 4, -1).permute(0, 1, 3, 2).reshape(n, -1, 4)
        out.append(("pool", win))
        return out


class Inception(nn.Module):
    """An Inception module (1x1 and 3x3 branches joined by ``torch.cat``), a DenseNet-style
    join ``[z, relu(z)]`` and max pooling over it (fastmem's ``concat`` op)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.a1 = nn.Conv2d(3, 2, 1)
        self.a3 = nn.Conv2d(3, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.mix = nn.Conv2d(4, 3, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 4)
        _init(self, seed)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = torch.cat([F.relu(self.a1(h)), F.relu(self.bn(self.a3(h)))], 1)
        z = self.mix(h)
        h = torch.cat((z, F.relu(z)), dim=1)
        return self.fc(torch.flatten(self.pool(h), 1))

    def probe(self, x):
        n = x.shape[0]
        s = self.stem(x)
        out = [("act", s.reshape(n, -1))]
        h = F.relu(s)
        z1, z3 = self.a1(h), self.bn(self.a3(h))
        out += [("act", z1.reshape(n, -1)), ("act", z3.reshape(n, -1))]
        z = self.mix(torch.cat([F.relu(z1), F.relu(z3)], 1))
        out.append(("act", z.reshape(n, -1)))
        h = torch.cat((z, F.relu(z)), 1)
        win = F.unfold(h, 2, stride=2).reshape(n, 6, 4, -1).permute(0, 1, 3, 2).reshape(n, -1, 4)
        out.append(("pool", win))
        return out


class CeilNet(nn.Module):
    """Pools with ``ceil_mode=True`` (a last window hanging over the map: -inf padding for
    max pooling, 0 and not counted for average pooling), ``ZeroPad2d`` and a one-slope
    ``PReLU`` (a leaky ReLU), as written in an ``nn.Sequential``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # 8x8 -> 4x4 (floor: 3x3)
            nn.ZeroPad2d(1),
            nn.Conv2d(3, 4, 3),
            nn.PReLU(init=0.2),
            nn.AvgPool2d(3, stride=2, ceil_mode=True, count_include_pad=False),  # 4 -> 2
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 4),
        )
        _init(self, seed)

    def forward(self, x):
        return self.seq(x)

    def probe(self, x):
        n = x.shape[0]
        z1 = self.seq[0](x)
        h = F.pad(F.relu(z1), (0, 1, 0, 1), value=-np.inf)  # the window over the edge
        win = F.unfold(h, 3, stride=2).reshape(n, 3, 9, -1).permute(0, 1, 3, 2)
        z2 = self.seq[4](self.seq[3](self.seq[2](F.relu(z1))))
        return [("act", z1.reshape(n, -1)), ("pool", win.reshape(n, -1, 9)),
                ("act", z2.reshape(n, -1))]  # fmt: skip


SHAPE = (1, 8, 8)
MODELS = {"pool": PoolNet, "resnet": ResNet, "inception": Inception, "ceil": CeilNet}


def _segments(seed: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (m, 64)), rng.uniform(0, 1, (m, 64))


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_and_layer_outputs_match_torch(name: str, backend: str) -> None:
    model = MODELS[name](seed=3)
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    assert net.layer_graph is not None
    X = np.random.default_rng(1).uniform(-1, 1, (7, 64))
    ref = model.double()(torch.from_numpy(X.reshape(7, *SHAPE))).detach().numpy()
    np.testing.assert_allclose(net.forward(X, backend=backend), ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(net.predict(X, backend=backend), ref.argmax(axis=1))
    outs = net.layer_outputs(X, backend=backend)
    assert len(outs) == net.n_layers == len(net.widths) - 1
    assert [o.shape[1] for o in outs] == list(net.widths[1:])
    np.testing.assert_array_equal(outs[-1], net.forward(X, backend=backend))
    probe = model.probe(torch.from_numpy(X.reshape(7, *SHAPE)))
    first = probe[0][1].detach().numpy()
    np.testing.assert_allclose(outs[0], np.maximum(first, 0), rtol=0, atol=1e-12)


def test_patterns_match_probe_bits_and_layout() -> None:
    """The packed bits are the signs of the pre-activations and the window argmaxes, in
    the documented layout (fastmem._graph docstring)."""
    model = PoolNet(seed=5).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(2).uniform(0, 1, (6, 64))
    codes = net.activation_patterns(X)
    bits = []
    for kind, q in model.probe(torch.from_numpy(X.reshape(6, *SHAPE))):
        q = q.detach().numpy()
        if kind == "act":
            bits.append(q > 0)
        else:
            idx = q.argmax(axis=2)  # first of equal entries, as torch.max
            bits.extend([(idx >> r) & 1 == 1 for r in range(2)])
    bits = np.concatenate(bits, axis=1)
    assert bits.shape[1] == net.n_pattern_bits
    words = np.zeros((6, net.n_pattern_words), dtype=np.uint64)
    for g in range(bits.shape[1]):
        words[:, g // 64] |= bits[:, g].astype(np.uint64) << np.uint64(g % 64)
    np.testing.assert_array_equal(codes, words)


# ------------------------------------------------------------------ conv path = dense
def _conv_sequential(seed: int) -> nn.Module:
    return _init(
        nn.Sequential(
            nn.Conv2d(1, 3, 3, stride=2, padding=1),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.AvgPool2d(2, padding=1, count_include_pad=False),
            nn.Conv2d(3, 4, 2, groups=1, dilation=1),
            nn.LeakyReLU(0.1),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 5),
            nn.Hardtanh(),
            nn.Linear(5, 3),
        ),
        seed,
    )


def _same_segments(graph, dense, A: np.ndarray, B: np.ndarray):
    """Exact regions along the segments A -> B: the graph's equal the dense network's
    (counts, breakpoints to 1e-9, piece hashes); the dense result."""
    rg = fastmem.regions.along_segments(graph, A, B)
    rd = fastmem.regions.along_segments(dense, A, B)
    np.testing.assert_array_equal(rg.counts, rd.counts)
    np.testing.assert_allclose(rg.breakpoints.values, rd.breakpoints.values, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(rg.pattern_hashes.values, rd.pattern_hashes.values)
    return rd


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conv_graph_equals_its_dense_lowering(seed: int) -> None:
    seq = _conv_sequential(seed)
    dense = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    graph = fastmem.Network.from_torch(traced(seq), input_shape=SHAPE)
    assert dense.layer_graph is None and graph.layer_graph is not None
    assert graph.widths == dense.widths
    assert graph.n_pattern_bits == dense.n_pattern_bits
    A, B = _segments(seed, 6)
    np.testing.assert_allclose(graph.forward(A), dense.forward(A), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(graph.pattern_hashes(A), dense.pattern_hashes(A))
    _same_segments(graph, dense, A, B)


# ------------------------------------------------------------------ exact walk
def _reference_walk(
    model: nn.Module, a: np.ndarray, b: np.ndarray, shape: tuple[int, ...] = SHAPE
) -> tuple[int, list[float]]:
    """Regions along ``a + t (b - a)``: from each point, the next event (a pre-activation
    reaching 0, a window entry overtaking the window's maximum) is solved exactly from the
    values and their t-derivatives (forward mode); step just past it and repeat."""
    model = model.double()
    x0 = torch.from_numpy(a.reshape(1, *shape))
    d = torch.from_numpy((b - a).reshape(1, *shape))

    kinds = [k for k, _ in model.probe(x0)]

    def at(t: float):
        vals, tans = torch.func.jvp(lambda x: [q for _, q in model.probe(x)], (x0 + t * d,), (d,))
        return [
            (k, v.detach().numpy()[0], s.detach().numpy()[0])
            for k, v, s in zip(kinds, vals, tans, strict=True)
        ]

    def pattern(qs) -> tuple:
        return tuple(
            tuple((v > 0).ravel()) if k == "act" else tuple(v.argmax(axis=1)) for k, v, _ in qs
        )

    t, step = 0.0, 1e-9
    prev, count, bps = None, 0, []
    probe_t = 0.0
    while True:
        qs = at(probe_t)
        pat = pattern(qs)
        if pat != prev:
            count += 1
            if prev is not None:
                bps.append(t)
            prev = pat
        nxt = 1.0
        for k, v, s in qs:
            if k == "act":
                with np.errstate(divide="ignore", invalid="ignore"):
                    tz = probe_t - v / s
                ok = (s != 0) & (tz > probe_t)
                if ok.any():
                    nxt = min(nxt, float(tz[ok].min()))
            else:
                j = v.argmax(axis=1)
                vj = np.take_along_axis(v, j[:, None], 1)
                sj = np.take_along_axis(s, j[:, None], 1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    tz = probe_t + (vj - v) / (s - sj)
                ok = (s > sj) & (tz > probe_t)
                if ok.any():
                    nxt = min(nxt, float(tz[ok].min()))
        if nxt >= 1.0 - step:
            return count, bps
        t = nxt
        probe_t = nxt + step


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_walk_matches_reference_walk(name: str, seed: int) -> None:
    model = MODELS[name](seed=seed)
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    A, B = _segments(10 + seed, 3)
    r = fastmem.regions.along_segments(net, A, B)
    for i in range(3):
        count, bps = _reference_walk(model, A[i], B[i])
        assert int(r.counts[i]) == count
        np.testing.assert_allclose(r.breakpoints[i], bps, rtol=0, atol=1e-7)


class PaddedPoolNet(nn.Module):
    """conv-relu-maxpool(3, stride 2, padding 1)-linear: windows at the border hold
    padding (-inf), never the maximum."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fc = nn.Linear(2 * 4 * 4, 3)
        _init(self, seed)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.c1(x))), 1))

    def probe(self, x):
        n = x.shape[0]
        z1 = self.c1(x)
        padded = F.pad(F.relu(z1), (1, 1, 1, 1), value=-torch.inf)
        win = F.unfold(padded, 3, stride=2).reshape(n, 2, 9, -1)
        return [("act", z1.reshape(n, -1)), ("pool", win.permute(0, 1, 3, 2).reshape(n, -1, 9))]


def test_exact_walk_keeps_ties_in_padded_windows() -> None:
    model = PaddedPoolNet(seed=3)
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    A, B = _segments(13, 3)
    r = fastmem.regions.along_segments(net, A, B)
    for i in range(3):
        count, bps = _reference_walk(model, A[i], B[i])
        assert int(r.counts[i]) == count
        np.testing.assert_allclose(r.breakpoints[i], bps, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_piece_hashes_are_the_forward_hashes(name: str) -> None:
    net = fastmem.Network.from_torch(MODELS[name](seed=4), input_shape=SHAPE)
    A, B = _segments(20, 4)
    r = fastmem.regions.along_segments(net, A, B, t_range=(-0.5, 1.5))
    assert r.counts.min() > 1
    for i in range(4):
        ends = np.concatenate([[-0.5], r.breakpoints[i], [1.5]])
        mids = (ends[1:] + ends[:-1]) / 2
        pts = A[i] + mids[:, None] * (B[i] - A[i])
        np.testing.assert_array_equal(net.pattern_hashes(pts), r.pattern_hashes[i])
        # adjacent pieces differ
        assert (r.pattern_hashes[i][1:] != r.pattern_hashes[i][:-1]).all()


def test_sampled_never_exceeds_exact() -> None:
    net = fastmem.Network.from_torch(ResNet(seed=2), input_shape=SHAPE)
    A, B = _segments(30, 4)
    exact = fastmem.regions.along_segments(net, A, B)
    sampled = fastmem.regions.along_segments(net, A, B, method="sampled", samples=400)
    assert (sampled.counts <= exact.counts).all()
    assert int(exact.counts.sum()) > 4


def test_chunking_and_backends_agree() -> None:
    net = fastmem.Network.from_torch(PoolNet(seed=6), input_shape=SHAPE)
    A, B = _segments(40, 9)
    ref = fastmem.regions.along_segments(net, A, B, backend=BACKENDS[0])
    for backend in BACKENDS:
        for chunk in (None, 1, 4):
            r = fastmem.regions.along_segments(net, A, B, chunk_size=chunk, backend=backend)
            np.testing.assert_array_equal(r.counts, ref.counts)
            np.testing.assert_array_equal(r.breakpoints.values, ref.breakpoints.values)
            np.testing.assert_array_equal(r.pattern_hashes.values, ref.pattern_hashes.values)
            assert r.backend == backend
        np.testing.assert_array_equal(
            net.pattern_hashes(A, backend=backend), net.pattern_hashes(A, backend=BACKENDS[0])
        )


@pytest.mark.parametrize("name", ["pool", "resnet", "conv"])
def test_rank1_carry_equals_every_vertex_walk(name: str, monkeypatch) -> None:
    """The walk carries an affine op after an activation to the new vertices by rank-1
    updates (the segment engine's kernels) and walks chunks side by side; with both off,
    every op is applied at every vertex, one chunk at a time: the same pieces."""
    from fastmem import _graph

    model = traced(_conv_sequential(3)) if name == "conv" else MODELS[name](seed=7)
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    A, B = _segments(50, 24)
    for backend in BACKENDS:
        fast = fastmem.regions.along_segments(net, A, B, backend=backend)
        with monkeypatch.context() as m:
            m.setattr(_graph, "_DENSE_T_BYTES", 0)
            m.setattr(_graph, "kernels_callable_side_by_side", lambda be: False)
            slow = fastmem.regions.along_segments(net, A, B, backend=backend)
        np.testing.assert_array_equal(fast.counts, slow.counts)
        np.testing.assert_allclose(
            fast.breakpoints.values, slow.breakpoints.values, rtol=0, atol=1e-9
        )
        np.testing.assert_array_equal(fast.pattern_hashes.values, slow.pattern_hashes.values)


@pytest.mark.parametrize(
    ("shape", "out", "kernel", "stride", "pads", "dilation", "groups"),
    [
        ((3, 7, 6), 4, (3, 3), (2, 1), ((1, 1), (0, 0)), (1, 1), 1),
        ((4, 9, 8), 6, (3, 2), (1, 2), ((2, 2), (1, 1)), (2, 1), 2),
        ((2, 5, 5), 2, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 2),
    ],
)
def test_conv_matrix_is_torch_conv_of_unit_inputs(
    shape, out, kernel, stride, pads, dilation, groups
) -> None:
    from fastmem import _graph

    C, H, W = shape
    w = np.random.default_rng(0).normal(size=(out, C // groups, *kernel))
    op = _graph.make_conv2d("c", "Conv2d", shape, w, None, stride, pads, dilation, groups)
    got = np.full((C * H * W, op.size), np.nan)
    _graph._conv2d_matrix_t(op, got, np)
    eye = torch.eye(C * H * W, dtype=torch.float64).reshape(-1, C, H, W)
    ref = F.conv2d(
        eye, torch.from_numpy(w), stride=stride, padding=(pads[0][0], pads[1][0]),
        dilation=dilation, groups=groups,
    )  # fmt: skip
    np.testing.assert_array_equal(got, ref.reshape(C * H * W, -1).numpy())


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize(
    ("shape", "out", "kernel", "stride", "pads", "dilation", "groups"),
    [
        ((3, 7, 6), 4, (3, 3), (2, 1), ((1, 1), (0, 0)), (1, 1), 1),
        ((4, 9, 8), 6, (3, 2), (1, 2), ((2, 2), (1, 1)), (2, 1), 2),
        ((1, 12, 12), 5, (5, 5), (2, 2), ((2, 2), (2, 2)), (1, 1), 1),
    ],
)
def test_conv_columns_are_torch_conv_of_unit_inputs(
    shape, out, kernel, stride, pads, dilation, groups, keep
) -> None:
    """The sparse columns the exact walk carries a convolution by: column j (input element
    j) lists each output it reaches once, in increasing order; densified, they are the
    torch convolution of the unit inputs (followed by the identity with ``keep``)."""
    from fastmem import _graph

    C, H, W = shape
    d = C * H * W
    w = np.random.default_rng(3).normal(size=(out, C // groups, *kernel))
    op = _graph.make_conv2d("c", "Conv2d", shape, w, None, stride, pads, dilation, groups)
    ptr, idx, val = _graph._conv2d_columns(op, keep, np.dtype(np.float64), np)
    assert ptr.shape == (d + 1,) and ptr[0] == 0 and ptr[-1] == idx.shape[0] == val.shape[0]
    got = np.zeros((d, op.size + d * keep))
    for j in range(d):
        cols = idx[ptr[j] : ptr[j + 1]]
        assert (np.diff(cols) > 0).all()
        got[j, cols] = val[ptr[j] : ptr[j + 1]]
    eye = torch.eye(d, dtype=torch.float64).reshape(-1, C, H, W)
    ref = F.conv2d(
        eye, torch.from_numpy(w), stride=stride, padding=(pads[0][0], pads[1][0]),
        dilation=dilation, groups=groups,
    ).reshape(d, -1).numpy()  # fmt: skip
    if keep:
        ref = np.concatenate([ref, np.eye(d)], axis=1)
    np.testing.assert_array_equal(got, ref)


def _conv_conv(seed: int) -> nn.Module:
    """Issue 20's CNN, smaller: an activation followed by a convolution (hard-tanh too)."""
    return _init(
        nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.Hardtanh(),
            nn.Conv2d(6, 5, 3, padding=1, groups=1),
            nn.LeakyReLU(0.1),
            nn.Flatten(),
            nn.Linear(5 * 4 * 4, 7),
            nn.ReLU(),
            nn.Linear(7, 3),
        ),
        seed,
    )


class _SparseResNet(nn.Module):
    """A stem convolution and two basic blocks on (1, 16, 16): wide enough for the walk to
    carry the blocks' convolutions (and the identity beside them) by sparse columns."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU())
        self.layer1 = Basic(3, 3, 1)
        self.layer2 = Basic(3, 4, 2)
        self.fc = nn.Linear(4 * 4 * 4, 3)
        _init(self, seed)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(x.view(x.size(0), -1))


@pytest.mark.parametrize("name", ["resnet", "conv"])
def test_sparse_conv_carry_equals_dense_carry(name: str, monkeypatch) -> None:
    """Carrying a convolution to new vertices by its sparse columns (its receptive fields)
    gives the same pieces, bit for bit, as by its dense matrix, on every backend; and the
    same counts, hashes and breakpoints (to 1e-9) as the network lowered to dense matrices."""
    from fastmem import _graph

    model = traced(_conv_conv(5)) if name == "conv" else _SparseResNet(seed=8)
    shape = (1, 16, 16)  # large enough for the sparse columns to pay
    net = fastmem.Network.from_torch(model, input_shape=shape)
    rng = np.random.default_rng(51)
    A, B = rng.uniform(0, 1, (2, 8, 256))
    used = []
    real = _graph._conv2d_columns

    def spy(*args, **kwargs):
        used.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(_graph, "_conv2d_columns", spy)
    for backend in BACKENDS:
        with monkeypatch.context() as m:
            # bit for bit without the chained pass (which only the sparse path enables:
            # its values differ from the GEMM's by rounding, see tests/test_chain.py)
            m.setattr(_graph, "_CHAIN", False)
            sparse = fastmem.regions.along_segments(net, A, B, backend=backend)
            m.setattr(_graph, "_sparse_columns", lambda op, keep: False)
            dense = fastmem.regions.along_segments(net, A, B, backend=backend)
        np.testing.assert_array_equal(sparse.counts, dense.counts)
        np.testing.assert_array_equal(sparse.breakpoints.values, dense.breakpoints.values)
        np.testing.assert_array_equal(sparse.pattern_hashes.values, dense.pattern_hashes.values)
        chained = fastmem.regions.along_segments(net, A, B, backend=backend)
        np.testing.assert_array_equal(chained.counts, dense.counts)
        np.testing.assert_allclose(
            chained.breakpoints.values, dense.breakpoints.values, rtol=0, atol=1e-9
        )
        np.testing.assert_array_equal(chained.pattern_hashes.values, dense.pattern_hashes.values)
    assert used  # the sparse path ran
    if name == "conv":
        _same_segments(net, fastmem.Network.from_torch(_conv_conv(5), input_shape=shape), A, B)


def test_window_max_is_torch_max_pool() -> None:
    from fastmem import _graph

    x = np.random.default_rng(1).normal(size=(5, 3, 9, 8))
    op = _graph.make_pool(
        "maxpool2d", "p", "MaxPool2d", (3, 9, 8), (3, 2), (2, 2), ((1, 1), (1, 1)), (1, 2)
    )
    padded = _graph._pad_hw(x, op.params["pads"], -np.inf, np)
    best, top = _graph._window_max(padded, op, np, argmax=True)
    ref, idx = F.max_pool2d(
        torch.from_numpy(x), (3, 2), (2, 2), padding=1, dilation=(1, 2), return_indices=True
    )
    np.testing.assert_array_equal(best, ref.reshape(5, -1).numpy())
    # torch's index is into the (H, W) input; fastmem's the tap (row-major in the window)
    _, Ho, Wo = op.out_shape
    oy = np.arange(Ho).repeat(Wo) * 2 - 1
    ox = np.tile(np.arange(Wo), Ho) * 2 - 1
    taps = np.array(_graph._taps(op))
    rows = oy[None, None, :] + taps[top.reshape(5, 3, -1), 0]
    cols = ox[None, None, :] + taps[top.reshape(5, 3, -1), 1]
    np.testing.assert_array_equal(rows * 8 + cols, idx.reshape(5, 3, -1).numpy())
    entries = _graph._window_entries(padded, op, np.array([0, 4, 2]), np.array([0, 7, 30]), np)
    for q, (r, c) in enumerate([(0, 0), (4, 7), (2, 30)]):
        ch, rest = divmod(c, Ho * Wo)
        y0, x0 = (rest // Wo) * 2, (rest % Wo) * 2
        want = [padded[r, ch, y0 + a, x0 + b] for a, b in taps]
        np.testing.assert_array_equal(entries[q], want)


def test_float32_graph() -> None:
    net = fastmem.Network.from_torch(ResNet(seed=1), input_shape=SHAPE, dtype=np.float32)
    assert net.dtype == np.float32
    A, B = _segments(50, 3)
    r = fastmem.regions.along_segments(net, A, B)
    assert r.breakpoints.values.dtype == np.float32
    assert net.forward(A).dtype == np.float32
    ref = net.astype(np.float64)
    assert ref.dtype == np.float64
    np.testing.assert_allclose(net.forward(A), ref.forward(A), rtol=1e-4, atol=1e-5)


def test_pooled_ties_get_the_forward_passes_first_entry() -> None:
    # a max-pool window whose entries are equal constants on a piece (e.g. dead neurons'
    # equal values) is an exact tie in the forward pass, whose first entry wins; the walk's
    # interpolated vertex values differ there by rounding, and must still pick that entry
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

        def forward(self, x):
            return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
            self.b1, self.b2, self.pool = Block(4), Block(4), nn.MaxPool2d(2)
            self.fc = nn.Linear(4 * 6 * 6, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.b2(self.b1(self.stem(x)))), 1))

    m = Net().double()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    net = fastmem.Network.from_torch(m.eval(), input_shape=(1, 12, 12))
    X = np.random.default_rng(0).uniform(size=(4, 144)) * 1e3
    A, B = X[:2], X[2:]
    r = fastmem.along_segments(net, A, B)
    for i in range(2):
        t = np.concatenate([[0.0], r.breakpoints[i], [1.0]])
        inside = t[:-1, None] + (t[1:] - t[:-1])[:, None] * np.linspace(0.2, 0.8, 4)[None, :]
        h = net.pattern_hashes(A[i] + inside.reshape(-1, 1) * (B[i] - A[i]))
        h = h.reshape(inside.shape)
        own = np.asarray(r.pattern_hashes[i])[:, None]
        assert (h == own).any(axis=1).all(), np.flatnonzero(~(h == own).any(axis=1))


# ------------------------------------------------------------------ save / load
@pytest.mark.parametrize("name", ["resnet", "ceil"])
def test_save_load_round_trip(tmp_path, name: str) -> None:
    net = fastmem.Network.from_torch(MODELS[name](seed=7), input_shape=SHAPE)
    path = tmp_path / f"{name}.npz"
    net.save(path)
    back = fastmem.Network.load(path)
    X = np.random.default_rng(3).uniform(0, 1, (5, 64))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    np.testing.assert_array_equal(back.pattern_hashes(X), net.pattern_hashes(X))
    assert repr(back) == repr(net)


def test_load_refuses_a_damaged_graph(tmp_path) -> None:
    net = fastmem.Network.from_torch(PoolNet(seed=0), input_shape=SHAPE)
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    bad = dict(members)
    bad["graph"] = np.array(str(members["graph"]).replace('"conv2d"', '"conv9d"', 1))
    np.savez(tmp_path / "kind.npz", **bad)
    with pytest.raises(InputError, match=r"path: .*conv9d"):
        fastmem.Network.load(tmp_path / "kind.npz")
    bad = dict(members)
    bad["input_shape"] = np.array([2, 8, 8])
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(InputError, match=r"path: .*input channels"):
        fastmem.Network.load(tmp_path / "shape.npz")
    bad = dict(members)
    key = next(k for k in members if k.endswith("_weight"))
    bad[key] = np.full_like(members[key], np.nan)
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(InputError, match=r"path: .*NaN"):
        fastmem.Network.load(tmp_path / "nan.npz")
    import json

    spec = json.loads(str(members["graph"]))
    del next(d for d in spec if d["kind"] == "conv2d")["arrays"]["weight"]
    bad = dict(members)
    bad["graph"] = np.array(json.dumps(spec))
    np.savez(tmp_path / "missing.npz", **bad)
    with pytest.raises(InputError, match=r"path: .*: weight is missing"):
        fastmem.Network.load(tmp_path / "missing.npz")
    bad = dict(members)
    bad["graph"] = np.array("{not json")
    np.savez(tmp_path / "json.npz", **bad)
    with pytest.raises(InputError, match="path: "):
        fastmem.Network.load(tmp_path / "json.npz")
    # a weight cut to another kernel than the recorded one: another network, refused
    bad = dict(members)
    bad[key] = members[key][..., :-1].copy()
    np.savez(tmp_path / "kernel.npz", **bad)
    with pytest.raises(
        InputError, match=r"recorded kernel \(\[3, 3\]\) does not match its arrays \(\[3, 2\]\)"
    ):
        fastmem.Network.load(tmp_path / "kernel.npz")
    for tampered in (-1, "x", [1e9, 3], None):  # a recorded parameter edited
        spec = json.loads(str(members["graph"]))
        next(d for d in spec if d["kind"] == "maxpool2d")["params"]["stride"] = tampered
        bad = dict(members)
        bad["graph"] = np.array(json.dumps(spec))
        np.savez(tmp_path / "param.npz", **bad)
        with pytest.raises(InputError, match="path: "):
            fastmem.Network.load(tmp_path / "param.npz")


def test_residual_branches_must_have_one_shape() -> None:
    from fastmem import _graph

    conv = _graph.make_conv2d(
        "c", "Conv2d", (2, 4, 8), np.ones((4, 2, 3, 1)), None, 1, ((0, 0), (0, 0)), 1, 1
    )
    assert conv.out_shape == (4, 2, 8)  # as many elements as (2, 4, 8), another shape
    with pytest.raises(InputError, match=r"adds tensors of shapes \(2, 4, 8\) and \(4, 2, 8\)"):
        _graph.make_residual("r", "add", (2, 4, 8), (), (conv,))


def test_load_refuses_damaged_zips_and_deep_nesting(tmp_path) -> None:
    net = fastmem.Network.from_torch(PoolNet(seed=0), input_shape=SHAPE)
    path = tmp_path / "net.npz"
    net.save(path)
    raw = path.read_bytes()
    (tmp_path / "short.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="path: "):
        fastmem.Network.load(tmp_path / "short.npz")
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    # a flipped byte inside a member's data: the zip's CRC check fails on reading it
    np.savez(tmp_path / "plain.npz", **members)  # stored, not compressed
    plain = bytearray((tmp_path / "plain.npz").read_bytes())
    key = next(k for k in members if k.endswith("_weight"))
    at = bytes(plain).index(members[key].tobytes()[:16])
    plain[at] ^= 0xFF
    (tmp_path / "crc.npz").write_bytes(bytes(plain))
    with pytest.raises(InputError, match=r"path: .*CRC"):
        fastmem.Network.load(tmp_path / "crc.npz")
    bad = dict(members)
    bad["format_version"] = np.array(2.5)
    np.savez(tmp_path / "version.npz", **bad)
    with pytest.raises(InputError, match="format_version must be an integer"):
        fastmem.Network.load(tmp_path / "version.npz")
    bad = dict(members)
    bad["graph"] = np.array("[" * 100_000 + "]" * 100_000)
    np.savez(tmp_path / "deep.npz", **bad)
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)  # as some libraries do: json's C parser must not run
    try:
        with pytest.raises(InputError, match=r"nested too deeply \(100000 levels"):
            fastmem.Network.load(tmp_path / "deep.npz")
    finally:
        sys.setrecursionlimit(limit)


# ------------------------------------------------------------------ refusals
def test_import_errors_name_the_module() -> None:
    with pytest.raises(InputError, match="input_shape: required"):
        fastmem.Network.from_torch(PoolNet())
    with pytest.raises(InputError, match=r"c1 \(Conv2d\): expects 1 input channels"):
        fastmem.Network.from_torch(PoolNet(), input_shape=(3, 8, 8))

    class Adaptive(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3)
            self.gap = nn.AdaptiveAvgPool2d(4)  # windows of unequal sizes
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(torch.flatten(self.gap(self.c(x)), 1))

    with pytest.raises(InputError, match=r"gap \(AdaptiveAvgPool2d\): output size 4x4 does"):
        fastmem.Network.from_torch(Adaptive(), input_shape=SHAPE)
    res = ResNet()
    res.layer1.bn1.train()
    with pytest.raises(InputError, match=r"layer1.bn1 \(BatchNorm2d\): in training mode"):
        fastmem.Network.from_torch(res, input_shape=SHAPE)
    res = ResNet()
    with torch.no_grad():
        res.layer2.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match=r"layer2.conv2 \(Conv2d\): weight holds NaN"):
        fastmem.Network.from_torch(res, input_shape=SHAPE)

    class Cat(nn.Module):
        def forward(self, x):
            return torch.cat([x, x], 0).flatten(1)

    with pytest.raises(InputError, match=r"cat \(cat\): only along the channels \(dim=1\)"):
        fastmem.Network.from_torch(Cat(), input_shape=SHAPE)

    class Stack(nn.Module):
        def forward(self, x):
            return torch.stack([x, x], 1).flatten(1)

    with pytest.raises(InputError, match=r"stack \(stack\): unsupported operation: stacking"):
        fastmem.Network.from_torch(Stack(), input_shape=SHAPE)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_zero_width_layers_and_giant_windows_are_refused() -> None:
    pooled = nn.Sequential(nn.Conv2d(1, 0, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    with pytest.raises(InputError, match=r"^0 \(Conv2d\): has no outputs"):  # a layer graph
        fastmem.Network.from_torch(pooled, input_shape=SHAPE)
    with pytest.raises(InputError, match=r"\(Conv2d\): has no outputs \(out_channels = 0\)"):
        fastmem.Network.from_torch(
            nn.Sequential(nn.Conv2d(1, 0, 3), nn.ReLU(), nn.Flatten(), nn.Linear(0, 2)),
            input_shape=SHAPE,
        )
    with pytest.raises(InputError, match=r"\(Linear\): has no outputs \(out_features = 0\)"):
        fastmem.Network.from_torch(
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 0)),
            input_shape=SHAPE,
        )
    hooked = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    hooked[0].register_forward_hook(lambda mod, inp, out: 2 * out)
    with pytest.raises(InputError, match=r"^0 \(Conv2d\): has 1 forward hook\(s\)"):
        fastmem.Network.from_torch(hooked, input_shape=SHAPE)
    for tail in ([nn.MaxPool2d(2)], []):  # a layer graph, the dense lowering
        meta = nn.Sequential(nn.Conv2d(1, 2, 3, device="meta"), nn.ReLU(), *tail, nn.Flatten())
        with pytest.raises(InputError, match=r"^(module\[0\]|0)\.weight: is on the meta device"):
            fastmem.Network.from_torch(meta, input_shape=SHAPE)
    with pytest.raises(InputError, match=r"^input_shape: the import check's .* refused before"):
        fastmem.Network.from_torch(
            nn.Sequential(nn.MaxPool2d(2), nn.Flatten()), input_shape=(1, 100_000, 100_000)
        )
    # a legal but enormous pooling window: refused before its windows are allocated
    from fastmem._graph import windows
    from fastmem._validate import available_memory

    net = fastmem.Network.from_torch(PoolNet(seed=0), input_shape=SHAPE)
    pool = next(op for op in net.layer_graph.ops if op.kind == "maxpool2d")
    rows = int(available_memory()[0] // (pool.size * pool.window * 8)) + 1
    h = np.lib.stride_tricks.as_strided(np.zeros(1), (rows, int(np.prod(pool.in_shape))), (0, 0))
    with pytest.raises(InputError, match=r"^net: the 4-entry windows of .* refused before"):
        windows(h, pool, 0.0, np)


def test_other_analyses_refuse_naming_the_op() -> None:
    net = fastmem.Network.from_torch(PoolNet(), input_shape=SHAPE)
    calls = [
        lambda: net.weights,
        lambda: net.perturbed(0.1),
    ]
    for call in calls:
        with pytest.raises(InputError, match=r"pool \(MaxPool2d\) is max pooling"):
            call()


def test_sequential_with_max_pooling_is_a_graph() -> None:
    seq = _init(
        nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)
        ),
        0,
    )
    net = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    assert net.layer_graph is not None
    X = np.random.default_rng(4).uniform(0, 1, (4, 64))
    ref = seq.double()(torch.from_numpy(X.reshape(4, *SHAPE))).detach().numpy()
    np.testing.assert_allclose(net.forward(X), ref, rtol=0, atol=1e-12)
    d = fastmem.regions.distinct_patterns(net, X)
    assert d.n_distinct >= 1


# ------------------------------------------------------------------ intervals
@pytest.mark.parametrize("seed", [0, 3])
def test_conv_graph_intervals_equal_dense_lowering(seed: int) -> None:
    seq = _conv_sequential(seed)
    dense = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    graph = fastmem.Network.from_torch(traced(seq), input_shape=SHAPE)
    A, B = _segments(60 + seed, 8)
    ig = fastmem.intervals.generalization_intervals(graph, A, B - A)
    idn = fastmem.intervals.generalization_intervals(dense, A, B - A)
    np.testing.assert_array_equal(ig.predicted_class, idn.predicted_class)
    np.testing.assert_allclose(ig.lower, idn.lower, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ig.upper, idn.upper, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_intervals_through_pooling_and_skips_hold_the_class(name: str) -> None:
    """Inside the interval the forward pass predicts the anchor's class; just past each
    end (inside t_range) it does not."""
    net = fastmem.Network.from_torch(MODELS[name](seed=8), input_shape=SHAPE)
    A, B = _segments(70, 6)
    D = B - A
    iv = fastmem.intervals.generalization_intervals(net, A, D, t_range=(-3.0, 3.0))
    cls = net.predict(A)
    np.testing.assert_array_equal(iv.predicted_class, cls)
    assert (iv.length > 0).all()
    for i in range(6):
        lo, hi = float(iv.lower[i]), float(iv.upper[i])
        inside = np.linspace(lo, hi, 41)[1:-1]
        assert (net.predict(A[i] + inside[:, None] * D[i]) == cls[i]).all()
        for end, step in ((hi, 1e-6), (lo, -1e-6)):
            if -3.0 < end + step < 3.0:
                assert net.predict(A[i : i + 1] + (end + step) * D[i : i + 1])[0] != cls[i]
    assert (np.abs(iv.upper) < 3.0).any() or (np.abs(iv.lower) < 3.0).any()


# ------------------------------------------------------------------ dense chains
@pytest.mark.parametrize(
    "acts", [("threshold", "relu"), ("relu", "threshold"), ("hardtanh", "leaky_relu")]
)
def test_dense_chain_graph_equals_network(acts: tuple[str, str]) -> None:
    """A chain of linear and act ops is the dense Network (threshold layers included: the
    walk then holds one value per piece)."""
    from fastmem import _graph

    rng = np.random.default_rng(5)
    Ws = [rng.normal(size=(12, 3)), rng.normal(size=(9, 12)), rng.normal(size=(2, 9))]
    bs = [rng.normal(size=12), rng.normal(size=9), rng.normal(size=2)]
    dense = fastmem.Network.from_arrays(Ws, bs, list(acts), negative_slope=0.2)
    ops, shape = [], (3,)
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        ops.append(_graph.make_linear(f"fc{i}", "Linear", shape, W, b))
        shape = ops[-1].out_shape
        if i < 2:
            ops.append(_graph.make_act(f"act{i}", acts[i], shape, acts[i], 0.2))
    graph = fastmem.Network._from_graph(_graph.LayerGraph(tuple(ops), (3,)), np.float64)
    A, B = rng.normal(size=(20, 3)) * 3, rng.normal(size=(20, 3)) * 3
    np.testing.assert_array_equal(graph.pattern_hashes(A), dense.pattern_hashes(A))
    rd = _same_segments(graph, dense, A, B)
    assert rd.counts.sum() > 40


def test_hostile_inputs_give_input_errors() -> None:
    net = fastmem.Network.from_torch(ResNet(seed=0), input_shape=SHAPE)
    X = np.random.default_rng(0).uniform(0, 1, (3, 64))
    bad = X.copy()
    bad[1, 5] = np.nan
    for call in (net.forward, net.pattern_hashes, net.layer_outputs, net.activation_patterns):
        with pytest.raises(InputError, match=r"^X: "):
            call(bad)
        with pytest.raises(InputError, match="X: has 63 columns"):
            call(X[:, :63])
    with pytest.raises(InputError, match=r"X: the output of .* overflows"):
        net.forward(X * 1e308)
    with pytest.raises(InputError, match=r"starts, ends: the output of .* overflows"):
        fastmem.regions.along_segments(net, X * 1e308, X)
    with pytest.raises(InputError, match=r"^ends: "):
        fastmem.regions.along_segments(net, X, bad)
    with pytest.raises(InputError, match="directions: 1 direction"):
        fastmem.intervals.generalization_intervals(
            net, X, np.where(np.arange(3)[:, None] == 1, 0.0, X)
        )


# ------------------------------------------------------------------ critical samples
def _zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_search_gradient_matches_torch_autograd(name: str, loss: str) -> None:
    """The search's input gradient through conv, pooling and skips is torch's (float64),
    at points exactly on kinks too (zero biases and a zero image: every pre-activation of
    the first layer is exactly 0, where ReLU's derivative is 0 as in autograd)."""
    from fastmem import critical

    model = _zero_biases(MODELS[name](seed=2)).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(9).uniform(0, 1, (6, 64))
    X[0] = 0.0
    Xd, _, m = critical._prepare(net, X, None, (0.0, 1.0))
    logits, ds = m.forward(Xd, derivs=True)
    pred = logits.argmax(axis=1)
    grad = (
        m.ce_input_grad(logits, ds, pred) if loss == "ce" else m.margin_input_grad(logits, ds, pred)
    )
    xt = torch.from_numpy(X.reshape(6, *SHAPE)).requires_grad_(True)
    out = model(xt)
    if loss == "ce":
        value = F.cross_entropy(out, torch.from_numpy(pred), reduction="sum")
    else:
        rows = torch.arange(6)
        other = out.clone()
        other[rows, torch.from_numpy(pred)] = -torch.inf
        value = (out[rows, other.argmax(1)] - out[rows, torch.from_numpy(pred)]).sum()
    value.backward()
    np.testing.assert_allclose(grad, xt.grad.numpy().reshape(6, -1), rtol=0, atol=1e-10)
    assert np.abs(grad).max() > 1e-3


def test_loss_sensitivity_matches_torch() -> None:
    model = ResNet(seed=4).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(3).uniform(0, 1, (8, 64))
    y = np.arange(8) % 4
    got = fastmem.loss_sensitivity(net, X, y).values
    xt = torch.from_numpy(X.reshape(8, *SHAPE)).requires_grad_(True)
    F.cross_entropy(model(xt), torch.from_numpy(y), reduction="sum").backward()
    want = np.abs(xt.grad.numpy().reshape(8, -1)).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)


def _torch_pgd(model: nn.Module, X: np.ndarray, pred: np.ndarray, radius: float) -> np.ndarray:
    """A strong PGD written for the test (margin loss, 10 random restarts x 100 steps)."""
    x0 = torch.from_numpy(X.reshape(-1, *SHAPE))
    lo, hi = (x0 - radius).clamp(0, 1), (x0 + radius).clamp(0, 1)
    labels = torch.from_numpy(pred)
    rows = torch.arange(X.shape[0])
    broken = torch.zeros(X.shape[0], dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        x = lo + (hi - lo) * torch.rand(x0.shape, generator=gen, dtype=x0.dtype)
        for _ in range(100):
            x.requires_grad_(True)
            out = model(x)
            other = out.detach().clone()
            other[rows, labels] = -torch.inf
            obj = (out[rows, other.argmax(1)] - out[rows, labels]).sum()
            (g,) = torch.autograd.grad(obj, x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + 2.5 * radius / 100 * g.sign(), lo), hi)
                broken |= model(x).argmax(1) != labels
    return broken.numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_critical_samples_sound_through_pooling_and_skips(name: str) -> None:
    model = MODELS[name](seed=5).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(11).uniform(0, 1, (40, 64))
    radius = 0.02
    res = fastmem.critical_samples(net, X, radius=radius, method="pgd", certify="ibp", rng=1)
    assert res.n_robust > 0
    pred = net.predict(X)
    np.testing.assert_array_equal(res.predicted, pred)
    crit = np.flatnonzero(res.status == "critical")
    adv = res.adversarial[crit]
    if crit.size:
        assert np.abs(adv - X[crit]).max() <= radius * (1 + 1e-12)
        with torch.no_grad():
            got = model(torch.from_numpy(adv.reshape(-1, *SHAPE))).argmax(1).numpy()
        assert (got != pred[crit]).all()
    broken = _torch_pgd(model, X, pred, radius)
    assert not (broken & (res.status == "robust")).any()
    # the IBP margin bound holds at random points of each ball
    rng = np.random.default_rng(12)
    rob = np.flatnonzero(res.status == "robust")
    for i in rob[:10]:
        pts = np.clip(X[i] + rng.uniform(-radius, radius, (200, 64)), 0, 1)
        logits = net.forward(pts)
        margins = logits[:, pred[i]][:, None] - np.delete(logits, pred[i], axis=1)
        assert margins.min() >= res.margin_lower[i]


# ------------------------------------------------------------------ boundary distances
@pytest.mark.parametrize("name", sorted(MODELS))
def test_boundary_distances_match_torch_jacobians(name: str) -> None:
    """Against the probe's quantities and their Jacobians (torch.func.jacrev): each
    neuron's |z| / ||grad z||, each window's (z_max - z_i) / ||grad z_max - grad z_i||."""
    model = MODELS[name](seed=6).double()
    net = fastmem.Network.from_torch(model, input_shape=SHAPE)
    X = np.random.default_rng(13).uniform(0, 1, (4, 64))
    got = fastmem.regions.distance_to_boundary(net, X)
    for i in range(4):
        x = torch.from_numpy(X[i].reshape(1, *SHAPE))
        qs = model.probe(x)
        jac = torch.func.jacrev(lambda v: [q for _, q in model.probe(v)])(x)
        best, where = np.inf, (-1, -1)
        for layer, ((kind, q), J) in enumerate(zip(qs, jac, strict=True)):
            q = q.detach().numpy()[0]
            J = J.detach().numpy()[0].reshape(*q.shape, -1)
            if kind == "act":
                g = np.linalg.norm(J, axis=-1)
                with np.errstate(divide="ignore"):
                    dj = np.where(g > 0, np.abs(q) / np.where(g > 0, g, 1), np.inf)
            else:
                top = q.argmax(axis=1)
                rows = np.arange(q.shape[0])
                g = np.linalg.norm(J[rows, top][:, None, :] - J, axis=-1)
                ok = (g > 0) & (np.arange(q.shape[1])[None, :] != top[:, None])
                gap = q[rows, top][:, None] - q
                dj = np.where(ok, gap / np.where(ok, g, 1), np.inf).min(axis=1)
            if dj.min() < best:
                best, where = float(dj.min()), (layer, int(dj.argmin()))
        np.testing.assert_allclose(got.distance[i], best, rtol=1e-10)
        assert (int(got.layer[i]), int(got.neuron[i])) == where
        assert bool(got.exact[i]) == (where[0] == 0)


def test_conv_graph_boundary_distances_equal_dense() -> None:
    seq = _conv_sequential(4)
    dense = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    graph = fastmem.Network.from_torch(traced(seq), input_shape=SHAPE)
    X = np.random.default_rng(14).uniform(0, 1, (9, 64))
    a = fastmem.regions.distance_to_boundary(dense, X)
    b = fastmem.regions.distance_to_boundary(graph, X)
    np.testing.assert_allclose(b.distance, a.distance, rtol=1e-10)
    np.testing.assert_array_equal(b.layer, a.layer)
    np.testing.assert_array_equal(b.neuron, a.neuron)


def test_critical_samples_many_inputs_take_the_ordered_path() -> None:
    """With 128 inputs or more the certificate's order is chosen from a look; the
    statuses are the same as certifying and searching everything."""
    net = fastmem.Network.from_torch(PoolNet(seed=7), input_shape=SHAPE)
    X = np.random.default_rng(15).uniform(0, 1, (160, 64))
    kw = dict(radius=0.03, method="pgd", steps=10, certify="ibp", rng=3)
    res = fastmem.critical_samples(net, X, **kw)
    assert res.n_critical + res.n_robust + res.n_unknown == 160
    assert res.n_robust > 0 and res.n_critical > 0
    search = fastmem.critical_samples(net, X, **{**kw, "certify": None})
    # the search finds the same critical samples whatever the order (own trajectories)
    np.testing.assert_array_equal(res.status == "critical", search.status == "critical")


def test_information_plane_on_layer_outputs_of_a_graph() -> None:
    """The information plane reads layer_outputs: the conv graph's plane is its dense
    lowering's, and a max-pooling network's plane has one column per activation."""
    seq = _conv_sequential(2)
    dense = fastmem.Network.from_torch(seq, input_shape=SHAPE)
    graph = fastmem.Network.from_torch(traced(seq), input_shape=SHAPE)
    X = np.random.default_rng(16).uniform(0, 1, (300, 64))
    y = np.arange(300) % 3
    pg = fastmem.information_plane([graph, graph], y, X=X)
    pd = fastmem.information_plane([dense, dense], y, X=X)
    np.testing.assert_allclose(pg.i_xt, pd.i_xt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pg.i_ty, pd.i_ty, rtol=0, atol=1e-12)
    pool = fastmem.Network.from_torch(PoolNet(seed=1), input_shape=SHAPE)
    pp = fastmem.information_plane([pool], y, X=X)
    assert pp.i_xt.shape == (1, pool.n_layers)
    assert np.isfinite(pp.i_xt).all() and np.isfinite(pp.i_ty).all()


@pytest.mark.parametrize(
    ("stride", "dilation", "groups", "pad"),
    [(1, 1, 1, 1), (2, 1, 1, 2), (1, 2, 2, 0), (2, 2, 4, 3)],
)
def test_transposed_convolution_is_the_adjoint_and_layout_free(stride, dilation, groups, pad):
    # <conv(x), g> = <x, conv^T(g)> for every row (an identity independent of how conv^T
    # is computed), on 2 rows (fewer than an output row: the image-rows frame) and 40
    # (the rows-innermost frame); the two frames give the same bits row for row
    from fastmem import _graph
    from fastmem._graph_critical import _conv2d_back

    rng = np.random.default_rng(stride + 10 * dilation + 100 * groups)
    C, n_out, H = 4, 8, 11
    w = rng.standard_normal((n_out, C // groups, 3, 3))
    pads = ((pad, pad), (pad, pad))
    op = _graph.make_conv2d("c", "Conv2d", (C, H, H), w, None, (stride, stride), pads,
                            (dilation, dilation), groups)  # fmt: skip
    assert op.out_shape[2] > 2  # 2 rows take the image-rows frame
    x = rng.standard_normal((40, C * H * H))
    g = rng.standard_normal((40, op.size))
    back = _conv2d_back(g, op, np)
    lhs = (_graph.apply_affine(op, x, np) * g).sum(axis=1)
    np.testing.assert_allclose((x * back).sum(axis=1), lhs, rtol=1e-12, atol=1e-12)
    for a in range(0, 40, 2):
        np.testing.assert_array_equal(_conv2d_back(g[a : a + 2], op, np), back[a : a + 2])


def test_long_walks_through_a_resnet_are_refused_not_misplaced() -> None:
    """Over t_range = (-1e12, 1e12) the values along a line through a ResNet graph reach
    ~1e12: the walk's interpolated values lose the precision its crossings need and most
    pieces near the data came out misplaced (hashes matching no point inside them, up to
    ~100x the tie tolerance wide; helper sweep): refused now. Over (-1e10, 1e10), checked
    as well (values above 1e8), the walk is right."""
    net = fastmem.Network.from_torch(ResNet(seed=0), input_shape=SHAPE)
    A, B = _segments(5, 1)
    with pytest.raises(InputError, match=r"the exact walk lost its precision"):
        fastmem.regions.along_segments(net, A, B, t_range=(-1e12, 1e12))
    r = fastmem.regions.along_segments(net, A, B, t_range=(-1e10, 1e10))
    edges = np.concatenate([[-1e10], r.breakpoints[0], [1e10]])
    mid = (edges[1:] + edges[:-1]) / 2
    wide = np.diff(edges) > 1e-2  # 64 tolerances: 3.6e-3
    got = net.pattern_hashes(A + mid[wide, None] * (B - A))
    np.testing.assert_array_equal(r.pattern_hashes[0][wide], got)


def test_convolutions_with_work_arrays_kept_or_not_are_equal(monkeypatch) -> None:
    """Convolutions keep their work arrays per thread between calls (fresh pages cost the
    search ~25%); results never alias them (a 1x1 output map's transpose is contiguous:
    a view of the kept product would be overwritten by the next call) and equal those
    with nothing kept, bit for bit, forward and backward."""
    from fastmem import _threads
    from fastmem._graph_critical import _conv2d_back

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (5, 64))
    for model in (PoolNet(seed=1), Inception(seed=2), CeilNet(seed=3)):
        net = fastmem.Network.from_torch(model, input_shape=SHAPE)
        convs = [op for op in fastmem._graph.walk(net.layer_graph.ops) if op.kind == "conv2d"]
        mk = fastmem._graph.make_conv2d
        pads = ((0, 0), (0, 0))
        convs += [  # a 1x1 output map, one output channel: transposes that are contiguous
            mk("a", "Conv2d", (2, 3, 3), rng.normal(size=(4, 2, 3, 3)), None, 1, pads, 1, 1),
            mk("b", "Conv2d", (1, 5, 5), rng.normal(size=(1, 1, 2, 2)), None, 1, pads, 1, 1),
        ]
        h = [rng.normal(size=(5, int(np.prod(op.in_shape)))) for op in convs]
        g = [rng.normal(size=(5, op.size)) for op in convs]
        kept = [fastmem._graph.apply_affine(op, x, np) for op, x in zip(convs, h, strict=True)]
        back = [_conv2d_back(y, op, np) for op, y in zip(convs, g, strict=True)]
        logits = net.forward(X)
        with monkeypatch.context() as m:
            m.setattr(_threads, "SCRATCH_KEEP_BYTES", 0)
            for op, x, y, a, b in zip(convs, h, g, kept, back, strict=True):
                np.testing.assert_array_equal(fastmem._graph.apply_affine(op, x, np), a)
                np.testing.assert_array_equal(_conv2d_back(y, op, np), b)
            np.testing.assert_array_equal(net.forward(X), logits)
        # the kept results are still what they were after later calls
        for op, x, a in zip(convs, h, kept, strict=True):
            np.testing.assert_array_equal(fastmem._graph.apply_affine(op, x, np), a)


def _bias_free(pool: bool, act: type = nn.ReLU) -> nn.Module:
    """A CNN whose second convolution has no bias: its outputs over dead inputs are exactly
    0, on ReLU's threshold (and tied in a pooling window)."""
    gen = torch.Generator().manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=3, padding=2), act(),
        nn.Conv2d(3, 3, 1, padding=1, groups=3, bias=False),
        *([nn.MaxPool2d(2)] if pool else []), act(),
        nn.Flatten(), nn.Linear(3 * (12 if pool else 48), 5), act(), nn.Linear(5, 2),
    ).double()  # fmt: skip
    with torch.no_grad():
        for p in seq.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.6)
    return seq.eval()


def _hash_mismatches(net: fastmem.Network, A: np.ndarray, B: np.ndarray, **kw) -> int:
    r = fastmem.regions.along_segments(net, A, B, **kw)
    bad = 0
    for i in range(len(A)):
        t = np.r_[0.0, r.breakpoints[i], 1.0]
        mid = (t[:-1] + t[1:]) / 2
        h = net.pattern_hashes(A[i] + mid[:, None] * (B[i] - A[i]), **kw)
        bad += int((h != r.pattern_hashes[i]).sum())
    return bad


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_free_structural_zeros_keep_the_forward_hashes(backend: str) -> None:
    # The carried values of a neuron exactly on its threshold along part of a piece were
    # rounding noise of either sign (115 of 122 piece hashes differed): they are snapped
    # to the bias (fastmem._kinds.snap_carried), in the dense engine (the CNN's dense
    # lowering) and the layer graph's walk (its convolutional form; max pooling's ties).
    rng = np.random.default_rng(0)
    A, B = rng.uniform(0, 1, (2, 12, 280))
    shape = (2, 10, 14)
    lowered = fastmem.Network.from_torch(_bias_free(False), input_shape=shape)
    nets = {
        "dense lowering": lowered,
        "fx, dense lowering": fastmem.Network.from_torch(
            traced(_bias_free(False)).eval(), input_shape=shape
        ),
        "layer graph": lowered._conv_network(),
        "max pooling": fastmem.Network.from_torch(_bias_free(True), input_shape=shape),
    }
    for what, net in nets.items():
        assert _hash_mismatches(net, A, B, backend=backend) == 0, what


@pytest.mark.parametrize("pool", [False, True])
def test_structural_zeros_walk_matches_reference_walk(pool: bool) -> None:
    # counts and breakpoints against the event-to-event torch walk (no carry at all)
    class Probed(nn.Module):
        def __init__(self, seq: nn.Module) -> None:
            super().__init__()
            self.seq = seq

        def forward(self, x):
            return self.seq(x)

        def probe(self, x):
            out = []
            for m in self.seq:  # each ReLU's and max pooling's input
                if isinstance(m, nn.MaxPool2d):
                    w = nn.functional.unfold(x, 2, stride=2)
                    out.append(("pool", w.reshape(x.shape[0], x.shape[1], 4, -1).transpose(2, 3)
                                .reshape(x.shape[0], -1, 4)))  # fmt: skip
                if isinstance(m, nn.ReLU):
                    out.append(("act", x.reshape(x.shape[0], -1)))
                x = m(x)
            return out

    seq = _bias_free(pool)
    net = fastmem.Network.from_torch(seq, input_shape=(2, 10, 14))
    graph = net if pool else net._conv_network()
    rng = np.random.default_rng(1)
    A, B = rng.uniform(0, 1, (2, 4, 280))
    r = fastmem.regions.along_segments(graph, A, B)
    for i in range(len(A)):
        count, bps = _reference_walk(Probed(seq), A[i], B[i], (2, 10, 14))
        assert r.counts[i] == count
        np.testing.assert_allclose(r.breakpoints[i], bps, rtol=0, atol=1e-8)


def test_dyadic_sampling_sees_more_only_at_breakpoints() -> None:
    # Dyadic weights, integer inputs and dyadic sample points t = k / 1024: everything is
    # exact, several neurons meet their threshold at the same t, and the segment's ends
    # sit on kinks. Dense sampling then counts more regions than the exact walk; every
    # extra pattern is the pattern AT a breakpoint or an end (a point, not a region):
    # every sample strictly inside an exact piece has that piece's pattern.
    rng = np.random.default_rng(0)
    seq = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * 3 * 3, 4), nn.ReLU(), nn.Linear(4, 2),
    ).double()  # fmt: skip
    with torch.no_grad():
        for p in seq.parameters():
            p.copy_(torch.from_numpy(rng.integers(-4, 5, p.shape) / 4.0))
    net = fastmem.Network.from_torch(seq.eval(), input_shape=(1, 8, 8))
    A = rng.integers(-3, 4, (6, 64)).astype(float)
    B = rng.integers(-3, 4, (6, 64)).astype(float)
    t = np.arange(1025) / 1024
    on_points = 0
    for graph in (net, net._conv_network()):
        exact = fastmem.regions.along_segments(graph, A, B)
        sampled = fastmem.regions.along_segments(graph, A, B, method="sampled", samples=1025)
        assert (sampled.counts >= exact.counts).all() and (sampled.counts > exact.counts).any()
        for i in range(len(A)):
            ends = np.r_[0.0, exact.breakpoints[i], 1.0]
            piece = np.clip(np.searchsorted(ends, t, side="right") - 1, 0, len(ends) - 2)
            inside = (ends[piece] < t) & (t < ends[piece + 1])
            h = graph.pattern_hashes(A[i] + t[:, None] * (B[i] - A[i]))
            np.testing.assert_array_equal(h[inside], exact.pattern_hashes[i][piece[inside]])
            on_points += int((h[~inside] != exact.pattern_hashes[i][piece[~inside]]).sum())
    assert on_points > 0


class _ResidualNet(nn.Module):
    """A stem and one basic block ``relu(c2(relu(c1 x)) + x)`` of bias-free convolutions: the
    residual sum is exactly 0 where the stem and the block's inner ReLU are all off."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.c1 = nn.Conv2d(3, 3, k, padding=k // 2, bias=False)
        self.c2 = nn.Conv2d(3, 3, k, padding=k // 2, bias=False)
        self.fc = nn.Linear(108, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(h))) + h).flatten(1))


def _mixed_scale() -> nn.Module:
    """Bias-free convolutions, the second one's first channel 1e-10 of the other's scale:
    its real values are far below the other channel's rounding."""
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(1, 3, 3, bias=False), nn.ReLU(), nn.Conv2d(3, 2, 3, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(8, 2),
    ).double()  # fmt: skip
    with torch.no_grad():
        seq[2].weight[0] *= 1e-10
    return seq.eval()


def _pool_tie() -> nn.Module:
    """A pooling window holding an output that sees only zero padding (exactly 0) beside
    one that crosses 0: past the crossing the pooled value is exactly 0."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 4, 2, stride=2, padding=1, dilation=2, bias=False), nn.ReLU(),
        nn.Conv2d(4, 4, 2, padding=1, dilation=2, bias=False), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16, 3),
    ).double().eval()  # fmt: skip


def _bn_default() -> nn.Module:
    """Bias-free convolutions each followed by an eval-mode BatchNorm2d with default
    statistics (shift exactly 0): kept as its own op in the layer graph's form."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Conv2d(3, 3, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Flatten(), nn.Linear(48, 2),
    ).double().eval()  # fmt: skip


def _relu6() -> nn.Module:
    """Bias-free 1x1 convolutions and ReLU6 (hard-tanh between per-channel affine maps): a
    saturated clamp's -1 maps to exactly 0, the next convolution's input."""
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(2, 4, 1, padding=1, bias=False), nn.ReLU6(),
        nn.Conv2d(4, 4, 1, padding=1, groups=4, bias=False), nn.ReLU6(),
        nn.Flatten(), nn.Linear(4 * 10 * 10, 3),
    ).double().eval()  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "case", ["residual 1x1", "residual 3x3", "mixed scale", "pool tie", "batch norm", "relu6"]
)
def test_exact_zeros_and_tiny_values_match_the_forward_pass(case: str, backend: str) -> None:
    # Found by a sweep after the carry's snap landed: structural zeros reached by a
    # residual sum or through a BatchNorm op were not snapped; a per-piece band snapped a
    # real value 1e-10 of its neighbours' scale and lost its crossing; a pooled value at a
    # switch of the argmax was the interpolated crossing, not the exact 0 of the tie.
    module, shape = {
        "residual 1x1": (_ResidualNet(1).double().eval(), (1, 6, 6)),
        "residual 3x3": (_ResidualNet(3).double().eval(), (1, 6, 6)),
        "mixed scale": (_mixed_scale(), (1, 6, 6)),
        "pool tie": (_pool_tie(), (2, 8, 8)),
        "batch norm": (_bn_default(), (1, 6, 6)),
        "relu6": (_relu6(), (2, 6, 6)),
    }[case]
    net = fastmem.Network.from_torch(module, input_shape=shape)
    rng = np.random.default_rng(0)
    d = int(np.prod(shape))
    A, B = rng.normal(size=(2, 6, d))
    nets = [net] + ([net._conv_network()] if net.layer_graph is None else [])
    counts = []
    for graph in nets:
        assert _hash_mismatches(graph, A, B, backend=backend) == 0
        counts.append(fastmem.regions.along_segments(graph, A, B, backend=backend).counts)
    np.testing.assert_array_equal(counts[0], counts[-1])
    # no crossing lost: dense sampling never sees more regions than the exact walk
    sampled = fastmem.regions.along_segments(net, A, B, method="sampled", samples=4001)
    assert (sampled.counts <= counts[0]).all()

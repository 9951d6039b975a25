"""Convolutional networks through Network.from_torch(module, input_shape=...).

References: torch's own float64 forward; the dense matrix of each operation obtained by
applying the torch operation to the identity basis; a plain pattern walk along segments
evaluated by torch at dense samples and at the exact pieces' midpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import on_backend_device, to_numpy

import fastmem
from fastmem import InputError, Network

torch = pytest.importorskip("torch", reason="torch is optional: from_torch tests need it")
nn = torch.nn


def _small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU()),
            nn.Conv2d(4, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 3 * 3, 10),
        )
        .double()
        .eval()
    )


def _torch(model: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


def _identity_basis_matrix(op: nn.Module, shape: tuple[int, ...]) -> np.ndarray:
    """The dense matrix of a linear (bias-free) torch op: its outputs on the unit vectors."""
    n = int(np.prod(shape))
    basis = np.eye(n).reshape(n, *shape)
    return _torch(op.double().eval(), basis).reshape(n, -1).T


def _randomize_bn(bn: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=gen))
        bn.running_var.copy_(torch.rand(n, generator=gen) * 2.0 + 0.2)
        if bn.affine:
            bn.weight.copy_(torch.randn(n, generator=gen))
            bn.bias.copy_(torch.randn(n, generator=gen))
    return bn.double().eval()


def test_small_cnn_forward_predict_and_layer_outputs_match_torch():
    model = _small_cnn()
    net = Network.from_torch(model, input_shape=(1, 12, 12))
    assert net.widths == (144, 4 * 6 * 6, 8 * 3 * 3, 10)
    assert net.activation == ("relu", "relu")
    X = np.random.default_rng(0).normal(size=(64, 1, 12, 12))
    Xf = X.reshape(64, -1)
    want = _torch(model, X)
    np.testing.assert_allclose(net.forward(Xf), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(net.predict(Xf), want.argmax(axis=1))
    T = torch.from_numpy(X)
    with torch.no_grad():
        h1 = model[0](T).reshape(64, -1).numpy()
        h2 = model[:3](T).reshape(64, -1).numpy()
    for got, ref in zip(net.layer_outputs(Xf), [h1, h2, want], strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"in_channels": 1, "out_channels": 3, "kernel_size": 3}, (1, 7, 6)),
        ({"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2}, (2, 9, 8)),
        (
            {"in_channels": 2, "out_channels": 2, "kernel_size": (3, 2), "padding": (2, 1)},
            (2, 5, 6),
        ),
        ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "dilation": 2}, (3, 8, 9)),
        ({"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2}, (4, 6, 6)),
        ({"in_channels": 3, "out_channels": 3, "kernel_size": 2, "groups": 3}, (3, 5, 5)),
        (
            {
                "in_channels": 2,
                "out_channels": 4,
                "kernel_size": (2, 3),
                "stride": (2, 1),
                "padding": (1, 2),
                "dilation": (2, 1),
                "bias": False,
            },
            (2, 7, 6),
        ),
        ({"in_channels": 2, "out_channels": 3, "kernel_size": 4, "padding": "same"}, (2, 6, 5)),
        ({"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": "valid"}, (2, 6, 5)),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_matrix_equals_identity_basis_and_forward_matches(kwargs, shape):
    torch.manual_seed(1)
    conv = nn.Conv2d(**kwargs).double()
    net = Network.from_torch(conv, input_shape=shape)
    assert net.n_layers == 1
    ref = nn.Conv2d(**{**kwargs, "bias": False}).double()
    with torch.no_grad():
        ref.weight.copy_(conv.weight)
    # The lowered matrix holds the kernel weights exactly where torch applies them.
    np.testing.assert_array_equal(net.weights[0], _identity_basis_matrix(ref, shape))
    X = np.random.default_rng(2).normal(size=(16, *shape))
    np.testing.assert_allclose(
        net.forward(X.reshape(16, -1)), _torch(conv, X).reshape(16, -1), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2},
        {"kernel_size": 3, "stride": 1, "padding": 1},
        {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
        {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1)},
        {"kernel_size": 2, "padding": 1, "divisor_override": 3},
    ],
)
def test_avgpool2d_matrix_equals_identity_basis(kwargs):
    shape = (2, 7, 6)
    pool = nn.AvgPool2d(**kwargs)
    net = Network.from_torch(pool, input_shape=shape)
    np.testing.assert_allclose(
        net.weights[0], _identity_basis_matrix(pool, shape), rtol=1e-15, atol=0
    )
    X = np.random.default_rng(3).normal(size=(8, *shape))
    np.testing.assert_allclose(
        net.forward(X.reshape(8, -1)), _torch(pool, X).reshape(8, -1), rtol=1e-12, atol=1e-12
    )


def test_batchnorm2d_avgpool_and_consecutive_affine_ops_compose():
    torch.manual_seed(4)
    model = nn.Sequential(
        _randomize_bn(nn.BatchNorm2d(3), 1),  # at the input: composed into the conv
        nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=3),
        _randomize_bn(nn.BatchNorm2d(6), 2),  # after the conv
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
        nn.Hardtanh(),
        _randomize_bn(nn.BatchNorm2d(6, affine=False), 3),  # after an activation
        nn.Dropout(0.5),
        nn.Conv2d(6, 4, 3, bias=False),
        nn.LeakyReLU(0.1),
        nn.Flatten(),
        nn.Identity(),
        _randomize_bn(nn.BatchNorm1d(4 * 4 * 8), 4),
        nn.Linear(4 * 4 * 8, 3),
    ).double()
    model.eval()
    shape = (3, 9, 7)
    net = Network.from_torch(model, input_shape=shape)
    assert net.widths == (189, 6 * 6 * 10, 4 * 4 * 8, 3)
    assert net.activation == ("hardtanh", "leaky_relu")
    assert net.negative_slopes == (0.0, 0.1)
    X = np.random.default_rng(5).normal(size=(40, *shape))
    np.testing.assert_allclose(
        net.forward(X.reshape(40, -1)), _torch(model, X), rtol=1e-11, atol=1e-11
    )


def test_input_shape_with_plain_mlp_matches_the_mlp_import():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 7), nn.Linear(7, 2)).double()
    a = Network.from_torch(model)
    b = Network.from_torch(model, input_shape=(5,))
    assert a.widths == b.widths == (5, 7, 2)
    X = np.random.default_rng(7).normal(size=(30, 5))
    np.testing.assert_allclose(b.forward(X), a.forward(X), rtol=1e-13, atol=1e-13)


def _patterns(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """Activation pattern (z > 0 of each ReLU's input) from torch's own intermediates."""
    T = torch.from_numpy(X)
    with torch.no_grad():
        z1 = model[0][0](T).reshape(len(X), -1)
        z2 = model[1](model[0](T)).reshape(len(X), -1)
    return np.concatenate([(z1 > 0).numpy(), (z2 > 0).numpy()], axis=1)


def test_small_cnn_exact_pieces_agree_with_dense_sampling(backend):
    model = _small_cnn(seed=8)
    net = Network.from_torch(model, input_shape=(1, 12, 12))
    rng = np.random.default_rng(9)
    m = 3
    starts = rng.normal(size=(m, 144))
    ends = rng.normal(size=(m, 144))
    res = fastmem.regions.along_segments(
        net, on_backend_device(starts, backend), on_backend_device(ends, backend), backend=backend
    )
    counts = to_numpy(res.counts)
    assert (counts > 1).all()
    n_samples = 4001
    t = np.linspace(0.0, 1.0, n_samples)
    for i in range(m):
        bp = to_numpy(res.breakpoints[i])
        assert len(bp) == counts[i] - 1
        pts = starts[i] + t[:, None] * (ends[i] - starts[i])
        pat = _patterns(model, pts.reshape(-1, 1, 12, 12))
        changed = np.flatnonzero((pat[1:] != pat[:-1]).any(axis=1))
        # every change seen by sampling lies in a sample gap holding an exact breakpoint
        for k in changed:
            assert ((bp >= t[k]) & (bp <= t[k + 1])).any()
        assert len(changed) <= len(bp)
        # every exact breakpoint separates different patterns (at the pieces' midpoints)
        edges = np.concatenate([[0.0], bp, [1.0]])
        mids = (edges[:-1] + edges[1:]) / 2
        mp = _patterns(
            model, (starts[i] + mids[:, None] * (ends[i] - starts[i])).reshape(-1, 1, 12, 12)
        )
        assert (mp[1:] != mp[:-1]).any(axis=1).all()
        # and the hashes of the pieces are those of the network at the midpoints
        np.testing.assert_array_equal(
            to_numpy(res.pattern_hashes[i]),
            net.pattern_hashes(starts[i] + mids[:, None] * (ends[i] - starts[i])),
        )


def test_small_cnn_critical_samples_runs(backend):
    model = _small_cnn(seed=10)
    net = Network.from_torch(model, input_shape=(1, 12, 12))
    X = np.random.default_rng(11).uniform(size=(6, 144))
    res = fastmem.critical_samples(
        net, on_backend_device(X, backend), radius=0.05, steps=5, backend=backend
    )
    assert res.backend == backend
    status = np.asarray(res.status)
    assert status.shape == (6,)
    assert set(status) <= {"critical", "robust", "unknown"}
    np.testing.assert_array_equal(
        np.asarray(res.predicted), _torch(model, X.reshape(-1, 1, 12, 12)).argmax(axis=1)
    )
    crit = status == "critical"
    if crit.any():  # each adversarial point is in the ball and changes torch's prediction
        adv = np.asarray(res.adversarial)[crit]
        assert np.abs(adv - X[crit]).max() <= 0.05 * (1 + 1e-12)
        got = _torch(model, adv.reshape(-1, 1, 12, 12)).argmax(axis=1)
        assert (got != np.asarray(res.predicted)[crit]).all()


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        (
            lambda: nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3)), nn.ReLU()),
            (1, 12, 12),
            r"module\[0\]\[0\] \(Conv2d\): expects 3 input channels, got a tensor of shape "
            r"\(1, 12, 12\)",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5)),
            (1, 6, 6),
            r"module\[2\] \(Conv2d\): kernel 5x5 .* does not fit",
        ),
        (lambda: nn.Conv2d(1, 4, 3), (144,), r"module \(Conv2d\): takes a \(C, H, W\) tensor"),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(2, 1)),
            (1, 5, 5),
            r"module\[2\] \(Linear\): takes a flat tensor.*Flatten",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(3)),
            (1, 6, 6),
            r"module\[1\] \(AdaptiveAvgPool2d\): output size 3x3 does not divide the input "
            r"map 4x4",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softplus()),
            (1, 6, 6),
            r"module\[1\] \(Softplus\): not supported yet",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")),
            (1, 6, 6),
            r"module\[0\] \(Conv2d\): padding_mode='reflect' is not supported",
        ),
        (
            # refused before anything input-sized is allocated (3e10 inputs)
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 3)),
            (3, 100000, 100000),
            r"module\[0\] \(Conv2d\): expects 1 input channels",
        ),
        (
            # ceil_mode takes the layer model (tests/test_torch_idioms.py), which checks
            # the output's shape
            lambda: nn.Sequential(nn.AvgPool2d(2, ceil_mode=True)),
            (1, 5, 5),
            r"module: its output has per-sample shape \(1, 3, 3\)",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2).train()),
            (1, 6, 6),
            r"module\[1\] \(BatchNorm2d\): in training mode",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(3).eval()),
            (1, 6, 6),
            r"module\[1\] \(BatchNorm2d\): has 3 features, got a tensor of shape \(2, 4, 4\)",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
            (1, 6, 6),
            r"must end with an affine layer",
        ),
        (
            lambda: nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 3)),
            (1, 6, 6),
            r"module\[0\] \(ReLU\): an activation must follow an affine layer",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(start_dim=2)),
            (1, 6, 6),
            r"module\[1\] \(Flatten\): only Flatten\(start_dim=1, end_dim=-1\)",
        ),
    ],
)
def test_from_torch_with_input_shape_refuses(model, shape, message):
    with pytest.raises(InputError, match=message):
        Network.from_torch(model(), input_shape=shape)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x + self.body(x)


def _shifted_conv(*args):
    """A subclass named exactly ``Conv2d`` but with its own forward."""
    cls = type("Conv2d", (nn.Conv2d,), {"forward": lambda self, x: nn.Conv2d.forward(self, x) + 1})
    return cls(*args)


def test_residual_blocks_import_as_a_layer_graph_and_subclasses_are_refused():
    # a module of the user's own class is traced (torch.fx) into the layer model
    seq = nn.Sequential(nn.Conv2d(1, 2, 1), _Residual(), nn.Flatten(), nn.Linear(32, 2)).eval()
    net = Network.from_torch(seq, input_shape=(1, 4, 4))
    assert net.layer_graph is not None
    X = np.random.default_rng(0).normal(size=(3, 16))
    want = seq.double()(torch.from_numpy(X.reshape(3, 1, 4, 4))).detach().numpy()
    np.testing.assert_allclose(net.forward(X), want, rtol=0, atol=1e-12)
    # a subclass with its own forward: traced through, and its F.conv2d call refused
    with pytest.raises(InputError, match=r"0.weight: forward reads a parameter"):
        Network.from_torch(nn.Sequential(_shifted_conv(1, 2, 3)), input_shape=(1, 4, 4))


def test_memory_refusal_says_how_much():
    conv = nn.Conv2d(3, 64, 3, padding=1)
    with pytest.raises(
        InputError,
        match=r"module \(Conv2d\): lowering it to a dense matrix needs "
        r"[0-9.e+]+ GiB for the 16777216 x 786432 float64 matrix",
    ):
        Network.from_torch(conv, input_shape=(3, 512, 512))


@pytest.mark.parametrize("shape", [(1, 12), (0, 3, 3), "1x12x12", (1.0, 12, 12), (True,)])
def test_bad_input_shape(shape):
    with pytest.raises(InputError, match="input_shape"):
        Network.from_torch(_small_cnn(), input_shape=shape)


def test_conv_without_input_shape_says_to_pass_it():
    with pytest.raises(
        InputError,
        match=r"module\[0\]\[0\] \(Conv2d\): unsupported without "
        r"input_shape",
    ):
        Network.from_torch(_small_cnn())


def test_save_load_keeps_the_convolutional_form(tmp_path):
    """A CNN lowered to dense matrices keeps its layer graph through save/load (its
    critical samples and CROWN run on the convolutions), checked at load."""
    model = _small_cnn(seed=12)
    for dtype in (np.float64, np.float32):
        net = Network.from_torch(model, input_shape=(1, 12, 12), dtype=dtype)
        path = tmp_path / f"cnn{np.dtype(dtype).itemsize}.npz"
        net.save(path)
        back = Network.load(path)
        assert back._conv is not None and back.dtype == dtype
        assert back._conv.input_shape == (1, 12, 12)
        X = np.random.default_rng(13).uniform(size=(8, 144)).astype(dtype)
        np.testing.assert_array_equal(back.forward(X), net.forward(X))
        a = fastmem.critical_samples(net, X, radius=0.03, steps=5, rng=0)
        b = fastmem.critical_samples(back, X, radius=0.03, steps=5, rng=0)
        np.testing.assert_array_equal(a.status, b.status)
        np.testing.assert_array_equal(a.margin_lower, b.margin_lower)


def test_load_refuses_a_convolutional_form_that_disagrees(tmp_path):
    net = Network.from_torch(_small_cnn(seed=14), input_shape=(1, 12, 12))
    path = tmp_path / "cnn.npz"
    net.save(path)
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    key = next(k for k in members if k.startswith("conv_op") and k.endswith("_weight"))
    bad = dict(members)
    bad[key] = members[key] * 1.01  # the dense matrices stay as they were
    np.savez(tmp_path / "changed.npz", **bad)
    with pytest.raises(InputError, match=r"path: .*does not compute the same function"):
        Network.load(tmp_path / "changed.npz")
    bad = dict(members)
    bad["conv_input_shape"] = np.array([1, 10, 10])
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(InputError, match=r"path: "):
        Network.load(tmp_path / "shape.npz")
    bad = dict(members)
    bad["conv_graph"] = np.array("{not json")
    np.savez(tmp_path / "json.npz", **bad)
    with pytest.raises(InputError, match=r"path: .*not a valid layer graph"):
        Network.load(tmp_path / "json.npz")

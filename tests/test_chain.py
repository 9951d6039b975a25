"""The segment engine's chained pass (``chain_values``, ``breakpoint_causes`` in
cpp/include/fastmem/regions.hpp and fastmem/_numba/regions.py).

After a convolution's activation, the walk needs the next dense layer at the old vertices;
the chained pass carries it along each segment by the rank-1 updates of the neurons whose
slope changes at each vertex (the flipped neuron's receptive field) instead of a GEMM.
Checked against plain NumPy (the dense layer applied to the activations at every vertex),
between backends (bit for bit), and through whole walks against the walk without it.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmem
from fastmem import _graph

torch = pytest.importorskip("torch", reason="the layer graphs here are imported from torch")
nn = torch.nn

BACKENDS = [n for n, info in fastmem.backends().items() if info.available and n != "cuda"]
KERNELS = {"cpp": "fastmem._core", "numba": "fastmem._numba"}
SHAPE = (1, 12, 12)


def _net(act2: str, seed: int, bias2: float = 0.0, act1: str = "relu") -> fastmem.Network:
    """conv-<act1>-conv-<act2>-linear-relu-linear (a traced forward: the layer graph), the
    second convolution's bias shifted by ``bias2``."""

    def acts(name: str) -> nn.Module:
        return {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.2), "hardtanh": nn.Hardtanh()}[name]

    seq = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), acts(act1),
        nn.Conv2d(4, 6, 3, stride=1, padding=1), acts(act2),
        nn.Flatten(), nn.Linear(6 * 6 * 6, 9), nn.ReLU(), nn.Linear(9, 3),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in seq.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.6)
        seq[2].bias += bias2

    class Traced(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seq = seq

        def forward(self, x):
            return self.seq(x)

    net = fastmem.Network.from_torch(Traced().eval(), input_shape=SHAPE)
    assert net.layer_graph is not None
    return net


def _segments(seed: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (m, 144)), rng.uniform(0, 1, (m, 144))


def _spy(monkeypatch, backend: str) -> list:
    """Record every chain_values call of the backend's kernels (inputs and result)."""
    import importlib

    mod = importlib.import_module(KERNELS[backend])
    real = mod.chain_values
    calls = []

    def spy(*args):
        real(*args)
        calls.append([a.copy() if isinstance(a, np.ndarray) else a for a in args])

    monkeypatch.setattr(mod, "chain_values", spy)
    return calls


def _reference(args, act2: str) -> np.ndarray:
    """The dense layer at every old vertex, in plain NumPy."""
    z, wt = args[0], args[9]
    h = {
        "relu": np.maximum(z, 0),
        "leaky": np.where(z > 0, z, np.float64(0.2) * z),
        "hardtanh": np.clip(z, -1, 1),
    }[act2]
    return h @ wt[:-1] + wt[-1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("act1", "act2"), [("relu", "relu"), ("relu", "leaky"), ("relu", "hardtanh"),
                       ("hardtanh", "relu"), ("leaky", "hardtanh")],
)  # fmt: skip
def test_chained_values_equal_the_dense_layer_at_every_vertex(monkeypatch, backend, act1, act2):
    """(act1: the causes, a flip of the activation before the convolution)"""
    net = _net(act2, seed=1, act1=act1)
    A, B = _segments(2, 6)
    calls = _spy(monkeypatch, backend)
    fastmem.regions.along_segments(net, A, B, backend=backend)
    assert calls, "the chained pass did not run"
    for args in calls:
        zn, ref = args[-1], _reference(args, act2)
        scale = np.abs(ref).max(axis=1, keepdims=True) + 1
        assert np.abs(zn - ref).max() / scale.max() < 1e-12
        assert (np.abs(zn - ref) / scale).max() < 1e-12
        cause = args[10]
        assert (cause >= 0).mean() > 0.5  # most vertices carried, not recomputed


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs the cpp and numba backends")
def test_chained_values_are_equal_across_backends(monkeypatch):
    import importlib

    net = _net("leaky", seed=4)
    A, B = _segments(5, 4)
    calls = _spy(monkeypatch, "cpp")
    fastmem.regions.along_segments(net, A, B, backend="cpp")
    numba = importlib.import_module(KERNELS["numba"])
    for args in calls:
        out = np.full_like(args[-1], np.nan)
        numba.chain_values(*args[:-1], out)
        np.testing.assert_array_equal(out, args[-1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("period", [1, 64, 1 << 40])
def test_walks_with_and_without_the_chained_pass_agree(monkeypatch, backend, period):
    """Counts and piece hashes equal, breakpoints within 1e-9, at any re-anchoring
    period (1: a direct value at every vertex; 2^40: never after the first)."""
    net = _net("relu", seed=7)
    A, B = _segments(8, 5)
    monkeypatch.setattr(_graph, "_CHAIN_PERIOD", period)
    calls = _spy(monkeypatch, backend)
    chained = fastmem.regions.along_segments(net, A, B, backend=backend)
    assert calls
    monkeypatch.setattr(_graph, "_CHAIN", False)
    plain = fastmem.regions.along_segments(net, A, B, backend=backend)
    np.testing.assert_array_equal(chained.counts, plain.counts)
    np.testing.assert_array_equal(chained.pattern_hashes.values, plain.pattern_hashes.values)
    np.testing.assert_allclose(chained.breakpoints.values, plain.breakpoints.values, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_layer_keeps_the_exact_bias(monkeypatch, backend):
    """Where every neuron of the activation is off, the dense layer is exactly its bias
    (as the GEMM gives): the pass takes direct values there, never carried rounding."""
    net = _net("relu", seed=3, bias2=-60.0)
    A, B = _segments(4, 3)
    calls = _spy(monkeypatch, backend)
    fastmem.regions.along_segments(net, A, B, backend=backend)
    for args in calls:
        z, wt, zn = args[0], args[9], args[-1]
        dead = (z <= 0).all(axis=1)
        assert dead.any()
        np.testing.assert_array_equal(zn[dead], np.broadcast_to(wt[-1], zn[dead].shape))


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_kernels_refuse_broken_contracts(monkeypatch, backend):
    import importlib

    net = _net("relu", seed=1)
    A, B = _segments(2, 2)
    calls = _spy(monkeypatch, backend)
    fastmem.regions.along_segments(net, A, B, backend=backend)
    monkeypatch.undo()  # the kernel itself again
    mod = importlib.import_module(KERNELS[backend])
    args = calls[0]

    def broken(i, value):
        a = list(args)
        a[i] = value
        return a

    cause, rf_ptr = args[10], args[12]
    bad = [
        broken(10, np.where(cause >= 0, rf_ptr.shape[0], cause)),  # a cause past the fields
        broken(10, cause[:-1]),  # one cause short
        broken(3, args[3][::-1].copy()),  # segments out of order
        broken(15, 0),  # period
        broken(13, np.full_like(args[13], args[0].shape[1])),  # a field past the width
        broken(7, 3),  # a threshold activation
    ]
    for a in bad:
        with pytest.raises(ValueError):
            mod.chain_values(*a)

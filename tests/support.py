"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import numpy as np


def on_backend_device(x: np.ndarray, backend: str):
    """The array as the backend consumes it: CuPy for cuda, NumPy otherwise."""
    if backend == "cuda":
        import cupy

        return cupy.asarray(x)
    return x


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array."""
    return x.get() if hasattr(x, "get") else np.asarray(x)


def backends_to_compare(names: list[str]) -> list[str]:
    """``names`` when there are at least two to compare; otherwise skip with the reason."""
    import pytest

    if len(names) < 2:
        pytest.skip(f"only {names} available here: nothing to compare across backends")
    return names


def centred_net(seed: int, widths, n: int, act: str = "relu", dtype=np.float64):
    """A random net whose first layer is centred on the input box's middle (so that its
    neurons are unstable near the data), and ``n`` inputs uniform in [0, 1]."""
    import itertools

    import fastmem

    rng = np.random.default_rng(seed)
    ws, bs = [], []
    centre = np.full(widths[0], 0.5)
    for i, o in itertools.pairwise(widths):
        W = rng.normal(scale=2.0 / np.sqrt(i), size=(o, i))
        ws.append(W)
        bs.append(-W @ centre + rng.normal(scale=0.2, size=o))
        centre = np.zeros(o)
    acts = [act] * (len(widths) - 2)
    net = fastmem.Network.from_arrays(ws, bs, acts, negative_slope=0.1, dtype=dtype)
    return net, rng.random((n, widths[0])).astype(dtype)


def init_torch_module(module, seed: int, scale: float):
    """``module`` with its parameters drawn from ``scale * N(0, 1)`` (seeded) and its
    BatchNorm running statistics drawn too (mean in [-1/2, 1/2), variance in [1/2, 3/2)),
    in eval mode: a torch network whose every layer matters, without training."""
    import torch

    nn = torch.nn
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module.eval()

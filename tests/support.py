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


def traced(module):
    """``module`` called from a forward of a class of the user's own, so that
    ``Network.from_torch`` traces it into a layer graph instead of lowering an
    ``nn.Sequential`` to dense layers."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    return Wrapped(module)


# Zhang et al.'s (2017) small Inception for CIFAR-10 (their appendix) as its
# reimplementations write it: ("i", ch1, ch3) an Inception module joining a 1x1 and a 3x3
# conv module by torch.cat, ("d", ch3) a downsample module joining a strided 3x3 conv
# module and max pooling; the full network's widths below (a 96-channel stem)
ZHANG_INCEPTION = (96, [("i", 32, 32), ("i", 32, 48), ("d", 80), ("i", 112, 48),
                        ("i", 96, 64), ("i", 80, 80), ("i", 48, 96), ("d", 96),
                        ("i", 176, 160), ("i", 176, 160)])  # fmt: skip


def small_inception(stem: int, modules, n_classes: int = 10):
    """Zhang et al.'s small Inception on 3-channel images (``ZHANG_INCEPTION`` gives the
    paper's widths): conv modules of conv, BatchNorm and ReLU; global average pooling by
    ``F.adaptive_avg_pool2d`` and ``x.view(x.size(0), -1)``; PyTorch's default init."""
    import torch

    nn, F = torch.nn, torch.nn.functional

    class ConvModule(nn.Module):
        def __init__(self, c_in, c_out, k, stride, pad):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, k, stride, pad)
            self.bn = nn.BatchNorm2d(c_out)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class InceptionModule(nn.Module):
        def __init__(self, c_in, ch1, ch3):
            super().__init__()
            self.ch1 = ConvModule(c_in, ch1, 1, 1, 0)
            self.ch3 = ConvModule(c_in, ch3, 3, 1, 1)

        def forward(self, x):
            return torch.cat([self.ch1(x), self.ch3(x)], 1)

    class DownsampleModule(nn.Module):
        def __init__(self, c_in, ch3):
            super().__init__()
            self.ch3 = ConvModule(c_in, ch3, 3, 2, 0)
            self.pool = nn.MaxPool2d(3, stride=2)

        def forward(self, x):
            return torch.cat([self.ch3(x), self.pool(x)], 1)

    class SmallInception(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = ConvModule(3, stem, 3, 1, 1)
            body, c = [], stem
            for kind, *widths in modules:
                if kind == "i":
                    body.append(InceptionModule(c, *widths))
                    c = sum(widths)
                else:
                    body.append(DownsampleModule(c, *widths))
                    c += widths[0]
            self.body = nn.Sequential(*body)
            self.fc = nn.Linear(c, n_classes)

        def forward(self, x):
            x = F.adaptive_avg_pool2d(self.body(self.conv1(x)), 1)
            return self.fc(x.view(x.size(0), -1))

    return SmallInception().eval()

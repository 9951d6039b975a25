"""Exact regions along segments through convolutional networks (issue 20, first part).

The CNN of issue 20 on MNIST-shaped inputs, He init, float64:
``Conv2d(1,16,5,s2,p2)-ReLU-Conv2d(16,32,5,s2,p2)-ReLU-Flatten-Linear(1568,128)-ReLU-
Linear(128,10)``, with 100 segments between random inputs in [0, 1]^784:

- ``dense``: the network lowered to dense matrices (``Network.from_torch`` on the
  ``nn.Sequential``), walked by the kernel segment engine;
- ``graph``: the same network imported as a layer graph (its ``forward`` traced), walked
  by the layer model's exact walk -- same counts. An activation followed by an affine op
  runs through the segment engine's kernels: the op (an im2col convolution, a GEMM) at
  the piece vertices the activation started with, carried to its new vertices by one
  rank-1 update per crossing: for a convolution from its sparse columns (the flipped
  neuron's receptive field, built once per call), for a linear op from its dense matrix;
  chunks of segments are walked side by side on the two cores;
- ``maxpool``: the same with ``MaxPool2d(2)`` after each convolution (a layer graph);
- ``residual``: a stem convolution and two ResNet basic blocks (a layer graph).

PGD on the same CNN in float32 (``N_PGD`` = 1000 inputs in [0, 1], as issue 20 asks;
100 steps of 2.5 r / 100, cross-entropy, one random start), at Madry's radius 8/255 (the
issue's setting, where nearly every sample changes class in the first steps) and at 1/255
(where most never do, so fastmem's per-sample early stop saves little):

- ``pgd-graph``: ``critical_samples(method="pgd", certify=None)`` on the layer graph
  (native convolutions; each sample stops at its first class change);
- ``pgd-dense``: the same call on the ``nn.Sequential`` import (a dense lowering, whose
  critical samples run on the layer graph it keeps: the same path as ``pgd-graph``);
- ``pgd-torchattacks``: torchattacks' ``PGD`` (the peer library the issue names; the same
  step, its own random start) on the ``nn.Sequential``, torch's own threads (2 here);
- ``pgd-torch``: the plain torch autograd loop of 100 steps over all samples (what
  torchattacks' ``PGD`` does, without its per-call copies).

A wide network (``test_inception_pgd_fresh``): Zhang et al.'s small Inception for CIFAR-10 at
full width (96-336 channels, branches joined by ``torch.cat``), float32, ``N_INCEPTION``
inputs in [0, 1]^(3 x 28 x 28), ``INCEPTION_STEPS`` steps of PGD at 8/255:
``pgd-inception`` (``critical_samples(certify=None)``) against ``pgd-inception-torch``
(the plain torch autograd loop, torch's own threads).

Each contender runs in its own fresh process (``bench/_fresh.py``), min over rounds; the
regions contenders also report the process's peak RSS (``ru_maxrss``) and its RSS before
the first call (models imported, inputs drawn), so ``peak - before`` is what the calls
added:

    python -m pytest bench/test_graph.py -s

This file is also the script each fresh process runs (``python test_graph.py NAME ROUNDS``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# issue 20 asks for 1000 segments: FASTMEM_BENCH_SEGMENTS=1000 (inherited by the fresh processes)
N_SEGMENTS = int(os.environ.get("FASTMEM_BENCH_SEGMENTS", "100"))
N_PGD = 1000
# the radii (x 255) of the PGD rows: the setting and one where few samples flip
PGD_RADII_255 = (8.0, 1.0)
N_INCEPTION = 100
INCEPTION_STEPS = 20
SHAPE = (1, 28, 28)


def _models():  # torch imported lazily: the bench collection must not need it
    import torch

    nn, F = torch.nn, torch.nn.functional

    class Traced(nn.Module):
        def __init__(self, seq):
            super().__init__()
            self.seq = seq

        def forward(self, x):
            return self.seq(x)

    class Basic(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

        def forward(self, x):
            return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + x)

    def cnn(pool: bool):
        layers = [nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU()]
        layers += [nn.MaxPool2d(2)] if pool else []
        layers += [nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU()]
        layers += [nn.MaxPool2d(2)] if pool else []
        flat = 32 * 2 * 2 if pool else 32 * 7 * 7
        layers += [nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, 10)]
        return nn.Sequential(*layers)

    def resnet():
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), Basic(8), Basic(8),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10),
        )  # fmt: skip

    def he(m):
        torch.manual_seed(0)
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(mod.weight)
                nn.init.zeros_(mod.bias)
        return m.eval()

    return {
        "dense": he(cnn(False)),
        "graph": Traced(he(cnn(False))),
        "maxpool": he(cnn(True)),
        "residual": he(resnet()),
    }


def _inception():
    """Zhang et al.'s (2017) small Inception for CIFAR-10 at full width
    (``tests/support.py``: ``small_inception(*ZHANG_INCEPTION)``), eval mode, seeded."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support import ZHANG_INCEPTION, small_inception

    torch.manual_seed(0)
    return small_inception(*ZHANG_INCEPTION)


def run_pgd_inception(name: str, rounds: int) -> dict:
    """PGD, ``INCEPTION_STEPS`` steps at 8/255 on ``N_INCEPTION`` inputs of Zhang et al.'s
    small Inception, float32: ``pgd-inception`` (``critical_samples(certify=None)``) or
    ``pgd-inception-torch`` (the plain torch autograd loop)."""
    import torch

    import fastmem

    model = _inception()
    X = np.random.default_rng(0).uniform(0, 1, (N_INCEPTION, 3 * 28 * 28)).astype(np.float32)
    r, steps = 8 / 255, INCEPTION_STEPS
    times, found = [], 0
    for _ in range(rounds):
        if name == "pgd-inception-torch":
            x0 = torch.from_numpy(X.reshape(-1, 3, 28, 28))
            lo, hi = (x0 - r).clamp(0, 1), (x0 + r).clamp(0, 1)
            t = time.perf_counter()
            with torch.no_grad():
                y = model(x0).argmax(1)
            x = lo + (hi - lo) * torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
            for _ in range(steps):
                x.requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                (g,) = torch.autograd.grad(loss, x)
                x = torch.minimum(torch.maximum(x.detach() + 2.5 * r / steps * g.sign(), lo), hi)
            with torch.no_grad():
                found = int((model(x).argmax(1) != y).sum())
            times.append(time.perf_counter() - t)
        else:
            net = fastmem.Network.from_torch(model, input_shape=(3, 28, 28), dtype=np.float32)
            t = time.perf_counter()
            res = fastmem.critical_samples(
                net, X, radius=r, method="pgd", steps=steps, certify=None, rng=0
            )
            times.append(time.perf_counter() - t)
            found = res.n_critical
    return {"name": name, "min_s": min(times), "critical": found}


def run_pgd(name: str, rounds: int, r255: float = 8.0) -> dict:
    import torch

    import fastmem

    models = _models()
    X = np.random.default_rng(0).uniform(0, 1, (N_PGD, 784)).astype(np.float32)
    r = r255 / 255
    times, found = [], 0
    for _ in range(rounds):
        if name == "pgd-torchattacks":
            import torchattacks

            model = models["dense"]
            x0 = torch.from_numpy(X.reshape(-1, *SHAPE))
            atk = torchattacks.PGD(model, eps=r, alpha=2.5 * r / 100, steps=100, random_start=True)
            t = time.perf_counter()
            with torch.no_grad():
                y = model(x0).argmax(1)
            adv = atk(x0, y)
            with torch.no_grad():
                found = int((model(adv).argmax(1) != y).sum())
            times.append(time.perf_counter() - t)
        elif name == "pgd-torch":
            model = models["dense"]
            x0 = torch.from_numpy(X.reshape(-1, *SHAPE))
            lo, hi = (x0 - r).clamp(0, 1), (x0 + r).clamp(0, 1)
            t = time.perf_counter()
            with torch.no_grad():
                y = model(x0).argmax(1)
            x = lo + (hi - lo) * torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
            for _ in range(100):
                x.requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                (g,) = torch.autograd.grad(loss, x)
                x = torch.minimum(torch.maximum(x.detach() + 2.5 * r / 100 * g.sign(), lo), hi)
            with torch.no_grad():
                found = int((model(x).argmax(1) != y).sum())
            times.append(time.perf_counter() - t)
        else:
            key = "graph" if name == "pgd-graph" else "dense"
            net = fastmem.Network.from_torch(models[key], input_shape=SHAPE, dtype=np.float32)
            t = time.perf_counter()
            res = fastmem.critical_samples(
                net, X, radius=r, method="pgd", steps=100, certify=None, rng=0
            )
            times.append(time.perf_counter() - t)
            found = res.n_critical
    return {"name": name, "r255": r255, "min_s": min(times), "critical": found}


def _rss_mib() -> float:
    """The process's resident set now (Linux ``/proc``), in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(name: str, rounds: int, *extra: str) -> dict:
    import resource

    import fastmem

    if name.startswith("pgd-inception"):
        return run_pgd_inception(name, rounds)
    if name.startswith("pgd-"):
        return run_pgd(name, rounds, *map(float, extra))
    if name == "sampling":
        return run_sampling(rounds)

    net = fastmem.Network.from_torch(_models()[name], input_shape=SHAPE)
    rng = np.random.default_rng(0)
    A = rng.uniform(0, 1, (N_SEGMENTS, 784))
    B = rng.uniform(0, 1, (N_SEGMENTS, 784))
    before = _rss_mib()
    times, counts = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        r = fastmem.regions.along_segments(net, A, B)
        times.append(time.perf_counter() - t)
        counts = r.counts
    return {
        "name": name,
        "min_s": min(times),
        "regions_per_segment": float(np.mean(counts)),
        "counts": [int(c) for c in counts],
        "layer_graph": net.layer_graph is not None,
        "rss_before_mib": before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_sampling(points: int) -> dict:
    """Dense sampling on the segments of :func:`run` (issue 20's CNN): ``points`` evenly
    spaced points per segment, a region counted at each change of pattern hash; against
    the exact counts (``python bench/test_graph.py sampling 1000``)."""
    import fastmem

    net = fastmem.Network.from_torch(_models()["graph"], input_shape=SHAPE)
    rng = np.random.default_rng(0)
    A = rng.uniform(0, 1, (N_SEGMENTS, 784))
    B = rng.uniform(0, 1, (N_SEGMENTS, 784))
    exact = np.asarray(fastmem.regions.along_segments(net, A, B).counts)
    t = np.linspace(0, 1, points)
    sampled = np.empty(N_SEGMENTS, dtype=np.int64)
    t0 = time.perf_counter()
    for a in range(0, N_SEGMENTS, 20):
        b = min(a + 20, N_SEGMENTS)
        X = A[a:b, None, :] * (1 - t)[None, :, None] + B[a:b, None, :] * t[None, :, None]
        h = np.asarray(net.pattern_hashes(X.reshape(-1, 784))).reshape(b - a, points)
        sampled[a:b] = 1 + (h[:, 1:] != h[:, :-1]).sum(axis=1)
    return {
        "name": "sampling",
        "points": points,
        "seconds": time.perf_counter() - t0,
        "exact_per_segment": float(exact.mean()),
        "sampled_per_segment": float(sampled.mean()),
        "fraction_found": float(sampled.sum() / exact.sum()),
        "undercounted_segments": int((sampled < exact).sum()),
        "overcounted_segments": int((sampled > exact).sum()),
    }


@pytest.mark.parametrize("rounds", [2])
def test_cnn_regions_fresh(rounds: int) -> None:
    pytest.importorskip("torch", reason="the CNN benchmark imports torch modules")
    sys.path.insert(0, str(Path(__file__).parent))
    from _fresh import run_script_fresh

    out = {name: run_script_fresh(__file__, name, rounds) for name in _NAMES}
    assert out["graph"]["counts"] == out["dense"]["counts"]
    for name, r in out.items():
        print(
            f"{name:9s} min {r['min_s']:.2f} s  {r['regions_per_segment']:.1f} regions/segment"
            f"  layer graph: {r['layer_graph']}  peak RSS {r['peak_rss_mib']:.0f} MiB"
            f" (+{r['peak_rss_mib'] - r['rss_before_mib']:.0f} over {r['rss_before_mib']:.0f})"
        )
    g, d = out["graph"], out["dense"]
    print(f"dense / graph time: {d['min_s'] / g['min_s']:.2f}x")
    added = (g["peak_rss_mib"] - g["rss_before_mib"]) / (d["peak_rss_mib"] - d["rss_before_mib"])
    print(f"graph / dense peak RSS: {g['peak_rss_mib'] / d['peak_rss_mib']:.2f}, added {added:.2f}")


@pytest.mark.parametrize("rounds", [2])
def test_cnn_pgd_fresh(rounds: int) -> None:
    pytest.importorskip("torch", reason="the CNN benchmark imports torch modules")
    pytest.importorskip(
        "torchattacks", reason="the peer baseline needs torchattacks (pip install --no-deps)"
    )
    sys.path.insert(0, str(Path(__file__).parent))
    from _fresh import run_script_fresh

    for r255 in PGD_RADII_255:
        out = {name: run_script_fresh(__file__, name, rounds, r255) for name in _PGD_NAMES}
        print(f"\nr = {r255}/255, {N_PGD} inputs")
        for name, r in out.items():
            print(f"{name:17s} min {r['min_s']:.2f} s  critical {r['critical']} of {N_PGD}")
        for base in ("pgd-torchattacks", "pgd-torch"):
            for name in ("pgd-graph", "pgd-dense"):
                ratio = out[base]["min_s"] / out[name]["min_s"]
                print(f"{base} / {name}: {ratio:.2f}x")


@pytest.mark.parametrize("rounds", [2])
def test_inception_pgd_fresh(rounds: int) -> None:
    """A wide network: Zhang et al.'s small Inception (96-336 channels), where torch's
    convolutions are fastmem's baseline at their strongest."""
    pytest.importorskip("torch", reason="the CNN benchmark imports torch modules")
    sys.path.insert(0, str(Path(__file__).parent))
    from _fresh import run_script_fresh

    out = {
        n: run_script_fresh(__file__, n, rounds) for n in ("pgd-inception", "pgd-inception-torch")
    }
    for n, r in out.items():
        print(f"{n:20s} min {r['min_s']:.2f} s  critical {r['critical']} of {N_INCEPTION}")
    ratio = out["pgd-inception-torch"]["min_s"] / out["pgd-inception"]["min_s"]
    print(f"torch loop / fastmem: {ratio:.2f}x")


_NAMES = ("dense", "graph", "maxpool", "residual")
_PGD_NAMES = ("pgd-graph", "pgd-dense", "pgd-torchattacks", "pgd-torch")

if __name__ == "__main__":
    result = run(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
    print(json.dumps(result))

"""Critical samples and loss sensitivity, fastmem side by side with torch baselines.

* PGD, 100 steps, 1000 MNIST-shaped inputs (784 in [0, 1]) through a 784-128-128-128-10
  ReLU net, float32: fastmem (cpp, numba; per-sample early stop) vs torchattacks.PGD
  (torch CPU, same steps, same batch). The CROWN certificate of the same batch is timed
  next to it.
* Loss sensitivity of 10,000 inputs: fastmem vs a torch autograd loop over batches.

Run:  python -m pytest bench/test_critical.py --benchmark-columns=min,mean,rounds
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmem

WIDTHS = (784, 128, 128, 128, 10)
N_PGD = 1000
N_LS = 10_000
EPS = 8 / 255
ALPHA = 2 / 255
STEPS = 100


@pytest.fixture(scope="module")
def case(he_relu_net):
    rng = np.random.default_rng(0)
    net64, weights, biases = he_relu_net(WIDTHS, rng)
    net = net64.astype(np.float32)
    X = rng.random((N_LS, WIDTHS[0])).astype(np.float32)
    return net, weights, biases, X


def _torch_model(weights, biases):
    torch = pytest.importorskip("torch", reason="the baseline needs torch")
    layers = []
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        lin.weight.data = torch.tensor(W, dtype=torch.float32)
        lin.bias.data = torch.tensor(b, dtype=torch.float32)
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "fastmem-crown", "torchattacks"])
def test_pgd(benchmark, case, impl):
    net, weights, biases, X = case
    X = X[:N_PGD]
    benchmark.group = "PGD 100 steps, 1000 x 784-128x3-10 float32"
    if impl == "torchattacks":
        torch = pytest.importorskip("torch", reason="the baseline needs torch")
        ta = pytest.importorskip("torchattacks", reason="the baseline needs torchattacks")
        model = _torch_model(weights, biases)
        xt = torch.tensor(X)
        with torch.no_grad():
            yt = model(xt).argmax(1)
        atk = ta.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
        benchmark.pedantic(lambda: atk(xt, yt), rounds=3, iterations=1, warmup_rounds=0)
        return
    if impl == "fastmem-crown":
        benchmark.pedantic(
            lambda: fastmem.critical_samples(
                net,
                X,
                radius=EPS,
                method="pgd",
                steps=1,
                certify="crown",
                rng=0,
                backend="cpp",
            ),
            rounds=3,
            iterations=1,
            warmup_rounds=1,
        )
        return
    backend = impl.split("-")[1]
    res = benchmark.pedantic(
        lambda: fastmem.critical_samples(
            net,
            X,
            radius=EPS,
            method="pgd",
            steps=STEPS,
            step_size=ALPHA,
            certify=None,
            rng=0,
            backend=backend,
        ),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    benchmark.extra_info["csr_lower"] = res.csr_lower
    benchmark.extra_info["mean_steps"] = float(res.steps_taken.mean())


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "torch-autograd"])
def test_loss_sensitivity(benchmark, case, impl):
    net, weights, biases, X = case
    y = np.random.default_rng(1).integers(0, 10, N_LS)
    benchmark.group = "loss sensitivity, 10k x 784-128x3-10 float32"
    if impl == "torch-autograd":
        torch = pytest.importorskip("torch", reason="the baseline needs torch")
        model = _torch_model(weights, biases)
        xt, yt = torch.tensor(X), torch.tensor(y)

        def run():
            out = []
            for lo in range(0, N_LS, 1000):
                xb = xt[lo : lo + 1000].clone().requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(
                    model(xb), yt[lo : lo + 1000], reduction="sum"
                )
                (g,) = torch.autograd.grad(loss, xb)
                out.append(g.abs().sum(1))
            return torch.cat(out)

        benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
        return
    backend = impl.split("-")[1]
    benchmark.pedantic(
        lambda: fastmem.loss_sensitivity(net, X, y, backend=backend),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )

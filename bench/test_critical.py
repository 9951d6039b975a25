"""Critical samples and loss sensitivity, fastmem side by side with torch baselines.

* PGD, 100 steps, 1000 MNIST-shaped inputs (784 in [0, 1]) through a 784-128-128-128-10
  ReLU net, float32: fastmem (cpp, numba; per-sample early stop) vs torchattacks.PGD
  (torch CPU, same steps, same batch). The CROWN certificate of the same batch is timed
  next to it.
* Loss sensitivity of 10,000 inputs: fastmem vs a torch autograd loop over batches, and
  against its floor, the two 10,000 x 784 x 128 float32 GEMMs alone (forward through the
  first layer, backward to the input; NumPy/OpenBLAS, contender ``gemm-floor``): every
  method computing these gradients does at least those two products.
* The CSR sandwich at Arpit et al.'s radius 0.3/255 and at 1/255, 2/255, 8/255: the full
  default call ``critical_samples(..., method="pgd", steps=100)`` (CROWN certificate,
  the order chosen by its look) and LASS, against the plain torch PGD loop of 100 sign
  steps over all samples (what users run for a CSR lower bound alone); the value is the
  number of critical samples found (fastmem: also the number certified robust).

Run:  python -m pytest bench/test_critical.py --benchmark-columns=min,mean,rounds

The ratios come from ``test_fresh_processes``: each contender runs in its own fresh
Python process, one after the other, so no thread of one (torch's intra-op pool,
OpenBLAS's spinning workers, the OpenMP team) is alive while another is timed; a warm-up
call, then the minimum over the timed calls:

    python -m pytest bench/test_critical.py -k fresh -s --benchmark-columns=min

or one contender: ``python bench/test_critical.py <pgd|ls> <contender> <rounds>`` with
contender in ``cpp | numba | torch`` (torch: torchattacks PGD, or the autograd loop), for
``ls`` also ``gemm-floor`` (the two large products) and ``gemm-all`` (every product of
the forward and the backward pass, each layer: the floor of any method through this
network, 1.35x the two large products' flops), or, for ``pgd``, ``crown`` (the CROWN
certificate of the batch, value: the CSR upper bound);
``python bench/test_critical.py csr <contender> <rounds> <radius in 1/255>`` with
contender ``pgd | lass | torch | torch1`` (torch1: torch on one thread), ``pgd-alpha-crown``
(the full call with ``certify="alpha-crown"``) or ``crown | alpha-crown | ibp`` (the
certificate alone, ``steps=0``; value [critical, robust]).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastmem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fresh import run_script_fresh

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
                steps=0,
                certify="crown",
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


def _torch_loss_sensitivity(torch, model, xt, yt):
    """The way users compute it today: autograd over batches of 1000, ||dL/dx||_1."""
    out = []
    for lo in range(0, xt.shape[0], 1000):
        xb = xt[lo : lo + 1000].clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xb), yt[lo : lo + 1000], reduction="sum")
        (g,) = torch.autograd.grad(loss, xb)
        out.append(g.abs().sum(1))
    return torch.cat(out)


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "torch-autograd"])
def test_loss_sensitivity(benchmark, case, impl):
    net, weights, biases, X = case
    y = np.random.default_rng(1).integers(0, 10, N_LS)
    benchmark.group = "loss sensitivity, 10k x 784-128x3-10 float32"
    if impl == "torch-autograd":
        torch = pytest.importorskip("torch", reason="the baseline needs torch")
        model = _torch_model(weights, biases)
        xt, yt = torch.tensor(X), torch.tensor(y)

        benchmark.pedantic(
            lambda: _torch_loss_sensitivity(torch, model, xt, yt), rounds=5, iterations=1,
            warmup_rounds=1,
        )  # fmt: skip
        return
    backend = impl.split("-")[1]
    benchmark.pedantic(
        lambda: fastmem.loss_sensitivity(net, X, y, backend=backend),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )


# ---------------------------------------------------------------- fresh processes
def _fresh_case():
    """The ``case`` fixture's draws, without pytest (for a fresh process)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import make_he_relu_net

    rng = np.random.default_rng(0)
    net64, weights, biases = make_he_relu_net(WIDTHS, rng)
    X = rng.random((N_LS, WIDTHS[0])).astype(np.float32)
    return net64.astype(np.float32), weights, biases, X


def _fresh_contender(workload: str, contender: str):
    """(callable, summary of its result) of one contender on one workload."""
    net, weights, biases, X = _fresh_case()
    if workload == "pgd":
        X = X[:N_PGD]
        if contender == "torch":
            import torch
            import torchattacks as ta

            model = _torch_model(weights, biases)
            xt = torch.tensor(X)
            with torch.no_grad():
                yt = model(xt).argmax(1)
            atk = ta.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)

            def run():
                adv = atk(xt, yt)
                with torch.no_grad():
                    return float((model(adv).argmax(1) != yt).float().mean())

            return run
        if contender == "crown":  # the certificate of the same batch (no search)
            return lambda: (
                fastmem.critical_samples(
                    net, X, radius=EPS, steps=0, certify="crown", backend="cpp"
                ).csr_upper
            )
        return lambda: fastmem.critical_samples(
            net, X, radius=EPS, method="pgd", steps=STEPS, step_size=ALPHA, certify=None,
            rng=0, backend=contender,
        ).csr_lower  # fmt: skip
    y = np.random.default_rng(1).integers(0, 10, N_LS)
    if contender == "gemm-floor":  # the two big products alone, at OpenBLAS's speed
        w1 = np.ascontiguousarray(weights[0], dtype=np.float32)  # (128, 784)
        g = np.random.default_rng(2).standard_normal((N_LS, w1.shape[0])).astype(np.float32)

        def floor():
            h = X @ w1.T  # forward through the first layer
            dx = g @ w1  # backward to the input
            return float(h[0, 0]) + float(dx[0, 0])

        return floor
    if contender == "gemm-all":  # every product of the forward and the backward pass
        ws = [np.ascontiguousarray(w, dtype=np.float32) for w in weights]
        gs = [
            np.random.default_rng(3 + i).standard_normal((N_LS, w.shape[0])).astype(np.float32)
            for i, w in enumerate(ws)
        ]

        def floor_all():
            h = X
            for w in ws:  # forward, layer by layer
                h = h @ w.T
            out = float(h[0, 0])
            for w, g in zip(ws, gs, strict=True):  # backward: one product per layer
                out += float((g @ w)[0, 0])
            return out

        return floor_all
    if contender == "torch":
        import torch

        model = _torch_model(weights, biases)
        xt, yt = torch.tensor(X), torch.tensor(y)

        return lambda: float(_torch_loss_sensitivity(torch, model, xt, yt).double().sum())
    return lambda: float(fastmem.loss_sensitivity(net, X, y, backend=contender).values.sum())


def _torch_pgd_loop(torch, model, xt, yt, eps, steps=STEPS):
    """The plain PGD loop users run: uniform start, ``steps`` sign steps of 2.5 eps/steps
    on the cross-entropy, projection to the ball and [0, 1]; a sample is critical when
    any iterate changes its class. Returns the number of critical samples."""
    alpha = 2.5 * eps / steps
    lo, hi = (xt - eps).clamp(0, 1), (xt + eps).clamp(0, 1)
    x = torch.min(torch.max(xt + torch.empty_like(xt).uniform_(-eps, eps), lo), hi)
    crit = torch.zeros(len(xt), dtype=torch.bool)
    for _ in range(steps):
        x.requires_grad_(True)
        out = model(x)
        crit |= out.argmax(1) != yt
        loss = torch.nn.functional.cross_entropy(out, yt)
        (g,) = torch.autograd.grad(loss, x)
        x = torch.min(torch.max(x.detach() + alpha * g.sign(), lo), hi)
    with torch.no_grad():
        crit |= model(x).argmax(1) != yt
    return int(crit.sum())


def _csr_contender(contender: str, radius_255: float):
    net, weights, biases, X = _fresh_case()
    X = X[:N_PGD]
    eps = radius_255 / 255
    if contender in ("torch", "torch1"):
        import torch

        if contender == "torch1":  # one intra-op thread (on a loaded machine)
            torch.set_num_threads(1)
        torch.manual_seed(0)
        model = _torch_model(weights, biases)
        for p in model.parameters():
            p.requires_grad_(False)
        xt = torch.tensor(X)
        with torch.no_grad():
            yt = model(xt).argmax(1)
        return lambda: _torch_pgd_loop(torch, model, xt, yt, eps)

    if contender in ("crown", "alpha-crown", "ibp"):  # the certificate alone (steps=0)

        def cert():
            res = fastmem.critical_samples(net, X, radius=eps, steps=0, certify=contender)
            return [res.n_critical, res.n_robust]

        return cert
    method, _, certify = contender.partition("-")  # pgd, lass, pgd-alpha-crown, ...

    def run():
        res = fastmem.critical_samples(
            net, X, radius=eps, method=method, steps=STEPS, certify=certify or "crown", rng=0
        )
        return [res.n_critical, res.n_robust]

    return run


CSR_RADII = (0.3, 1.0, 2.0, 8.0)


def fresh_process(workload: str, contender: str, rounds: int, *extra: object) -> dict:
    """Run one contender in a new Python process; it has exited when this returns."""
    return run_script_fresh(str(Path(__file__).resolve()), workload, contender, rounds, *extra)


@pytest.mark.parametrize("radius_255", CSR_RADII)
def test_csr_sandwich_fresh_processes(benchmark, radius_255):
    """The full default call against the torch PGD loop, each in fresh processes."""
    pytest.importorskip("torch", reason="the baseline needs torch")
    benchmark.group = f"CSR sandwich at {radius_255}/255, fresh process per contender"
    res = {}

    def run_all():
        for contender in ("torch", "pgd", "lass"):
            res[contender] = fresh_process("csr", contender, 3, radius_255)

    benchmark.pedantic(run_all, rounds=1)
    for name, r in res.items():
        ratio = min(res["torch"]["times"]) / min(r["times"])
        benchmark.extra_info[f"{name}_min_s"] = min(r["times"])
        print(
            f"\ncsr {radius_255}/255 {name}: min {min(r['times']):.4f} s, torch/{name} = "
            f"{ratio:.2f}x, value {r['value']!r}"
        )


FRESH = {
    "pgd": (("torch", 3), ("cpp", 3), ("numba", 3)),
    "ls": (("torch", 7), ("gemm-floor", 7), ("gemm-all", 7), ("cpp", 7), ("numba", 7)),
}


@pytest.mark.parametrize("workload", list(FRESH))
def test_fresh_processes(benchmark, workload):
    pytest.importorskip("torch", reason="the baseline needs torch")
    if workload == "pgd":
        pytest.importorskip("torchattacks", reason="the baseline needs torchattacks")
    benchmark.group = f"critical {workload}, fresh process per contender"
    res = {}

    def run_all():
        for contender, rounds in FRESH[workload]:
            if contender in ("cpp", "numba") and not fastmem.backends()[contender].available:
                continue
            res[contender] = fresh_process(workload, contender, rounds)

    benchmark.pedantic(run_all, rounds=1)
    for name, r in res.items():
        ratio = min(res["torch"]["times"]) / min(r["times"])
        benchmark.extra_info[f"{name}_min_s"] = min(r["times"])
        print(
            f"\n{workload} {name}: min {min(r['times']):.4f} s, torch/{name} = {ratio:.2f}x, "
            f"value {r['value']!r}, all times {[round(x, 4) for x in r['times']]}"
        )
        if "gemm-floor" in res and name != "gemm-floor":  # target: <= 1.2x the floor
            floor = min(r["times"]) / min(res["gemm-floor"]["times"])
            benchmark.extra_info[f"{name}_over_floor"] = floor
            print(f"ls {name}: {floor:.2f}x the two GEMMs alone")
    if workload == "ls":  # the same per-sample norms (float32 sums of 10,000 values)
        for name in ("cpp", "numba"):
            if name in res:
                assert res[name]["value"] == pytest.approx(res["torch"]["value"], rel=1e-4)


if __name__ == "__main__":
    if sys.argv[1] == "csr":
        fn = _csr_contender(sys.argv[2], float(sys.argv[4]))
    else:
        fn = _fresh_contender(sys.argv[1], sys.argv[2])
    fn()  # warm-up: JIT, thread pools
    times, value = [], None
    for _ in range(int(sys.argv[3])):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "value": value}))

"""GPU benchmarks (issue 24): each workload on the cuda backend next to its CPU time and,
where one exists, a GPU peer; each with its FLOP and byte count, so that the time can be
read against the floor max(FLOP / measured GEMM rate, bytes / measured copy bandwidth)
(/work/.library/device/METHOD.md).

Workloads (sizes at ``--scale 1``):

``regions``    exact linear regions along 1e5 segments, 784-128-128-128-10 ReLU (He init), f64
``intervals``  generalization intervals on 1e5 pairwise lines, same network, f64
``pgd_crown``  critical samples: CROWN certificate + PGD-100 on 10,000 MNIST-shaped inputs,
               f32; peer: torchattacks PGD-100 on the same GPU (no certificate)
``binned_mi``  binned_mi 60,000 x 1024 f32, 30 equal-width bins; peer: a CuPy one-pass read
``kde_mi``     kde_mi upper bound 10,000 x 1024 f64
``plane``      exact 2-D slices (plane_regions) through 4 random triples of inputs, same
               network as regions, f64; cuda and the CPU must agree bit for bit (the
               digest of the patterns and vertices)

Every contender runs in a fresh process (no other contender's threads or GPU context
alive), is warmed up once (GPU: at full size; CPU: on a slice), then timed: GPU rounds
end with a device synchronisation, the median is reported.

Run (bench/gpu_check.sh does this on the GPU machine)::

    python bench/test_gpu.py --out DIR              # the table: DIR/gpu_table.md, .json
    python bench/test_gpu.py --out DIR --cpu-scale 0.1   # CPU on a tenth of each input
    python bench/test_gpu.py --out DIR --scale 0.01 --allow-no-gpu   # rehearsal on a CPU

With ``--cpu-scale`` the CPU contender runs on that fraction of the inputs of the
workloads whose work is linear in n (regions, intervals, pgd_crown), to fit a short GPU
lease: compare their "per item" column, not the medians.

Under pytest, ``test_cuda_matches_cpu`` runs each workload small on cuda and on the CPU
(fresh processes) and compares the values; it skips without a CUDA device.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WIDTHS = (784, 128, 128, 128, 10)
SIZES = {  # items at --scale 1
    "regions": 100_000,
    "intervals": 100_000,
    "pgd_crown": 10_000,
    "binned_mi": 60_000,
    "kde_mi": 10_000,
    "plane": 4,
}
PEERS = {"pgd_crown": "torchattacks", "binned_mi": "cupy-read"}
EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 100
GPU_ROUNDS = 5
THIS = Path(__file__).resolve()


def _cpu_backend() -> str:
    import fastmem

    return "cpp" if fastmem.backends()["cpp"].available else "numba"


def _net(dtype):
    import fastmem

    rng = np.random.default_rng(0)
    ws = [rng.normal(scale=np.sqrt(2.0 / i), size=(o, i)) for i, o in itertools.pairwise(WIDTHS)]
    bs = [rng.normal(scale=0.01, size=o) for o in WIDTHS[1:]]
    return fastmem.Network.from_arrays(ws, bs, "relu").astype(dtype), ws, bs


def _inputs(workload: str, n: int):
    """Host arrays of one workload (the same in every process)."""
    import fastmem

    rng = np.random.default_rng(1)
    if workload == "regions":
        return (rng.normal(size=(n, WIDTHS[0])), rng.normal(size=(n, WIDTHS[0])))
    if workload == "intervals":
        net, _, _ = _net(np.float64)
        pts = int(np.ceil(np.sqrt(25 * n))) + 10  # ~n same-class pairs over 10 classes
        X = rng.random((pts, WIDTHS[0]))
        anchors, directions, _ = fastmem.intervals.pairwise(
            X, net.predict(X, backend=_cpu_backend()), max_pairs=n, rng=2
        )
        return anchors, directions
    if workload == "pgd_crown":
        return (rng.random((n, WIDTHS[0]), dtype=np.float32),)
    if workload == "binned_mi":
        a = np.tanh(rng.normal(size=(n, 1024)).astype(np.float32))
        return a, rng.integers(0, 10, n)
    if workload == "kde_mi":
        return np.tanh(rng.normal(size=(n, 1024)) * 0.01), rng.integers(0, 10, n)
    if workload == "plane":  # n triples of inputs: the planes through them
        return (rng.normal(size=(n, 3, WIDTHS[0])),)
    raise ValueError(workload)


def _digest(x) -> str:
    x = x.get() if hasattr(x, "get") else np.asarray(x)
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def _fastmem_call(workload: str, args: tuple, backend: str):
    """(callable, value of the result) of fastmem on ``backend``; args on its device."""
    import fastmem

    if workload in ("regions", "intervals"):
        net, _, _ = _net(np.float64)
        net = net.to("cuda") if backend == "cuda" else net
        if workload == "regions":
            fn = lambda: fastmem.regions.along_segments(net, *args, backend=backend)  # noqa: E731
            return fn, lambda r: {"regions": int(r.counts.sum()), "digest": _digest(r.counts)}
        gi = fastmem.intervals.generalization_intervals
        fn = lambda: gi(net, *args, backend=backend)  # noqa: E731
        return fn, lambda r: {"length_sum": float(r.length.sum()), "digest": _digest(r.length)}
    if workload == "pgd_crown":
        net, _, _ = _net(np.float32)
        net = net.to("cuda") if backend == "cuda" else net
        fn = lambda: fastmem.critical_samples(  # noqa: E731
            net, args[0], radius=EPS, method="pgd", steps=STEPS, step_size=ALPHA,
            certify="crown", rng=0, backend=backend,
        )  # fmt: skip
        return fn, lambda r: {"csr_lower": r.csr_lower, "csr_upper": r.csr_upper}
    if workload == "plane":
        net, _, _ = _net(np.float64)
        net = net.to("cuda") if backend == "cuda" else net
        triples = args[0].get() if hasattr(args[0], "get") else args[0]
        planes = [fastmem.plane_through(*x3) for x3 in triples]
        if backend == "cuda":
            import cupy

            planes = [(cupy.asarray(o), cupy.asarray(d), e) for o, d, e in planes]

        def fn():
            return [
                fastmem.plane_regions(net, o, d, extent=e, backend=backend) for o, d, e in planes
            ]

        def value(rs):
            both = [np.concatenate([r.pattern_hashes for r in rs]).view(np.float64)]
            both += [r.vertices.ravel() for r in rs]
            return {"regions": sum(r.count for r in rs), "digest": _digest(np.concatenate(both))}

        return fn, value
    if workload == "binned_mi":
        fn = lambda: fastmem.binned_mi(*args, mode="equal_width", backend=backend)  # noqa: E731
        return fn, lambda r: {"i_xt": float(r.i_xt), "i_ty": float(r.i_ty)}
    fn = lambda: fastmem.kde_mi(*args, backend=backend)  # noqa: E731
    return fn, lambda r: {"h_t": float(r.h_t), "i_ty": float(r.i_ty)}


def _slice(args: tuple, k: int) -> tuple:
    return tuple(a[:k] for a in args)


def _timed(fn, sync, rounds: int, budget_s: float = 15.0) -> list[float]:
    """Up to ``rounds`` timed calls (at least one), stopping once ``budget_s`` is spent."""
    times: list[float] = []
    while len(times) < rounds and (not times or sum(times) < budget_s):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    _timed.last = out  # type: ignore[attr-defined]
    return times


def _torch_model(ws, bs, device):
    import torch

    layers = []
    for i, (W, b) in enumerate(zip(ws, bs, strict=True)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        lin.weight.data = torch.tensor(W, dtype=torch.float32)
        lin.bias.data = torch.tensor(b, dtype=torch.float32)
        layers += [lin] if i == len(ws) - 1 else [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).to(device).eval()


def run_one(workload: str, contender: str, n: int, cpu_rounds: int) -> dict:
    """One contender on one workload, in this process: times and result values."""
    args = _inputs(workload, n)
    n = len(args[0])  # pairwise may find fewer lines than asked for
    info: dict = {"workload": workload, "contender": contender, "n": n}
    if contender == "cpu":
        backend = _cpu_backend()
        fn, value = _fastmem_call(workload, _slice(args, min(n, max(20, n // 100))), backend)
        fn()  # first call (module load, Numba JIT) on a slice
        fn, value = _fastmem_call(workload, args, backend)
        info["times"] = _timed(fn, lambda: None, cpu_rounds)
        info["device"] = f"cpu ({backend}, {os.cpu_count()} cores)"
        info["value"] = value(_timed.last)  # type: ignore[attr-defined]
        return info
    import cupy

    sync = cupy.cuda.Device().synchronize
    info["device"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    if contender == "cuda":
        dev_args = tuple(cupy.asarray(a) for a in args)
        fn, value = _fastmem_call(workload, dev_args, "cuda")
        fn()  # warm-up at full size: module load, CuPy kernel compiles, memory pool
        info["times"] = _timed(fn, sync, GPU_ROUNDS)
        info["value"] = value(_timed.last)  # type: ignore[attr-defined]
    elif contender == "cupy-read":  # binned_mi's floor: one pass over the activations
        a = cupy.asarray(args[0])
        fn = lambda: cupy.sum(a)  # noqa: E731
        fn()
        info["times"] = _timed(fn, sync, GPU_ROUNDS)
        info["value"] = {"sum": float(_timed.last)}  # type: ignore[attr-defined]
    elif contender == "torchattacks":
        import torch
        import torchattacks

        _, ws, bs = _net(np.float32)
        model = _torch_model(ws, bs, "cuda")
        xt = torch.tensor(args[0], device="cuda")
        with torch.no_grad():
            yt = model(xt).argmax(1)
        atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
        atk(xt, yt)
        info["times"] = _timed(lambda: atk(xt, yt), torch.cuda.synchronize, GPU_ROUNDS)
        with torch.no_grad():
            flipped = (model(_timed.last).argmax(1) != yt).float().mean().item()  # type: ignore[attr-defined]
        info["value"] = {"flipped": flipped}
    else:
        raise ValueError(contender)
    return info


def ceilings() -> dict:
    """The GPU's copy bandwidth and GEMM rates, measured with CuPy events."""
    import cupy

    def event_time(fn, reps=10) -> float:
        fn()
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        best = float("inf")
        for _ in range(reps):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
        return best

    rng = cupy.random.default_rng(0)
    a = rng.random(2**28, dtype=cupy.float32)  # 1 GiB, never zeros
    b = cupy.empty_like(a)
    copy_s = event_time(lambda: cupy.copyto(b, a))
    out = {"copy_bytes_per_s": 2 * a.nbytes / copy_s}
    for name, dt, k in (("fp64", cupy.float64, 4096), ("fp32", cupy.float32, 8192)):
        x, y = rng.random((k, k), dtype=dt), rng.random((k, k), dtype=dt)
        out[f"{name}_flop_per_s"] = 2 * k**3 / event_time(lambda x=x, y=y: x @ y, reps=5)
    return out


def work(workload: str, n: int, value: dict | None) -> dict:
    """FLOP and bytes the workload must at least do / move (see the module docstring)."""
    P = [i * o for i, o in itertools.pairwise(WIDTHS)]  # weights per layer
    if workload in ("regions", "intervals"):
        # Two endpoints per line through every layer (the least any exact method does),
        # plus every later vertex through layers 2..4 when the region count is known.
        flop = 2 * n * 2 * sum(P)
        if value and "regions" in value:
            flop += 2 * max(0, value["regions"] - n) * sum(P[1:])
        return {"flop": flop, "kind": "fp64", "bytes": 2 * n * WIDTHS[0] * 8 + 8 * n}
    if workload == "pgd_crown":
        pgd = STEPS * n * 4 * sum(P)  # forward + input-gradient backward per step (no early stop)
        # CROWN: back-substitution from every hidden neuron of layers 2, 3 and the 10
        # outputs to the input layer (layer 1's bounds are exact interval arithmetic).
        crown = n * (4 * P[0] + 2 * 128 * P[0] + 2 * 128 * (P[1] + P[0]) + 2 * 10 * sum(P[:3]))
        return {"flop": pgd + crown, "kind": "fp32", "bytes": n * WIDTHS[0] * 4 * 2}
    if workload == "binned_mi":
        return {"flop": 3 * n * 1024, "kind": "fp32", "bytes": n * 1024 * 4 + 8 * n}
    if workload == "plane":
        # every region's maps (3 rows) through layers 2..4, once (a lower bound: the
        # polygons cut at a layer are fewer than the regions at the end)
        regions = value["regions"] if value and "regions" in value else n
        flop = 2 * 3 * regions * sum(P[1:]) + 2 * 3 * n * P[0]
        return {"flop": flop, "kind": "fp64", "bytes": n * 3 * WIDTHS[0] * 8}
    if workload == "kde_mi":
        # the n x n Gram matrix (a GEMM of 2 n^2 d FLOP), read once: t and labels
        return {"flop": 2 * n * n * 1024, "kind": "fp64", "bytes": n * 1024 * 8 + 8 * n}
    raise ValueError(workload)


def _fresh(*argv: str, timeout: float) -> dict:
    """Run this file with ``argv`` in a new process; its last output line is JSON."""
    try:
        done = subprocess.run(
            [sys.executable, str(THIS), *argv], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt_s(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, help="folder for gpu_table.md and gpu_results.json")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every workload's size")
    p.add_argument("--only", nargs="*", choices=sorted(SIZES), help="these workloads only")
    p.add_argument("--cpu-rounds", type=int, default=1)
    p.add_argument(
        "--cpu-scale",
        type=float,
        default=1.0,
        help="the CPU contender's size relative to the others' (compare per-item times)",
    )
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per contender")
    p.add_argument(
        "--budget", type=float, default=1e9, help="seconds for everything: later contenders skip"
    )
    p.add_argument("--allow-no-gpu", action="store_true", help="rehearsal: run the CPU side")
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "CONTENDER"), help=argparse.SUPPRESS)
    p.add_argument("--ceilings", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.ceilings:
        print(json.dumps(ceilings()))
        return 0
    if a.one:
        w, c = a.one
        print(json.dumps(run_one(w, c, max(2, int(SIZES[w] * a.scale)), a.cpu_rounds)))
        return 0

    import fastmem

    start = time.perf_counter()
    cuda = fastmem.backends()["cuda"]
    if not cuda.available and not a.allow_no_gpu:
        print(f"test_gpu: the cuda backend is unavailable ({cuda.reason})", file=sys.stderr)
        return 2
    ceil = _fresh("--ceilings", timeout=a.timeout) if cuda.available else {}
    rows, failed = [], False
    for w in a.only or list(SIZES):
        contenders = ["cuda", "cpu"] + ([PEERS[w]] if w in PEERS else [])
        for c in contenders:
            if c != "cpu" and not cuda.available:
                rows.append({"workload": w, "contender": c, "error": f"skipped: {cuda.reason}"})
                continue
            linear = w in ("regions", "intervals", "pgd_crown")  # work linear in n
            scale = a.scale * (a.cpu_scale if c == "cpu" and linear else 1.0)
            args = ["--one", w, c, "--scale", str(scale), "--cpu-rounds", str(a.cpu_rounds)]
            left = a.budget - (time.perf_counter() - start) - 5
            if left < 10:
                r = {"error": "skipped: out of time (--budget)"}
            else:
                r = _fresh(*args, timeout=min(a.timeout, left))
            r.setdefault("workload", w)
            r.setdefault("contender", c)
            failed |= "error" in r and c in ("cuda", "cpu")
            if "times" in r:
                r["median_s"] = statistics.median(r["times"])
                r.update(work(w, r["n"], r.get("value")))
                rate = ceil.get(f"{r['kind']}_flop_per_s")
                bw = ceil.get("copy_bytes_per_s")
                if rate and bw:
                    r["floor_s"] = max(r["flop"] / rate, r["bytes"] / bw)
            rows.append(r)
            print(json.dumps(r), flush=True)
    lines = [
        f"fastmem GPU benchmarks (scale {a.scale}); ceilings measured here: "
        + (
            f"copy {ceil['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + write), "
            f"fp64 GEMM {ceil['fp64_flop_per_s'] / 1e12:.1f} TFLOP/s, "
            f"fp32 GEMM {ceil['fp32_flop_per_s'] / 1e12:.1f} TFLOP/s"
            if "copy_bytes_per_s" in ceil
            else "none (no GPU)"
        ),
        "",
        "| workload | n | contender | device | median | per item | FLOP | bytes | floor "
        "| time/floor | value |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "times" not in r:
            why = " ".join(str(r["error"]).split()).replace("|", "/")[-200:]
            lines.append(f"| {r['workload']} | | {r['contender']} | | {why} | | | | | | |")
            continue
        floor = r.get("floor_s")
        ratio = f"{r['median_s'] / floor:.0f}x" if floor else "-"
        lines.append(
            f"| {r['workload']} | {r['n']} | {r['contender']} | {r['device']} | "
            f"{_fmt_s(r['median_s'])} | {r['median_s'] / r['n'] * 1e6:.3g} us | "
            f"{r['flop']:.3g} {r['kind']} | {r['bytes']:.3g} | "
            f"{_fmt_s(floor)} | {ratio} | {json.dumps(r['value'])} |"
        )
    table = "\n".join(lines)
    print(table)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "gpu_table.md").write_text(table + "\n")
        (a.out / "gpu_results.json").write_text(json.dumps({"ceilings": ceil, "rows": rows}))
    return 1 if failed else 0


# ------------------------------------------------------------------ pytest
@pytest.mark.gpu
@pytest.mark.parametrize("workload", sorted(SIZES))
def test_cuda_matches_cpu(workload):
    """cuda and the CPU backend on the same small input, each in a fresh process: the
    values agree (exactly where the kernels promise it)."""
    import fastmem

    info = fastmem.backends()["cuda"]
    if not info.available:
        pytest.skip(f"cuda: {info.reason}")
    n = 2 if workload == "plane" else max(20, SIZES[workload] // 200)
    scale = str(n / SIZES[workload])
    runs = {c: _fresh("--one", workload, c, "--scale", scale, timeout=600) for c in ("cuda", "cpu")}
    assert all("error" not in r for r in runs.values()), runs
    got = {c: r["value"] for c, r in runs.items()}
    if workload in ("regions", "binned_mi", "plane"):
        assert got["cuda"] == got["cpu"]
    elif workload == "intervals":
        assert got["cuda"]["length_sum"] == pytest.approx(got["cpu"]["length_sum"], rel=1e-9)
    elif workload == "kde_mi":
        assert got["cuda"]["h_t"] == pytest.approx(got["cpu"]["h_t"], rel=1e-9)
    else:  # PGD trajectories may part on float32 rounding; the sandwich must hold
        for v in got.values():
            assert v["csr_lower"] <= v["csr_upper"]
        assert got["cuda"]["csr_upper"] == pytest.approx(got["cpu"]["csr_upper"], abs=0.01)


if __name__ == "__main__":
    sys.exit(main())

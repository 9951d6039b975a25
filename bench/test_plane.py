"""Exact 2-D slices: fastmem.plane_regions side by side with regioncam (pip ``regioncam``:
Rust, exact 2-D partition in float32), each contender in its own fresh process, and the
scaling curve of regions against neurons at depths 1-4 (Hanin & Rolnick, "Deep ReLU
networks have surprisingly few activation patterns", NeurIPS 2019: the regions meeting a
2-D slice grow like (c * neurons)**2 / 2! per unit area, not exponentially with depth).

Run:  python -m pytest bench/test_plane.py -s --benchmark-columns=min

On a shared machine run the fresh-process comparison by default and also with
``OMP_NUM_THREADS=1`` (README, the plane rows: a dense slice runs its kernels as tasks,
each on one thread, so no OpenMP worker spin-waits). Peak resident memory is each
process's ``VmHWM``.

The slices: the plane through three random inputs (``fastmem.plane_through``, made square
for regioncam, whose slice is the square [-size, size]**2). Networks: 784-128-128-128-10
ReLU at He init, and a 64-128-128-10 MLP trained on scikit-learn's digits (plane through
three training digits). regioncam is optional: its benchmarks skip with the reason.

Layer graphs (``test_plane_graph_fresh``): a max-pooling CNN (fastmem only) and a ResNet
(fastmem's layer-graph slice vs regioncam on the same network lowered to dense matrices
with its skips as ``regioncam.Residual``).

This file is also the script each fresh process runs:
``python bench/test_plane.py CONTENDER ROUNDS WEIGHTS.npz`` (or ``python
bench/test_plane.py graph CONTENDER NAME ROUNDS``) prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def _time_rounds(run, rounds: int) -> None:
    """Time ``run`` (it returns the region count) ``rounds`` times; print the JSON line."""
    times, counts = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        counts.append(run())
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "counts": counts, "peak_rss_gib": _peak_rss_gib()}))


def _peak_rss_gib() -> float:
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return kib / 2**20


def _load(path: str):
    data = np.load(path)
    n = int(data["n_layers"])
    weights = [data[f"w{i}"] for i in range(n)]
    biases = [data[f"b{i}"] for i in range(n)]
    return weights, biases, data["origin"], data["directions"], float(data["size"])


def _main(contender: str, rounds: int, path: str) -> None:
    """One contender, ``rounds`` calls (the first call of the process first): JSON line."""
    weights, biases, origin, dirs, size = _load(path)
    extent = (-size, size, -size, size)
    if contender == "fastmem":
        import fastmem

        net = fastmem.Network.from_arrays(weights, biases, "relu")

        def run() -> int:
            return fastmem.plane_regions(net, origin, dirs, extent=extent).count
    else:
        import regioncam

        w32 = [w.T.astype(np.float32) for w in weights]
        b32 = [b.astype(np.float32) for b in biases]

        def run() -> int:
            cam = regioncam.Regioncam(size)  # the square [-size, size]**2
            cam.linear(dirs.astype(np.float32), origin.astype(np.float32))  # (s, t) -> x
            for i, (w, b) in enumerate(zip(w32, b32, strict=True)):
                cam.linear(w, b)
                if i < len(w32) - 1:
                    cam.relu()
            return int(cam.num_faces)

    _time_rounds(run, rounds)


# ------------------------------------------------------------------ the cases
def _save_case(path: Path, weights, biases, x3) -> float:
    import fastmem

    origin, dirs, extent = fastmem.plane_through(*x3)
    size = max(abs(v) for v in extent)
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    arrays.update({f"b{i}": b for i, b in enumerate(biases)})
    np.savez(path, n_layers=len(weights), origin=origin, directions=dirs, size=size, **arrays)
    return size


@pytest.fixture(scope="module")
def he_case(tmp_path_factory, he_relu_net):
    rng = np.random.default_rng(0)
    _, weights, biases = he_relu_net((784, 128, 128, 128, 10), rng)
    path = tmp_path_factory.mktemp("plane") / "he.npz"
    _save_case(path, weights, biases, rng.normal(size=(3, 784)))
    return path


@pytest.fixture(scope="module")
def digits_case(tmp_path_factory):
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    mlp = MLPClassifier(hidden_layer_sizes=(128, 128), max_iter=200, random_state=0).fit(X, y)
    weights = [w.T.copy() for w in mlp.coefs_]
    biases = [b.copy() for b in mlp.intercepts_]
    path = tmp_path_factory.mktemp("plane") / "digits.npz"
    _save_case(path, weights, biases, X[[0, 1, 2]])
    return path


def fresh(contender: str, rounds: int, path: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from _fresh import run_script_fresh

    return run_script_fresh(__file__, contender, rounds, path)


@pytest.mark.parametrize("case", ["he_case", "digits_case"])
def test_plane_fresh_processes(benchmark, request, case):
    """fastmem (float64) and regioncam (float32), 5 calls each in a fresh process: min
    over the calls, the same region count, peak resident memory."""
    pytest.importorskip("regioncam", reason="regioncam (optional peer) is not installed")
    path = request.getfixturevalue(case)
    benchmark.group = f"plane {case}: fresh process per contender"
    fm, rc = benchmark.pedantic(
        lambda: (fresh("fastmem", 5, path), fresh("regioncam", 5, path)), rounds=1
    )
    info = benchmark.extra_info
    info["fastmem_min_s"], info["regioncam_min_s"] = min(fm["times"]), min(rc["times"])
    info["ratio_min"] = info["regioncam_min_s"] / info["fastmem_min_s"]
    info["regions"], info["regioncam_regions"] = fm["counts"][0], rc["counts"][0]
    info["fastmem_regions_per_s"] = fm["counts"][0] / info["fastmem_min_s"]
    info["fastmem_peak_rss_gib"], info["regioncam_peak_rss_gib"] = (
        fm["peak_rss_gib"], rc["peak_rss_gib"]
    )  # fmt: skip
    rss = f"{info['fastmem_peak_rss_gib']:.2f} / {info['regioncam_peak_rss_gib']:.2f} GiB"
    print(f"\n{case}: {info['regions']} regions (regioncam {info['regioncam_regions']}); "
          f"fastmem min {info['fastmem_min_s']:.3f} s, regioncam min "
          f"{info['regioncam_min_s']:.3f} s: {info['ratio_min']:.2f}x; peak RSS {rss}")  # fmt: skip
    # float32 (regioncam) and float64 may part on a region or two in a whole slice
    assert abs(fm["counts"][0] - rc["counts"][0]) <= max(2, 0.001 * rc["counts"][0])


NEURONS = (64, 128, 256, 512, 1024)


def test_plane_scaling(benchmark, he_relu_net):
    """Regions per unit area and time against neurons (64 to 1024), depths 1-4, at init:
    the plane through three random inputs of a 784-input He ReLU network."""
    import fastmem

    rows = []

    def sweep():
        for depth in (1, 2, 3, 4):
            for neurons in NEURONS:
                width = neurons // depth
                rng = np.random.default_rng(depth * 10_000 + neurons)
                net, _, _ = he_relu_net((784, *([width] * depth), 10), rng)
                o, d, ext = fastmem.plane_through(*rng.normal(size=(3, 784)))
                t = time.perf_counter()
                r = fastmem.plane_regions(net, o, d, extent=ext)
                seconds = time.perf_counter() - t
                area = (ext[1] - ext[0]) * (ext[3] - ext[2])
                rows.append((depth, width * depth, r.count, r.count / area, seconds))

    benchmark.pedantic(sweep, rounds=1)
    benchmark.group = "plane scaling"
    benchmark.extra_info["rows"] = rows
    print("\ndepth neurons regions regions/area seconds")
    for depth, n, count, density, seconds in rows:
        print(f"{depth:5d} {n:7d} {count:7d} {density:12.1f} {seconds:7.3f}")
    # Hanin & Rolnick: at a fixed depth, density grows polynomially (like neurons**2);
    # the fitted exponent from 64 to 1024 neurons stays near 2 at every depth
    for depth in (1, 2, 3, 4):
        sel = [(n, dens) for dd, n, _, dens, _ in rows if dd == depth]
        slope = np.polyfit(np.log([n for n, _ in sel]), np.log([d for _, d in sel]), 1)[0]
        benchmark.extra_info[f"exponent_depth{depth}"] = float(slope)
        print(f"depth {depth}: regions/area ~ neurons**{slope:.2f}")


# ------------------------------------------------------------------ layer graphs
# The CNN of bench/test_graph.py with MaxPool2d(2) after each convolution (fastmem only:
# regioncam has no convolution or windowed pooling), and a ResNet without pooling that
# regioncam can take: Conv2d(1,8,3,s2,p1)-ReLU, two basic blocks (8 channels, eval-mode
# BatchNorm), Linear(1568,10), He init; for regioncam its affine maps lowered to dense
# matrices and its skips as ``regioncam.Residual``. The plane through three random inputs
# in [0, 1]^784 (``plane_through``), cut to the square [-f size, f size]^2 (the whole
# slice holds millions of regions).
GRAPH_FRACTION = {"maxpool": 0.05, "resnet": 0.02}


def _graph_model(name: str):
    import torch

    sys.path.insert(0, str(HERE))
    from test_graph import _models

    models = _models()
    if name == "maxpool":
        return models["maxpool"].double()
    nn = torch.nn
    block = type(models["residual"][2])
    torch.manual_seed(0)
    res = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), block(8), block(8), nn.Flatten(),
        nn.Linear(8 * 14 * 14, 10),
    )  # fmt: skip
    for mod in res.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight)
            nn.init.zeros_(mod.bias)
    return res.double().eval()


def _regioncam_resnet(res, origin, dirs, size):
    """The ResNet in regioncam: each affine map as the dense matrix torch gives on the
    basis vectors; a block is Residual(Linear, ReLU, Linear) then ReLU."""
    import regioncam
    import torch

    def affine(f, d):
        with torch.no_grad():
            b = f(torch.zeros(1, d, dtype=torch.float64)).reshape(-1).numpy()
            W = f(torch.eye(d, dtype=torch.float64)).reshape(d, -1).numpy() - b
        return np.float32(W), np.float32(b)  # x @ W + b

    def lin(f, d):
        return regioncam.Linear(*affine(f, d))

    parts = [affine(lambda x: res[0](x.reshape(-1, 1, 28, 28)), 784)]
    blocks = []
    for blk in (res[2], res[3]):
        blocks.append(
            regioncam.Residual(
                regioncam.Sequential(
                    lin(lambda x, b=blk: b.bn1(b.conv1(x.reshape(-1, 8, 14, 14))), 1568),
                    regioncam.ReLU(),
                    lin(lambda x, b=blk: b.bn2(b.conv2(x.reshape(-1, 8, 14, 14))), 1568),
                )
            )
        )
    fc = (np.float32(res[5].weight.detach().numpy().T), np.float32(res[5].bias.detach().numpy()))

    def run() -> int:
        cam = regioncam.Regioncam(size)
        cam.linear(np.float32(dirs), np.float32(origin))
        cam.linear(*parts[0])
        cam.relu()
        for blk in blocks:
            cam.add(blk)
            cam.relu()
        cam.linear(*fc)
        return int(cam.num_faces)

    return run


def _graph_main(contender: str, name: str, rounds: int) -> None:
    import fastmem

    module = _graph_model(name)
    rng = np.random.default_rng(0)
    origin, dirs, extent = fastmem.plane_through(*rng.uniform(0, 1, (3, 784)))
    size = GRAPH_FRACTION[name] * max(abs(v) for v in extent)
    if contender == "fastmem":
        net = fastmem.Network.from_torch(module, input_shape=(1, 28, 28))
        assert net.layer_graph is not None

        def run() -> int:
            ext = (-size, size, -size, size)
            return fastmem.plane_regions(net, origin, dirs, extent=ext).count
    else:
        run = _regioncam_resnet(module, origin, dirs, size)
    _time_rounds(run, rounds)


def test_plane_graph_fresh(benchmark):
    """Slices of layer graphs in fresh processes, 2 calls each (min): the max-pooling CNN
    (fastmem), the ResNet (fastmem and, where installed, regioncam)."""
    pytest.importorskip("torch", reason="the layer-graph networks are torch modules")
    sys.path.insert(0, str(HERE))
    from _fresh import run_script_fresh

    have_rc = True
    try:
        import regioncam  # noqa: F401
    except ImportError:
        have_rc = False
    out = {}

    def go():
        for name in ("maxpool", "resnet"):
            out[name] = run_script_fresh(__file__, "graph", "fastmem", name, 2)
        if have_rc:
            out["resnet-regioncam"] = run_script_fresh(__file__, "graph", "regioncam", "resnet", 2)

    benchmark.pedantic(go, rounds=1)
    benchmark.group = "plane on layer graphs"
    print()
    for key, r in out.items():
        t = min(r["times"])
        benchmark.extra_info[f"{key}_min_s"] = t
        benchmark.extra_info[f"{key}_regions"] = r["counts"][0]
        n, rss = r["counts"][0], r["peak_rss_gib"]
        print(f"{key:17s} {n:7d} regions, min {t:.2f} s ({n / t:.0f}/s), peak RSS {rss:.2f} GiB")
    if have_rc:
        ratio = min(out["resnet-regioncam"]["times"]) / min(out["resnet"]["times"])
        benchmark.extra_info["resnet_ratio"] = ratio
        print(f"regioncam / fastmem on the ResNet: {ratio:.2f}x")
        a, b = out["resnet"]["counts"][0], out["resnet-regioncam"]["counts"][0]
        assert abs(a - b) <= max(2, 0.001 * b)  # float32 (regioncam) vs float64


if __name__ == "__main__":
    if sys.argv[1] == "graph":
        _graph_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        _main(sys.argv[1], int(sys.argv[2]), sys.argv[3])

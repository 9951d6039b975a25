"""fastmem's CROWN certificate against auto_LiRPA's CROWN, the reference implementation.

Same network, same 1000 inputs, same L_inf ball clipped to [0, 1], the margin rows of the
predicted class against every other class. Two networks (issue 21):

* ``he``: the He-init 784-128-128-128-10 ReLU net of ``bench/test_critical.py`` on inputs
  uniform in [0, 1];
* ``digits``: a 64-128-128-128-10 ReLU MLP trained on scikit-learn's digits (pixels / 16)
  by scikit-learn (fixed seed), on the first 1000 digits;

in float32 and float64, at radii 0.3/255 (Arpit et al.), 1/255, 2/255 and 8/255. Reported
per configuration: samples certified by each, the smallest per-sample difference
``fastmem - auto_LiRPA`` of the certified margin lower bounds (relative to
``1 + |auto_LiRPA|``), and the time of each (each contender in its own fresh process, a
warm-up call, then the minimum over the timed calls; fastmem's call is the whole
certificate-only call ``critical_samples(..., steps=0, certify="crown")``: validation,
the prediction, the certificate; auto_LiRPA's is ``compute_bounds`` alone, the
prediction and the specification built before timing).

auto_LiRPA is not current on PyPI: install it from its public source
(https://github.com/Verified-Intelligence/auto_LiRPA, 0.7.1 was compared; it needs
appdirs, sortedcontainers and graphviz and installs with ``pip install --no-deps .`` beside
a newer torch). Without it the benchmark skips with that reason.

Run:  python -m pytest bench/test_lirpa.py -s
one contender:  python bench/test_lirpa.py <fastmem|lirpa|lirpa-pred> <he|digits> <32|64> <radius in
1/255> <rounds> <margins.npy> [crown|ibp]

``test_ibp_against_auto_lirpa_fresh_processes`` times ``certify="ibp"`` against auto_LiRPA's
``method="IBP"`` the same way (both nets, float32 and float64, 0.3/255 and 8/255, min over
5 calls), and against auto_LiRPA with its prediction and margin rows inside the timed call
(``lirpa-pred``: the whole task, as fastmem's call is).

``test_cnn_crown_against_auto_lirpa_fresh_processes`` (issue 20): CROWN on convolutional
networks, float32, radius 2/255, inputs uniform in [0, 1]: ``cnn`` is issue 20's CNN
(``Conv2d(1,16,5,s2,p2)-ReLU-Conv2d(16,32,5,s2,p2)-ReLU-Flatten-Linear(1568,128)-ReLU-
Linear(128,10)``, He init, the ``nn.Sequential`` imported by ``Network.from_torch``: its
critical samples run on its convolutions) on 1000 inputs; ``cnn-pool`` the same with
``MaxPool2d(2)`` after each convolution and ``cnn-res`` a stem convolution, two ResNet
basic blocks and max pooling (the networks of ``bench/test_graph.py``), 200 and 50 inputs.
auto_LiRPA runs the same torch modules in batches of 100 inputs (one batch of 1000 needs
over 20 GB here), ``compute_bounds(method="CROWN")`` per batch.
one contender:  python bench/test_lirpa.py <fastmem|lirpa> <cnn|cnn-pool|cnn-res> 32 2
<rounds> <margins.npy>

``test_cnn_alpha_crown_against_auto_lirpa_fresh_processes``: alpha-CROWN on the max-pool
CNN and the ResNet (``cnn-pool``, ``cnn-res``), float32, radius 2/255, on the first few
inputs only (``ALPHA_N``): auto_LiRPA's ``compute_bounds(method="alpha-CROWN")`` (its
defaults: 20 iterations; ``conv_mode="matrix"``, which its max pooling's optimization
requires) takes minutes per input here, in batches of ``ALPHA_BATCH``. It is timed once
without a warm-up call (one-time costs are negligible beside minutes); fastmem's
``critical_samples(..., steps=0, certify="alpha-crown")`` as the other rows. Reported
beside the counts: fastmem's CROWN count on the same inputs, and how far each
alpha-CROWN's margins move above its CROWN's.
one contender:  python bench/test_lirpa.py <fastmem|lirpa> <cnn-pool|cnn-res> 32 2
<rounds> <margins.npy> <alpha-crown|crown> [inputs]

``test_mlp_alpha_crown_against_auto_lirpa_fresh_processes``: the same on the He net, float32,
radius 1/255, the first ``FASTMEM_BENCH_ALPHA_N`` (1000) inputs (auto_LiRPA's alpha-CROWN
takes minutes: timed once, no warm-up).
one contender:  python bench/test_lirpa.py <fastmem|lirpa> he 32 1 <rounds> <margins.npy>
<alpha-crown|crown> [inputs]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
N = 1000
RADII_255 = (0.3, 1.0, 2.0, 8.0)


def _digits_net(dtype):
    import fastmem
    import fastmem.datasets

    cache = Path(tempfile.gettempdir()) / "fastmem-bench-digits-mlp.npz"
    if not cache.exists():
        from sklearn.neural_network import MLPClassifier

        X, y = fastmem.datasets.digits()
        clf = MLPClassifier(hidden_layer_sizes=(128, 128, 128), max_iter=300, random_state=0)
        clf.fit(X, y)
        fastmem.Network.from_sklearn(clf).save(str(cache))
    return fastmem.Network.load(str(cache)).astype(dtype)


def _he_net(dtype):
    import fastmem

    rng = np.random.default_rng(0)
    widths = (784, 128, 128, 128, 10)
    Ws = [rng.normal(0, np.sqrt(2.0 / widths[i]), (widths[i + 1], widths[i])) for i in range(4)]
    bs = [np.zeros(widths[i + 1]) for i in range(4)]
    return fastmem.Network.from_arrays(Ws, bs).astype(dtype)


CNNS = {"cnn": ("dense", 1000), "cnn-pool": ("maxpool", 200), "cnn-res": ("residual", 50)}
LIRPA_BATCH = 100
# alpha-CROWN: inputs per network (auto_LiRPA's takes minutes per input), its batches
ALPHA_N = {"cnn-pool": 4, "cnn-res": 2}
ALPHA_BATCH = 2


def _cnn_module(name: str):
    sys.path.insert(0, str(HERE.parent))
    from test_graph import _models  # the networks of bench/test_graph.py

    return _models()[CNNS[name][0]]


def case(name: str, bits: int):
    """The network and the inputs of one configuration."""
    import fastmem
    import fastmem.datasets

    dtype = np.float32 if bits == 32 else np.float64
    if name in CNNS:
        module = _cnn_module(name)
        net = fastmem.Network.from_torch(module, input_shape=(1, 28, 28), dtype=dtype)
        X = np.random.default_rng(1).random((CNNS[name][1], 784)).astype(dtype)
    elif name == "he":
        net = _he_net(dtype)
        X = np.random.default_rng(1).random((N, 784)).astype(dtype)
    else:
        net = _digits_net(dtype)
        X = fastmem.datasets.digits()[0][:N].astype(dtype)
    return net, X


def _fastmem(net, X, r, method="crown"):
    import fastmem

    res = fastmem.critical_samples(net, X, radius=r, steps=0, certify=method)
    return res.margin_lower.astype(np.float64)


def _lirpa_setup(net, X, r, method="crown", module=None, with_prediction=False):
    import torch
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    tdt = torch.float32 if net.dtype == np.float32 else torch.float64
    if module is not None:  # a CNN: its torch module, in batches
        return _lirpa_batches(net, X, r, module.to(tdt), tdt, method)
    layers = []
    for i, (W, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).to(tdt)
        lin.weight.data = torch.tensor(np.asarray(W), dtype=tdt)
        lin.bias.data = torch.tensor(np.asarray(b), dtype=tdt)
        layers.append(lin)
        if i < net.n_layers - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()
    xt = torch.tensor(X, dtype=tdt)
    pred = torch.tensor(np.asarray(net.predict(X)), dtype=torch.int64)
    k = net.widths[-1]
    C = torch.zeros(len(X), k - 1, k, dtype=tdt)
    others = torch.tensor([[j for j in range(k) if j != int(p)] for p in pred])
    samples = torch.arange(len(X))[:, None]
    rows = torch.arange(k - 1)[None, :]
    C[samples, rows, pred[:, None]] = 1
    C[samples, rows, others] = -1
    bm = BoundedModule(model, xt, device="cpu")
    ptb = PerturbationLpNorm(norm=np.inf, x_L=(xt - r).clamp(0, 1), x_U=(xt + r).clamp(0, 1))
    bx = BoundedTensor(xt, ptb)

    alpha = method == "alpha-crown"

    def run():
        # alpha-CROWN's optimization needs autograd (under no_grad it would return the
        # bounds of its initial slopes)
        with torch.enable_grad() if alpha else torch.no_grad():
            lb, _ = bm.compute_bounds(
                x=(bx,), C=C, method="alpha-CROWN" if alpha else method.upper()
            )
        return lb.detach().min(dim=1).values.double().numpy()

    def run_with_prediction():
        # the whole task, as fastmem's call: the prediction and the margin rows too
        with torch.no_grad():
            p = model(xt).argmax(1)
            spec = torch.zeros(len(X), k - 1, k, dtype=tdt)
            other = torch.arange(k)[None, :].expand(len(X), k)
            other = other[other != p[:, None]].reshape(len(X), k - 1)
            spec[samples, rows, p[:, None]] = 1
            spec[samples, rows, other] = -1
            lb, _ = bm.compute_bounds(x=(bx,), C=spec, method=method.upper())
        return lb.min(dim=1).values.double().numpy()

    return run_with_prediction if with_prediction else run


def _lirpa_batches(net, X, r, module, tdt, method="crown"):
    import torch
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    shape = (1, 28, 28)
    alpha = method == "alpha-crown"
    # alpha-CROWN through max pooling needs auto_LiRPA's matrix mode
    opts = {"conv_mode": "matrix"} if alpha else None
    bm = BoundedModule(module, torch.zeros(1, *shape, dtype=tdt), device="cpu", bound_opts=opts)
    k = net.widths[-1]
    parts = []
    batch = ALPHA_BATCH if alpha else LIRPA_BATCH
    for a in range(0, len(X), batch):
        xt = torch.tensor(X[a : a + batch], dtype=tdt).reshape(-1, *shape)
        with torch.no_grad():
            pred = module(xt).argmax(1)
        n = xt.shape[0]
        C = torch.zeros(n, k - 1, k, dtype=tdt)
        others = torch.tensor([[j for j in range(k) if j != int(p)] for p in pred])
        C[torch.arange(n)[:, None], torch.arange(k - 1)[None, :], pred[:, None]] = 1
        C[torch.arange(n)[:, None], torch.arange(k - 1)[None, :], others] = -1
        ptb = PerturbationLpNorm(norm=np.inf, x_L=(xt - r).clamp(0, 1), x_U=(xt + r).clamp(0, 1))
        parts.append((BoundedTensor(xt, ptb), C))

    def run():
        out = []
        for bx, C in parts:
            # alpha-CROWN's optimization needs autograd (under no_grad it would return
            # the bounds of its initial slopes)
            with torch.enable_grad() if alpha else torch.no_grad():
                lb, _ = bm.compute_bounds(
                    x=(bx,), C=C, method="alpha-CROWN" if alpha else "CROWN", bound_upper=False
                )
            out.append(lb.detach().min(dim=1).values.double().numpy())
        return np.concatenate(out)

    return run


def _main(argv: list[str]) -> None:
    who, name, bits, r255, rounds, out = argv[:6]
    method = argv[6] if len(argv) > 6 else "crown"
    net, X = case(name, int(bits))
    alpha = method == "alpha-crown"
    if len(argv) > 7 or (alpha and name in ALPHA_N):  # the first n inputs only
        X = X[: int(argv[7]) if len(argv) > 7 else ALPHA_N[name]]
    r = float(r255) / 255
    if who == "fastmem":
        fn = lambda: _fastmem(net, X, r, method)  # noqa: E731
    elif who == "lirpa-pred":  # auto_LiRPA with the prediction and rows in the timed call
        fn = _lirpa_setup(net, X, r, method, with_prediction=True)
    else:
        fn = _lirpa_setup(net, X, r, method, _cnn_module(name) if name in CNNS else None)
    if not (alpha and who == "lirpa"):  # auto_LiRPA's alpha-CROWN: minutes, no warm-up
        margins = fn()  # warm-up
    times = []
    for _ in range(int(rounds)):
        t = time.perf_counter()
        margins = fn()
        times.append(time.perf_counter() - t)
    np.save(out, margins)
    import json

    print(json.dumps({"times": times}))


def test_crown_against_auto_lirpa_fresh_processes():
    import pytest

    pytest.importorskip(
        "auto_LiRPA",
        reason="auto_LiRPA is not installed (not current on PyPI: install it from its public "
        "source, https://github.com/Verified-Intelligence/auto_LiRPA, with --no-deps)",
    )
    sys.path.insert(0, str(HERE.parent))
    from _fresh import run_script_fresh

    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in ("he", "digits"):
            for bits in (32, 64):
                for r255 in RADII_255:
                    res = {}
                    for who in ("fastmem", "lirpa"):
                        out = os.path.join(d, f"{who}.npy")
                        t = run_script_fresh(str(HERE), who, name, bits, r255, 2, out)["times"]
                        res[who] = (min(t), np.load(out))
                    (tf, mf), (tl, ml) = res["fastmem"], res["lirpa"]
                    rel = (mf - ml) / (1 + np.abs(ml))
                    rows.append(
                        (name, bits, r255, int((mf > 0).sum()), int((ml > 0).sum()),
                         float(rel.min()) if rel.size else 0.0, tf, tl)
                    )  # fmt: skip
    print("\nnet     dtype  r*255  certified fastmem / auto_LiRPA  min rel diff  "
          "time fastmem / auto_LiRPA  ratio")  # fmt: skip
    for name, bits, r255, cf, cl, rel, tf, tl in rows:
        print(f"{name:7s} f{bits}    {r255:4.1f}   {cf:5d} / {cl:5d}                 {rel:+.2e}"
              f"     {tf:.3f} s / {tl:.3f} s    {tl / tf:5.1f}x")  # fmt: skip
    for name, bits, r255, cf, cl, rel, _, _ in rows:
        assert cf >= cl, f"{name} f{bits} r={r255}/255: fastmem certifies {cf} < {cl}"
        assert rel >= -1e-5, f"{name} f{bits} r={r255}/255: a margin bound is {rel:.2e} below"


def test_ibp_against_auto_lirpa_fresh_processes():
    import pytest

    pytest.importorskip("auto_LiRPA", reason="auto_LiRPA is not installed (see the docstring)")
    sys.path.insert(0, str(HERE.parent))
    from _fresh import run_script_fresh

    print("\nIBP: net  dtype  r*255  certified fastmem / auto_LiRPA  time fastmem / "
          "auto_LiRPA's compute_bounds (ratio) / with its prediction (ratio)")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for name in ("he", "digits"):
            for bits in (32, 64):
                for r255 in (0.3, 8.0):
                    res = {}
                    for who in ("fastmem", "lirpa", "lirpa-pred"):
                        out = os.path.join(d, f"{who}.npy")
                        t = run_script_fresh(str(HERE), who, name, bits, r255, 5, out, "ibp")
                        res[who] = (min(t["times"]), np.load(out))
                    (tf, mf), (tl, ml), (tp, _) = res["fastmem"], res["lirpa"], res["lirpa-pred"]
                    cf, cl = int((mf > 0).sum()), int((ml > 0).sum())
                    print(f"     {name:7s} f{bits} {r255:4.1f}   {cf:5d} / {cl:5d}   "
                          f"{tf * 1e3:.1f} ms / {tl * 1e3:.1f} ms ({tl / tf:.2f}x) / "
                          f"{tp * 1e3:.1f} ms ({tp / tf:.2f}x)")  # fmt: skip
                    assert cf >= cl, f"IBP {name} f{bits} r={r255}/255: certifies {cf} < {cl}"


def test_cnn_crown_against_auto_lirpa_fresh_processes():
    import pytest

    pytest.importorskip("auto_LiRPA", reason="auto_LiRPA is not installed (see the docstring)")
    pytest.importorskip("torch", reason="the CNNs are torch modules")
    sys.path.insert(0, str(HERE.parent))
    from _fresh import run_script_fresh

    print("\nCROWN, f32, 2/255: net  inputs  certified fastmem / auto_LiRPA  min rel diff  "
          "time fastmem / auto_LiRPA")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for name, (_, n) in CNNS.items():
            res = {}
            for who in ("fastmem", "lirpa"):
                out = os.path.join(d, f"{who}.npy")
                t = run_script_fresh(str(HERE), who, name, 32, 2.0, 2, out)["times"]
                res[who] = (min(t), np.load(out))
            (tf, mf), (tl, ml) = res["fastmem"], res["lirpa"]
            cf, cl = int((mf > 0).sum()), int((ml > 0).sum())
            rel = float(((mf - ml) / (1 + np.abs(ml))).min())
            print(f"       {name:9s}{n:5d}   {cf:5d} / {cl:5d}   {rel:+.2e}   {tf:.2f} s / "
                  f"{tl:.2f} s ({tl / tf:.2f}x)")  # fmt: skip
            assert cf >= cl, f"CROWN {name}: fastmem certifies {cf} < {cl}"


def test_cnn_alpha_crown_against_auto_lirpa_fresh_processes():
    import pytest

    pytest.importorskip("auto_LiRPA", reason="auto_LiRPA is not installed (see the docstring)")
    pytest.importorskip("torch", reason="the CNNs are torch modules")
    sys.path.insert(0, str(HERE.parent))
    from _fresh import run_script_fresh

    print("\nalpha-CROWN, f32, 2/255: net  inputs  certified fastmem / auto_LiRPA (fastmem "
          "CROWN)  mean margin gain over fastmem CROWN: fastmem / auto_LiRPA  time fastmem / "
          "auto_LiRPA")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for name, n in ALPHA_N.items():
            res = {}
            for who, method, rounds in (
                ("fastmem", "crown", 3),
                ("fastmem", "alpha-crown", 3),
                ("lirpa", "alpha-crown", 1),
            ):
                out = os.path.join(d, f"{who}-{method}.npy")
                t = run_script_fresh(str(HERE), who, name, 32, 2.0, rounds, out, method, n)
                res[who, method] = (min(t["times"]), np.load(out))
            (_, mc), (tf, mf), (tl, ml) = res.values()
            cc, cf, cl = (int((m > 0).sum()) for m in (mc, mf, ml))
            print(f"       {name:9s}{n:3d}   {cf:3d} / {cl:3d} ({cc:3d})   "
                  f"{np.mean(mf - mc):+.3f} / {np.mean(ml - mc):+.3f}   {tf:.2f} s / {tl:.1f} s "
                  f"({tl / tf:.0f}x)")  # fmt: skip
            assert (mf >= mc).all(), f"alpha-CROWN {name}: a margin below CROWN's"


# the He net's alpha-CROWN row: inputs (auto_LiRPA's takes minutes for 1000 here)
MLP_ALPHA_N = int(os.environ.get("FASTMEM_BENCH_ALPHA_N", "1000"))


def test_mlp_alpha_crown_against_auto_lirpa_fresh_processes():
    """alpha-CROWN on the He net (float32, 1/255, the first ``MLP_ALPHA_N`` inputs):
    fastmem's ``certify="alpha-crown"`` (CROWN, then optimized lower slopes of the final
    margin rows on the samples CROWN leaves undecided) against auto_LiRPA's
    ``compute_bounds(method="alpha-CROWN")`` (its defaults: 20 iterations, every layer's
    slopes), beside fastmem's CROWN. auto_LiRPA's is timed once (minutes)."""
    import pytest

    pytest.importorskip("auto_LiRPA", reason="auto_LiRPA is not installed (see the docstring)")
    sys.path.insert(0, str(HERE.parent))
    from _fresh import run_script_fresh

    n = MLP_ALPHA_N
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for who, method, rounds in (
            ("fastmem", "crown", 3),
            ("fastmem", "alpha-crown", 3),
            ("lirpa", "alpha-crown", 1),
        ):
            out = os.path.join(d, f"{who}-{method}.npy")
            t = run_script_fresh(str(HERE), who, "he", 32, 1.0, rounds, out, method, n)
            res[who, method] = (min(t["times"]), np.load(out))
    (tc, mc), (tf, mf), (tl, ml) = res.values()
    cc, cf, cl = (int((m > 0).sum()) for m in (mc, mf, ml))
    print(f"\nalpha-CROWN, he f32, 1/255, {n} inputs: certified fastmem {cf} / auto_LiRPA {cl} "
          f"(fastmem CROWN {cc}); time fastmem {tf:.2f} s (CROWN {tc:.2f} s) / auto_LiRPA "
          f"{tl:.1f} s ({tl / tf:.0f}x); margins fastmem - auto_LiRPA: min {np.min(mf - ml):+.4f}, "
          f"mean {np.mean(mf - ml):+.4f}")  # fmt: skip
    assert (mf >= mc - 1e-6 * (1 + np.abs(mc))).all(), "alpha-CROWN: a margin below CROWN's"


if __name__ == "__main__":
    _main(sys.argv[1:])

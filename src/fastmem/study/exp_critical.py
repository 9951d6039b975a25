"""Section 6: critical samples and loss sensitivity (seed 001; Arpit et al. 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import (
    cnn_label_runs,
    histogram,
    int_seed,
    load_data,
    random_labels,
    skipped_text,
    split,
    train,
)
from .plotting import band, band_note, bar_hist, figure, legend_below, style
from .registry import Config, Experiment
from .spread import at, paper_row, sd_of, separated, spread_note

# Radius: L_inf, on data in [0, 1]. Arpit et al.'s 0.3/255 (critical.LASS_RADIUS) is 0.3
# of MNIST's grey-level step; the study uses it on data quantized like MNIST (256 levels).
# On digits (17 levels, step 1/16) 0.3/255 is 0.02 of a grey level: nearly every point is
# certified robust there and the CSR is ~0 for real and random labels alike, so the study
# uses 0.05 (0.8 of a digits grey level), which keeps both sides of the sandwich
# informative. The reading states the radius and this reason.
DIGITS_RADIUS = 0.05


def grey_step(X: np.ndarray) -> float:
    """The smallest gap between distinct input values (1/16 on digits, 1/255 on MNIST)."""
    v = np.unique(np.asarray(X, dtype=np.float64).ravel()[:200_000])
    return float(np.diff(v).min()) if v.size > 1 else 1.0


def radius_for(X: np.ndarray) -> float:
    """Arpit et al.'s radius on 256-level data, DIGITS_RADIUS on coarser data."""
    from .. import critical

    return float(critical.LASS_RADIUS) if grey_step(X) <= 1.0 / 255 + 1e-9 else DIGITS_RADIUS


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 20, "epochs": 40, "checkpoints": [1, 5, 10, 20, 40]}
    return {
        "per_class": 50,
        "epochs": 150,
        "checkpoints": [1, 5, 10, 25, 50, 100, 150],
    }


def _cnn_sizes(quick: bool) -> dict[str, Any]:
    return {"channels": [4, 8], "epochs": 20} if quick else {"channels": [8, 16], "epochs": 100}


def _box(X: np.ndarray) -> tuple[float, float]:
    """The valid input range: [0, 1] (digits, MNIST) widened to hold every point."""
    return (min(0.0, float(X.min())), max(1.0, float(X.max())))


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    r = radius_for(load_data(cfg.data).X)
    return [
        *(
            (lab, {"data": cfg.data, "labels": lab, "radius": r, **_sizes(cfg.quick)})
            for lab in ("real", "random")
        ),
        (
            "cnn",
            {
                "data": cfg.data,
                "radius": r,
                "per_class": _sizes(cfg.quick)["per_class"],
                "cnn": _cnn_sizes(cfg.quick),
            },
        ),
    ]


def _cnn(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The CSR sandwich of a small CNN with max pooling (:func:`common.cnn_label_runs`),
    trained on real and on random labels: LASS search and the CROWN certificate (through
    the convolutions and max pooling). Skipped without torch or image data."""
    from .. import critical

    box = _box(load_data(params["data"]).X)

    def measure(net: Any, sp: Any, y: np.ndarray) -> dict[str, float]:
        c = critical.critical_samples(
            net, sp.X, radius=params["radius"], method="lass", certify="crown", box=box,
            rng=int_seed(seed, "lass-cnn"),
        )  # fmt: skip
        return {"csr_lower": float(c.csr_lower), "csr_upper": float(c.csr_upper)}

    out = cnn_label_runs(params, seed, measure)
    if "skipped" not in out:
        out.update(radius=float(params["radius"]), certify="crown")
    return out


def cnn_text(cnn: dict[str, Any] | None) -> str:
    """The CNN row's reading (computed from its numbers)."""
    skipped = skipped_text(cnn)
    if skipped is not None:
        return skipped
    re_, ra = cnn["real"], cnn["random"]
    if ra["csr_lower"] > re_["csr_upper"]:
        order = "above the real-label interval"
    elif re_["csr_lower"] > ra["csr_upper"]:
        order = "below the real-label interval"
    else:
        order = "overlapping the real-label interval"
    return (
        f"A small CNN with max pooling ({cnn['channels'][0]} and {cnn['channels'][1]} "
        f"channels; CROWN certificate, LASS search) has its CSR in [{re_['csr_lower']:.3f}, "
        f"{re_['csr_upper']:.3f}] with real labels (train accuracy {re_['train_acc']:.2f}) "
        f"and in [{ra['csr_lower']:.3f}, {ra['csr_upper']:.3f}] with random labels (train "
        f"accuracy {ra['train_acc']:.2f}), {order}. "
    )


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from .. import critical

    if "cnn" in params:
        return _cnn(params, seed)

    sp = split(load_data(params["data"]), params["per_class"], seed)
    y = sp.y if params["labels"] == "real" else random_labels(sp.y, sp.n_classes, seed)
    t = train(
        sp.X,
        y,
        hidden=(128,),
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        snapshot_epochs=params["checkpoints"],
    )
    box = _box(load_data(params["data"]).X)
    lo, up, unknown = [], [], []
    for _, net in t.snapshots:
        c = critical.critical_samples(
            net,
            sp.X,
            radius=params["radius"],
            method="lass",
            certify="crown",
            box=box,
            rng=int_seed(seed, "lass"),
        )
        lo.append(float(c.csr_lower))
        up.append(float(c.csr_upper))
        unknown.append(c.n_unknown)
    ls = critical.loss_sensitivity(t.network, sp.X, y)
    vals = np.asarray(ls.values, dtype=float)
    acc = dict(zip(t.history["epoch"], t.history["train_acc"], strict=True))
    return {
        "epochs": [e for e, _ in t.snapshots],
        "train_acc": [acc[e] for e, _ in t.snapshots],
        "csr_lower": lo,
        "csr_upper": up,
        "n_unknown": unknown,
        "n": int(sp.X.shape[0]),
        "radius": float(params["radius"]),
        "grey_step": grey_step(sp.X),
        "gini": float(ls.gini),
        "sensitivity_median": float(np.median(vals)),
        # log10, clipped into the plotted range so that every sample is counted
        "sensitivity": histogram(np.clip(np.log10(vals + 1e-12), -4, 2), np.linspace(-4, 2, 31)),
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    out = {lab: results[lab] for lab in ("real", "random")}
    if "cnn" in results:
        out["cnn"] = results["cnn"]
    return out


def figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    fig, (a, b) = figure(2, width=4.2, height=3.4)
    sd = d.get("spread") or {}
    for i, lab in enumerate(("real", "random")):
        r = d[lab]
        st = style(i)
        band(
            a,
            r["epochs"],
            r["csr_upper"],
            at(sd, lab, "csr_upper"),
            label=f"{lab}, upper",
            color=st["color"],
            marker="o",
        )
        band(
            a,
            r["epochs"],
            r["csr_lower"],
            at(sd, lab, "csr_lower"),
            label=f"{lab}, lower",
            color=st["color"],
            marker="s",
            ls="--",
        )
        bar_hist(b, r["sensitivity"], f"{lab} (Gini {r['gini']:.2f})")
    a.set(xlabel="epoch", ylabel="critical sample ratio (fraction)", ylim=(-0.02, 1.02))
    a.set_title(f"CSR bounds, L_inf radius {d['real']['radius']:.3g}")
    b.set(xlabel="log10 loss sensitivity (clipped to [-4, 2])", ylabel="density (per log10 unit)")
    b.set_title("Loss sensitivity, last epoch")
    legend_below(a)
    legend_below(b)
    return [
        (
            "critical",
            fig,
            "Left: certified lower and upper bounds on the critical sample ratio (fraction of "
            "training points with a differently classified point within the L_inf radius, "
            "inputs in [0, 1]) per epoch, real and random labels. Right: distribution of the "
            "per-sample loss sensitivity ||dL/dx||_1 at the last epoch. " + band_note(d),
        )
    ]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "title": "Critical samples (final epoch)",
            "columns": [
                "labels",
                "train acc",
                "CSR lower",
                "CSR upper",
                "median loss sensitivity",
                "Gini",
            ],
            "rows": [
                [
                    lab,
                    d[lab]["train_acc"][-1],
                    d[lab]["csr_lower"][-1],
                    d[lab]["csr_upper"][-1],
                    d[lab]["sensitivity_median"],
                    d[lab]["gini"],
                ]
                for lab in ("real", "random")
            ],
        },
        *_cnn_table(d.get("cnn")),
    ]


def _cnn_table(cnn: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not cnn:
        return []
    rows = (
        [[f"skipped ({cnn['skipped']})", None, None, None]]
        if "skipped" in cnn
        else [
            [lab, cnn[lab]["train_acc"], cnn[lab]["csr_lower"], cnn[lab]["csr_upper"]]
            for lab in ("real", "random")
        ]
    )
    return [
        {
            "title": "A small CNN with max pooling (CROWN certificate, LASS search)",
            "columns": ["labels", "train acc", "CSR lower", "CSR upper"],
            "rows": rows,
        }
    ]


def csr_order(d: dict[str, Any]) -> str:
    """How the random-label CSR interval sits against the real-label one (last epoch)."""
    re_, ra = d["real"], d["random"]
    rl, ru = re_["csr_lower"][-1], re_["csr_upper"][-1]
    al, au = ra["csr_lower"][-1], ra["csr_upper"][-1]
    e_rl, e_ru = sd_of(d, "real", "csr_lower", -1) or 0.0, sd_of(d, "real", "csr_upper", -1) or 0.0
    e_al, e_au = (
        sd_of(d, "random", "csr_lower", -1) or 0.0,
        sd_of(d, "random", "csr_upper", -1) or 0.0,
    )
    if rl == ru == al == au:
        return "the same single value as with real labels: the CSR does not tell the two apart"
    if al - ru > e_al + e_ru:
        return "above the real-label interval: the certified bounds separate the two"
    if rl - au > e_rl + e_au:
        return "below the real-label interval: the certified bounds separate the two, reversed"
    return (
        "overlapping the real-label interval (within the spread): the bounds do not "
        "separate the two"
    )


def csr_trend(r: dict[str, Any], sd_first: float | None, sd_last: float | None) -> str:
    first, last = r["csr_upper"][0], r["csr_upper"][-1]
    moved = separated(first, sd_first, last, sd_last)
    if moved is None:
        moved = abs(first - last) > 0.02
    if not moved:
        return f"stays at {first:.3f} to {last:.3f}"
    return f"{'rises' if last > first else 'falls'} from {first:.3f} to {last:.3f}"


def reading(d: dict[str, Any]) -> str:
    re_, ra = d["real"], d["random"]
    gini = (
        "more concentrated on a few samples with real labels"
        if re_["gini"] > ra["gini"]
        else "no more concentrated with real labels than with random ones"
    )
    r, step = re_["radius"], re_.get("grey_step", 1 / 16)
    radius = (
        f"The L_inf radius is {r:.3g}, Arpit et al.'s 0.3/255 (0.3 of a grey level of "
        "256-level data)"
        if abs(r - 0.3 / 255) < 1e-12
        else f"The L_inf radius is {r:.3g} ({r / step:.2g} of this data's grey-level step "
        f"{step:.3g}), not Arpit et al.'s 0.3/255 (which is 0.3 of MNIST's step): at 0.3/255 "
        f"({0.3 / 255 / step:.2g} of a grey level here) nearly every point is certified "
        "robust and the ratio is ~0 for real and random labels alike"
    )
    return (
        f"{radius}. After {re_['epochs'][-1]} epochs (train accuracy "
        f"{re_['train_acc'][-1]:.2f} real, {ra['train_acc'][-1]:.2f} random) the critical "
        f"sample ratio lies in [{re_['csr_lower'][-1]:.3f}, {re_['csr_upper'][-1]:.3f}] with "
        f"real labels and in [{ra['csr_lower'][-1]:.3f}, {ra['csr_upper'][-1]:.3f}] with "
        f"random labels, {csr_order(d)}. Over training the real-label upper bound "
        f"{csr_trend(re_, sd_of(d, 'real', 'csr_upper', 0), sd_of(d, 'real', 'csr_upper', -1))} "
        f"(epoch {re_['epochs'][0]} to {re_['epochs'][-1]}); the random-label one "
        f"{csr_trend(ra, sd_of(d, 'random', 'csr_upper', 0), sd_of(d, 'random', 'csr_upper', -1))}"
        f". Loss sensitivity is {gini} (Gini {re_['gini']:.3f} vs {ra['gini']:.3f}; median "
        f"{re_['sensitivity_median']:.3g} vs {ra['sensitivity_median']:.3g}). "
        + cnn_text(d.get("cnn"))
        + spread_note(d.get("n_seeds", 1))
    )


def papers(d: dict[str, Any]) -> list[list[str]]:
    re_, ra = d["real"], d["random"]
    order = csr_order(d)
    rising = re_["csr_upper"][-1] > re_["csr_upper"][0]
    r = re_["radius"]
    why_r = (
        "same radius as the paper"
        if abs(r - 0.3 / 255) < 1e-12
        else f"radius {r:.3g} on coarser data instead of 0.3/255"
    )
    return [
        paper_row(
            "Arpit et al. 2017 (seed 001 notes)",
            "MNIST / CIFAR-10, LASS, L_inf radius 0.3/255",
            "more critical samples with random labels than with real ones (a more complex "
            "decision surface)",
            f"last epoch: real [{re_['csr_lower'][-1]:.3f}, {re_['csr_upper'][-1]:.3f}], "
            f"random [{ra['csr_lower'][-1]:.3f}, {ra['csr_upper'][-1]:.3f}]",
            "agree" if order.startswith("above") else "differ",
            why_r,
        ),
        paper_row(
            "Arpit et al. 2017",
            "MNIST / CIFAR-10, CSR per epoch, real labels",
            "the CSR on real data rises slowly over training",
            f"upper bound {re_['csr_upper'][0]:.3f} at epoch {re_['epochs'][0]} -> "
            f"{re_['csr_upper'][-1]:.3f} at epoch {re_['epochs'][-1]}",
            "agree" if rising else "differ",
            "rises as in the paper"
            if rising
            else f"falls: at epoch 1 the margins are small against radius {r:.3g}, so most "
            "points are critical; " + why_r,
        ),
        paper_row(
            "Arpit et al. 2017 (seed 001 notes)",
            "loss sensitivity g = ||dL/dx||_1",
            "real data: high on a subset; random data: high for all",
            f"Gini {re_['gini']:.3f} (real) vs {ra['gini']:.3f} (random)",
            "agree" if re_["gini"] > ra["gini"] else "differ",
            "more concentrated with real labels"
            if re_["gini"] > ra["gini"]
            else "not more concentrated with real labels",
        ),
    ]


EXPERIMENTS = [
    Experiment(
        name="critical",
        title="Critical samples and loss sensitivity",
        seed_document="001",
        references="Arpit et al., ICML 2017",
        jobs=jobs,
        run=run,
        summarize=summarize,
        figures=figures,
        tables=tables,
        reading=reading,
        papers=papers,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, MLP "
            f"(128,) ReLU, {_sizes(cfg.quick)['epochs']} epochs; LASS search and CROWN "
            f"certificate at L_inf radius {radius_for(load_data(cfg.data).X):.3g} (data in "
            "[0, 1]); "
            "loss sensitivity: L1 norm of the input gradient at the last epoch"
        ),
    )
]

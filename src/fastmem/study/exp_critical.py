"""Section 6: critical samples and loss sensitivity (seed 001; Arpit et al. 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import histogram, int_seed, load_data, random_labels, split, train
from .plotting import bar_hist, figure
from .registry import Config, Experiment


# Radius: L_inf, on data in [0, 1]. Arpit et al.'s 0.3/255 (critical.LASS_RADIUS) is far
# below the digits' grey-level step (1/16): nearly every point is certified robust there
# and the CSR is ~0 for real and random labels alike. 0.05 (under one grey level) keeps
# both sides of the sandwich informative.
def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 20, "epochs": 40, "checkpoints": [1, 5, 10, 20, 40], "radius": 0.05}
    return {
        "per_class": 50,
        "epochs": 150,
        "checkpoints": [1, 5, 10, 25, 50, 100, 150],
        "radius": 0.05,
    }


def _box(X: np.ndarray) -> tuple[float, float]:
    """The valid input range: [0, 1] (digits, MNIST) widened to hold every point."""
    return (min(0.0, float(X.min())), max(1.0, float(X.max())))


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    return [
        (lab, {"data": cfg.data, "labels": lab, **_sizes(cfg.quick)}) for lab in ("real", "random")
    ]


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from .. import critical

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
        "gini": float(ls.gini),
        "sensitivity_median": float(np.median(vals)),
        # log10, clipped into the plotted range so that every sample is counted
        "sensitivity": histogram(np.clip(np.log10(vals + 1e-12), -4, 2), np.linspace(-4, 2, 31)),
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return {lab: results[lab] for lab in ("real", "random")}


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, (a, b) = figure(2)
    for lab in ("real", "random"):
        r = d[lab]
        line = a.plot(r["epochs"], r["csr_upper"], "o-", label=f"{lab} (upper)")
        a.plot(
            r["epochs"], r["csr_lower"], "s--", color=line[0].get_color(), label=f"{lab} (lower)"
        )
        bar_hist(b, r["sensitivity"], f"{lab} (Gini {r['gini']:.2f})")
    a.set(xlabel="epoch", ylabel="critical sample ratio", title="CSR bounds")
    b.set(
        xlabel="log10 loss sensitivity (clipped to [-4, 2])",
        ylabel="density",
        title="Loss sensitivity",
    )
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    return [("critical", fig)]


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
        }
    ]


def reading(d: dict[str, Any]) -> str:
    re_, ra = d["real"], d["random"]
    if ra["csr_lower"][-1] > re_["csr_upper"][-1]:
        order = "above the real-label interval: the certified sandwich separates the two"
    elif ra["csr_upper"][-1] < re_["csr_lower"][-1]:
        order = "below the real-label interval"
    else:
        order = "overlapping the real-label interval: the bounds do not separate the two"
    gini = (
        "more concentrated on a few samples with real labels"
        if re_["gini"] > ra["gini"]
        else "no more concentrated with real labels than with random ones"
    )
    return (
        f"After {re_['epochs'][-1]} epochs (train accuracy {re_['train_acc'][-1]:.2f} real, "
        f"{ra['train_acc'][-1]:.2f} random) the critical sample ratio lies in "
        f"[{re_['csr_lower'][-1]:.3f}, {re_['csr_upper'][-1]:.3f}] with real labels and in "
        f"[{ra['csr_lower'][-1]:.3f}, {ra['csr_upper'][-1]:.3f}] with random labels, {order}. "
        f"With real labels the CSR upper bound falls from {re_['csr_upper'][0]:.3f} at epoch "
        f"{re_['epochs'][0]} to {re_['csr_upper'][-1]:.3f}; with random labels from "
        f"{ra['csr_upper'][0]:.3f} to {ra['csr_upper'][-1]:.3f}. Loss sensitivity is {gini} "
        f"(Gini {re_['gini']:.3f} vs {ra['gini']:.3f}; median {re_['sensitivity_median']:.3g} "
        f"vs {ra['sensitivity_median']:.3g})."
    )


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
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, MLP "
            f"(128,) ReLU, {_sizes(cfg.quick)['epochs']} epochs; LASS search and CROWN "
            f"certificate at L_inf radius {_sizes(cfg.quick)['radius']} (data in [0, 1]); "
            "loss sensitivity: L1 norm of the input gradient at the last epoch"
        ),
    )
]

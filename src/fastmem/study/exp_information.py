"""Section 7: the information plane (seed 001; Shwartz-Ziv & Tishby 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import load_data, random_labels, split, train
from .plotting import figure
from .registry import Config, Experiment

# A narrow net (as Shwartz-Ziv & Tishby's 12-10-7-5-4-3-2): with wide layers every
# training row gets its own bin code, H(T) = log2 N at every layer and every checkpoint,
# and the plane says nothing. Bins: "adaptive_max" (Chelombiev et al. 2019), equal-width
# over each layer's range across checkpoints, so ReLU, tanh and the logits compare.
_HIDDEN = (12, 8, 6, 4)
_BINS = 30


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 50, "epochs": 150, "checkpoints": [1, 2, 4, 8, 15, 30, 60, 100, 150]}
    return {
        "per_class": 150,
        "epochs": 1000,
        "checkpoints": [1, 2, 4, 8, 15, 30, 60, 100, 200, 400, 700, 1000],
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    acts = ["tanh", "relu"]
    return [
        (f"{act}-{lab}", {"data": cfg.data, "activation": act, "labels": lab, **_sizes(cfg.quick)})
        for act in acts
        for lab in ("real", "random")
    ]


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from .. import information

    sp = split(load_data(params["data"]), params["per_class"], seed)
    y = sp.y if params["labels"] == "real" else random_labels(sp.y, sp.n_classes, seed)
    t = train(
        sp.X,
        y,
        hidden=_HIDDEN,
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        activation=params["activation"],
        snapshot_epochs=params["checkpoints"],
    )
    epochs = [e for e, _ in t.snapshots]
    ip = information.information_plane(
        [net for _, net in t.snapshots],
        y,
        X=sp.X,
        epochs=epochs,
        estimator="binned",
        mode="adaptive_max",
        bins=_BINS,
    )
    acc = dict(zip(t.history["epoch"], t.history["train_acc"], strict=True))
    return {
        "epochs": epochs,
        "train_acc": [acc[e] for e in epochs],
        "n": int(sp.X.shape[0]),
        # plug-in differences of equal entropies can round to -0.0 or -1e-16
        "i_xt": np.maximum(np.asarray(ip.i_xt, dtype=float), 0.0).tolist(),
        "i_ty": np.maximum(np.asarray(ip.i_ty, dtype=float), 0.0).tolist(),
        "h_y": float(_entropy_bits(y)),
    }


def _entropy_bits(y: np.ndarray) -> float:
    p = np.bincount(y) / y.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return {"runs": results}


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    runs = d["runs"]
    fig, axes = figure(len(runs))
    for ax, (name, r) in zip(axes, runs.items(), strict=True):
        ixt, ity = np.asarray(r["i_xt"]), np.asarray(r["i_ty"])
        n_layers = ixt.shape[1]
        for layer in range(n_layers):
            label = "logits" if layer == n_layers - 1 else f"layer {layer + 1}"
            line = ax.plot(ixt[:, layer], ity[:, layer], "o-", ms=3, label=label)
            ax.plot(ixt[-1, layer], ity[-1, layer], "*", ms=9, color=line[0].get_color())
        ax.set(
            xlabel="I(X;T) bits",
            ylabel="I(T;Y) bits",
            title=f"{name} (train acc {r['train_acc'][-1]:.2f})",
        )
    axes[0].legend(fontsize=7)
    return [("information_plane", fig)]


def _peak(r: dict[str, Any], layer: int) -> tuple[float, float]:
    """Largest I(X;T) of a layer over training, and its last value (compression = drop)."""
    col = [row[layer] for row in r["i_xt"]]
    return max(col), col[-1]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, r in d["runs"].items():
        n_layers = len(r["i_xt"][-1])
        for layer in range(n_layers):
            peak, last = _peak(r, layer)
            rows.append(
                [
                    name,
                    "logits" if layer == n_layers - 1 else str(layer + 1),
                    r["train_acc"][-1],
                    last,
                    peak,
                    r["i_ty"][-1][layer],
                ]
            )
    return [
        {
            "title": "Information plane, last checkpoint",
            "rows": rows,
            "columns": ["run", "layer", "train acc", "I(X;T)", "max I(X;T)", "I(T;Y)"],
        }
    ]


def reading(d: dict[str, Any]) -> str:
    runs = d["runs"]
    first = next(iter(runs.values()))
    n, h_y = first["n"], first["h_y"]
    parts = []
    for name, r in runs.items():
        layer = len(r["i_xt"][-1]) - 2  # the last hidden layer
        peak, last = _peak(r, layer)
        comp = (
            f"compressed from {peak:.2f} to {last:.2f} bits"
            if peak - last > 0.1
            else f"no compression (I(X;T) {last:.2f} bits, peak {peak:.2f})"
        )
        parts.append(
            f"{name}: train accuracy {r['train_acc'][-1]:.2f}, last hidden layer "
            f"I(T;Y) = {r['i_ty'][-1][layer]:.2f} bits, {comp}"
        )
    gaps = [
        runs[f"{act}-real"]["i_ty"][-1][-2] - runs[f"{act}-random"]["i_ty"][-1][-2]
        for act in ("tanh", "relu")
        if f"{act}-real" in runs and f"{act}-random" in runs
    ]
    gap = ""
    if gaps:
        g = float(np.mean(gaps))
        gap = (
            f" Real labels end with {g:.2f} bits more I(T;Y) in the last hidden layer than "
            "random labels on average."
            if g >= 0
            else f" Random labels end with {-g:.2f} bits more I(T;Y) in the last hidden layer "
            "than real labels on average."
        )
    saturated = [
        name
        for name, r in runs.items()
        if r["i_xt"][-1][len(r["i_xt"][-1]) - 2] > np.log2(r["n"]) - 0.5
    ]
    if saturated:
        gap += (
            f" In {', '.join(saturated)} the last hidden layer's bins nearly separate every "
            "training point (I(X;T) within 0.5 bit of log2 N), so I(T;Y) is close to H(Y) "
            "whatever the labels: there the binned estimate measures the binning, not "
            "generalization."
        )
    return (
        f"Binned mutual information ({n} training points: I(X;T) <= log2 N = "
        f"{np.log2(n):.2f} bits, I(T;Y) <= H(Y) = {h_y:.2f} bits) of each layer over "
        "training. " + "; ".join(parts) + "." + gap
    )


EXPERIMENTS = [
    Experiment(
        name="information",
        title="Information plane",
        seed_document="001",
        references="Shwartz-Ziv & Tishby 2017; Saxe et al. 2018",
        jobs=jobs,
        run=run,
        summarize=summarize,
        figures=figures,
        tables=tables,
        reading=reading,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, MLP {_HIDDEN} (tanh and "
            f"ReLU), {_sizes(cfg.quick)['epochs']} epochs; binned estimator, {_BINS} "
            "equal-width bins over each layer's range (adaptive_max), on the training set"
        ),
    )
]

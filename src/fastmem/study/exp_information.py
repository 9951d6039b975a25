"""Section 7: the information plane (seed 001; Shwartz-Ziv & Tishby 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import load_data, random_labels, split, train
from .plotting import band_note, figure
from .registry import Config, Experiment
from .spread import paper_row, spread_note

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
        "epochs": 400,
        "checkpoints": [1, 2, 4, 8, 15, 30, 60, 100, 200, 300, 400],
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


def figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    from matplotlib import cm, colors

    runs = d["runs"]
    ncol = 2
    nrow = -(-len(runs) // ncol)
    fig, axes = figure(ncol, nrow, width=4.6, height=3.8)
    all_epochs = [e for r in runs.values() for e in r["epochs"]]
    norm = colors.LogNorm(vmin=max(1, min(all_epochs)), vmax=max(all_epochs))
    cmap = cm.viridis
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    for ax, (name, r) in zip(axes, runs.items(), strict=False):
        ixt, ity = np.asarray(r["i_xt"]), np.asarray(r["i_ty"])
        n_layers = ixt.shape[1]
        for layer in range(n_layers):
            label = "logits" if layer == n_layers - 1 else f"layer {layer + 1}"
            ax.plot(ixt[:, layer], ity[:, layer], "-", color="0.75", lw=0.8, zorder=1)
            ax.scatter(
                ixt[:, layer],
                ity[:, layer],
                c=r["epochs"],
                cmap=cmap,
                norm=norm,
                marker=markers[layer % len(markers)],
                s=22,
                edgecolors="k",
                linewidths=0.3,
                label=label,
                zorder=2,
            )
        ax.set(
            xlabel="I(X;T) (bits)",
            ylabel="I(T;Y) (bits)",
            title=f"{name} (train acc {r['train_acc'][-1]:.2f})",
        )
    for ax in axes[len(runs) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    for hnd in handles:
        hnd.set_facecolor("white")
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=len(labels),
        fontsize=9,
        frameon=False,
        title="marker: layer",
    )
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="epoch (log scale)")
    return [
        (
            "information_plane",
            fig,
            "Information plane: binned estimates of I(X;T) and I(T;Y) (bits) of each layer "
            "T over training, one panel per activation and labelling; marker shape is the "
            "layer, colour the epoch. "
            + band_note(d)
            .replace("Lines: mean over", "Points: mean over")
            .replace("; shaded bands / error bars: +-1 standard deviation", ""),
        )
    ]


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
        "training. " + "; ".join(parts) + "." + gap + " " + spread_note(d.get("n_seeds", 1))
    )


def compressed(r: dict[str, Any]) -> tuple[bool, float, float]:
    """Whether the last hidden layer's I(X;T) fell by more than 0.1 bit from its peak."""
    layer = len(r["i_xt"][-1]) - 2
    peak, last = _peak(r, layer)
    return peak - last > 0.1, peak, last


def papers(d: dict[str, Any]) -> list[list[str]]:
    runs = d["runs"]
    rows = []
    if "tanh-real" in runs:
        c, peak, last = compressed(runs["tanh-real"])
        rows.append(
            paper_row(
                "Shwartz-Ziv & Tishby 2017",
                "tanh MLP 12-10-7-5-4-3-2, synthetic 12-bit data, binned estimator",
                "a fitting phase, then a compression phase: I(X;T) falls late in training",
                f"tanh, real labels, last hidden layer: I(X;T) peak {peak:.2f} -> {last:.2f} bits",
                "agree" if c else "differ",
                ("compression seen" if c else "no compression (> 0.1 bit) seen")
                + f"; {d['runs']['tanh-real']['n']} training points of the study's data",
            )
        )
    if "relu-real" in runs:
        c, peak, last = compressed(runs["relu-real"])
        rows.append(
            paper_row(
                "Saxe et al. 2018",
                "ReLU networks, binned estimator",
                "no compression phase with ReLU (compression follows from tanh saturation)",
                f"ReLU, real labels, last hidden layer: I(X;T) peak {peak:.2f} -> {last:.2f} bits",
                "agree" if not c else "differ",
                "no compression seen" if not c else "compression seen with ReLU",
            )
        )
    return rows


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
        papers=papers,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, MLP {_HIDDEN} (tanh and "
            f"ReLU), {_sizes(cfg.quick)['epochs']} epochs; binned estimator, {_BINS} "
            "equal-width bins over each layer's range (adaptive_max), on the training set"
        ),
    )
]

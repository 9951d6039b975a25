"""Section 7: the information plane (seed 001; Shwartz-Ziv & Tishby 2017).

Runs only when :mod:`fastmem.information` exists (feature detection); tanh networks only
when :meth:`Network.from_sklearn` accepts them.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from .common import load_data, random_labels, split, train
from .plotting import figure
from .registry import Config, Experiment


def available() -> str | None:
    if importlib.util.find_spec("fastmem.information") is None:
        return "this fastmem has no fastmem.information module"
    return None


def _tanh_supported() -> bool:
    from sklearn.neural_network import MLPClassifier

    from ..errors import InputError
    from ..network import Network

    clf = MLPClassifier(hidden_layer_sizes=(2,), activation="tanh", max_iter=1)
    clf.partial_fit(np.eye(2), [0, 1], classes=[0, 1])
    try:
        Network.from_sklearn(clf)
    except InputError:
        return False
    return True


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 20, "epochs": 30, "checkpoints": [1, 2, 4, 8, 15, 30]}
    return {
        "per_class": 100,
        "epochs": 300,
        "checkpoints": [1, 2, 4, 8, 15, 30, 60, 100, 150, 200, 300],
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    acts = ["tanh", "relu"] if _tanh_supported() else ["relu"]
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
        hidden=(32, 16, 8),
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        activation=params["activation"],
        snapshot_epochs=params["checkpoints"],
    )
    snaps = [net.layer_outputs(sp.X) for _, net in t.snapshots]
    ip = information.information_plane(snaps, y, estimator="binned")
    return {
        "epochs": [e for e, _ in t.snapshots],
        "i_xt": np.asarray(ip.i_xt).tolist(),
        "i_ty": np.asarray(ip.i_ty).tolist(),
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return {"runs": results}


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    runs = d["runs"]
    fig, axes = figure(len(runs))
    for ax, (name, r) in zip(axes, runs.items(), strict=True):
        ixt, ity = np.asarray(r["i_xt"]), np.asarray(r["i_ty"])
        for layer in range(ixt.shape[1]):
            ax.plot(ixt[:, layer], ity[:, layer], "o-", ms=3, label=f"layer {layer + 1}")
        ax.set(xlabel="I(X;T) bits", ylabel="I(T;Y) bits", title=name)
    axes[0].legend(fontsize=7)
    return [("information_plane", fig)]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        [name, layer + 1, r["i_xt"][-1][layer], r["i_ty"][-1][layer]]
        for name, r in d["runs"].items()
        for layer in range(len(r["i_xt"][-1]))
    ]
    return [
        {
            "title": "Information plane, last checkpoint",
            "rows": rows,
            "columns": ["run", "layer", "I(X;T)", "I(T;Y)"],
        }
    ]


def reading(d: dict[str, Any]) -> str:
    parts = [
        f"{name}: last layer I(T;Y) = {r['i_ty'][-1][-1]:.3f} bits" for name, r in d["runs"].items()
    ]
    return (
        "Binned mutual information of each layer over training. "
        + "; ".join(parts)
        + ". Random labels leave I(T;Y) high on the training set only by memorizing."
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
        available=available,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, MLP "
            "(32, 16, 8), binned estimator"
        ),
    )
]

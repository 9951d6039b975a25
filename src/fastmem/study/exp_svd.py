"""Section 8: the SVD subspace classifier next to an MLP (seed 002)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import load_data, split, train
from .plotting import figure
from .registry import Config, Experiment


def _sizes(quick: bool) -> dict[str, Any]:
    return {
        "per_class": 30 if quick else 100,
        "kmax": 20 if quick else 40,
        "epochs": 40 if quick else 200,
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    return [("svd", {"data": cfg.data, **_sizes(cfg.quick)})]


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    sp = split(load_data(params["data"]), params["per_class"], seed)
    kmax = int(min(params["kmax"], sp.X.shape[1], np.bincount(sp.y).min()))
    bases = [
        np.linalg.svd(sp.X[sp.y == c].T, full_matrices=False)[0][:, :kmax]
        for c in range(sp.n_classes)
    ]
    ks = list(range(1, kmax + 1))
    acc = []
    for k in ks:
        # residual norm of the projection on each class's first k left singular vectors
        res = np.stack(
            [
                np.linalg.norm(sp.X_test - (sp.X_test @ U[:, :k]) @ U[:, :k].T, axis=1)
                for U in bases
            ],
            axis=1,
        )
        acc.append(float(np.mean(res.argmin(axis=1) == sp.y_test)))
    t = train(sp.X, sp.y, hidden=(128,), epochs=params["epochs"], seed=seed, n_classes=sp.n_classes)
    return {
        "k": ks,
        "accuracy": acc,
        "mlp_test_acc": float(t.clf.score(sp.X_test, sp.y_test)),
        "n_train": int(sp.X.shape[0]),
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return results["svd"]


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, (ax,) = figure(1)
    ax.plot(d["k"], d["accuracy"], "o-", label="SVD subspaces")
    ax.axhline(d["mlp_test_acc"], color="k", ls="--", label="MLP (128 ReLU)")
    ax.set(xlabel="basis vectors per class", ylabel="test accuracy", title="SVD classifier")
    ax.legend()
    return [("svd", fig)]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    best = int(np.argmax(d["accuracy"]))
    return [
        {
            "title": "SVD subspace classifier",
            "columns": ["method", "k", "test acc"],
            "rows": [
                ["SVD", d["k"][0], d["accuracy"][0]],
                ["SVD (best k)", d["k"][best], d["accuracy"][best]],
                ["MLP", None, d["mlp_test_acc"]],
            ],
        }
    ]


def reading(d: dict[str, Any]) -> str:
    best = int(np.argmax(d["accuracy"]))
    return (
        f"Classifying by the nearest per-class SVD subspace reaches {d['accuracy'][best]:.3f} "
        f"test accuracy with k = {d['k'][best]} basis vectors per class (k = 1: "
        f"{d['accuracy'][0]:.3f}), against {d['mlp_test_acc']:.3f} for the MLP trained on the "
        f"same {d['n_train']} samples: a linear baseline without any memorization capacity "
        "comes close on this data."
    )


EXPERIMENTS = [
    Experiment(
        name="svd",
        title="SVD subspace classifier",
        seed_document="002",
        references="ICERM 2020 slides (SVD baseline)",
        jobs=jobs,
        run=run,
        summarize=summarize,
        figures=figures,
        tables=tables,
        reading=reading,
        setting=lambda cfg: f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class",
    )
]

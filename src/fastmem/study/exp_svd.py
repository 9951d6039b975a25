"""Section 8: the SVD subspace classifier next to an MLP (seed 002)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import load_data, rng_for, split, train
from .plotting import band, band_note, figure, legend_below
from .registry import Config, Experiment
from .spread import paper_row, pm, sd_of, separated, spread_note


def _sizes(quick: bool) -> dict[str, Any]:
    return {
        "per_class": 30 if quick else 100,
        "kmax": 20 if quick else 40,
        "epochs": 40 if quick else 200,
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    return [("svd", {"data": cfg.data, **_sizes(cfg.quick)})]


def _subspace_accuracy(
    X: np.ndarray, y: np.ndarray, Xe: np.ndarray, ye: np.ndarray, n_classes: int, kmax: int
) -> list[float]:
    """Accuracy on (Xe, ye) of the nearest-class-subspace rule, for k = 1..kmax."""
    bases = [np.linalg.svd(X[y == c].T, full_matrices=False)[0][:, :kmax] for c in range(n_classes)]
    acc = []
    for k in range(1, kmax + 1):
        # residual norm of the projection on each class's first k left singular vectors
        res = np.stack(
            [np.linalg.norm(Xe - (Xe @ U[:, :k]) @ U[:, :k].T, axis=1) for U in bases], axis=1
        )
        acc.append(float(np.mean(res.argmin(axis=1) == ye)))
    return acc


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    sp = split(load_data(params["data"]), params["per_class"], seed)
    # k is chosen on a validation fifth of the training set (never on the test set)
    val = np.zeros(sp.y.size, dtype=bool)
    gen = rng_for(seed, "svd-val")
    for c in range(sp.n_classes):
        idx = np.flatnonzero(sp.y == c)
        val[gen.choice(idx, max(1, idx.size // 5), replace=False)] = True
    fit = ~val
    kmax = int(min(params["kmax"], sp.X.shape[1], np.bincount(sp.y[fit]).min()))
    val_acc = _subspace_accuracy(sp.X[fit], sp.y[fit], sp.X[val], sp.y[val], sp.n_classes, kmax)
    k_chosen = int(np.argmax(val_acc)) + 1
    acc = _subspace_accuracy(sp.X, sp.y, sp.X_test, sp.y_test, sp.n_classes, kmax)
    t = train(sp.X, sp.y, hidden=(128,), epochs=params["epochs"], seed=seed, n_classes=sp.n_classes)
    return {
        "k": list(range(1, kmax + 1)),
        "accuracy": acc,
        "val_accuracy": val_acc,
        "k_chosen": k_chosen,
        "svd_test_acc": acc[k_chosen - 1],
        "mlp_test_acc": float(t.clf.score(sp.X_test, sp.y_test)),
        "n_train": int(sp.X.shape[0]),
        "input_dim": int(sp.X.shape[1]),
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return results["svd"]


def figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    fig, (ax,) = figure(1, width=5.0)
    sd = d.get("spread") or {}
    band(ax, d["k"], d["accuracy"], sd.get("accuracy"), label="SVD subspaces, test", marker="o")
    band(
        ax,
        d["k"],
        d["val_accuracy"],
        sd.get("val_accuracy"),
        label="SVD subspaces, validation",
        marker="s",
        ls="--",
    )
    m, e = d["mlp_test_acc"], sd_of(d, "mlp_test_acc")
    ax.axhline(m, color="k", ls=":", label="MLP (128 ReLU), test")
    if e:
        ax.axhspan(m - e, m + e, color="k", alpha=0.1, lw=0)
    ax.axvline(d["k_chosen"], color="0.5", lw=0.8)
    ax.set(xlabel="basis vectors per class k", ylabel="accuracy (fraction)", title="SVD classifier")
    legend_below(ax)
    return [
        (
            "svd",
            fig,
            "Accuracy of the nearest per-class SVD subspace rule against the number k of "
            "basis vectors per class, on the validation fifth of the training set (k is "
            "chosen there: grey line) and on the test set, next to the MLP's test accuracy. "
            + band_note(d),
        )
    ]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "title": "SVD subspace classifier (k chosen on a validation split)",
            "columns": ["method", "k", "test acc"],
            "rows": [
                ["SVD", d["k"][0], d["accuracy"][0]],
                ["SVD (k chosen on validation)", d["k_chosen"], d["svd_test_acc"]],
                ["MLP", None, d["mlp_test_acc"]],
            ],
        }
    ]


def reading(d: dict[str, Any]) -> str:
    svd, mlp = d["svd_test_acc"], d["mlp_test_acc"]
    e_svd, e_mlp = sd_of(d, "svd_test_acc"), sd_of(d, "mlp_test_acc")
    sep = separated(svd, e_svd, mlp, e_mlp)
    if sep is None:
        verdict = (
            f"{'above' if svd > mlp else 'below' if svd < mlp else 'equal to'} the MLP by "
            f"{abs(svd - mlp):.3f} on one seed (no spread to judge the gap against)"
        )
    elif not sep:
        verdict = "level with the MLP: the gap is within their spread over seeds"
    elif svd > mlp:
        verdict = "better than the MLP, by more than their spread over seeds"
    else:
        verdict = "below the MLP, by more than their spread over seeds"
    return (
        f"Classifying by the nearest per-class SVD subspace, with k = {d['k_chosen']:.3g} basis "
        f"vectors per class chosen on a validation fifth of the training set, reaches "
        f"{pm(svd, e_svd)} test accuracy (k = 1: {d['accuracy'][0]:.3f}) against "
        f"{pm(mlp, e_mlp)} for the MLP trained on the same {d['n_train']} samples: the "
        f"linear baseline, which has no capacity to memorize, is {verdict}. "
        + spread_note(d.get("n_seeds", 1))
    )


def papers(d: dict[str, Any]) -> list[list[str]]:
    mnist = d.get("input_dim") == 784
    why = (
        f"{d['n_train']} training samples, not 60,000"
        if mnist
        else f"digits ({d.get('input_dim')}-d, {d['n_train']} training samples), not MNIST's 60,000"
    )
    return [
        paper_row(
            "ICERM 2020 slides (Jeong, Barton, Ramirez)",
            "MNIST, 1 hidden layer of 128 units, 12 epochs",
            "97.8% test accuracy",
            f"MLP (128 ReLU): {pm(d['mlp_test_acc'], sd_of(d, 'mlp_test_acc'))}",
            "not comparable",
            why,
        ),
        paper_row(
            "ICERM 2020 slides (Jeong, Barton, Ramirez)",
            "MNIST, per-class SVD, argmin_c ||x - U_c U_c^T x||",
            "a linear-algebra baseline for the networks (accuracy shown only in a figure)",
            f"SVD: {pm(d['svd_test_acc'], sd_of(d, 'svd_test_acc'))} at k = {d['k_chosen']:.3g}",
            "not comparable",
            "the slides print no SVD accuracy; " + why,
        ),
    ]


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
        papers=papers,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class; k = 1..."
            f"{_sizes(cfg.quick)['kmax']} chosen on a validation fifth of the training set; "
            f"MLP (128,) ReLU, Adam, {_sizes(cfg.quick)['epochs']} epochs"
        ),
    )
]

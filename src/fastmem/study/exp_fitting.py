"""Sections 1 and 2: fitting random labels and the role of regularizers (seed 001).

Zhang et al., "Understanding deep learning requires rethinking generalization"
(ICLR 2017), Fig. 1 and Table 1, on the study's data with scikit-learn MLPs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import datasets
from .common import load_data, rng_for, split, train
from .plotting import figure, none_to_nan
from .registry import Config, Experiment


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 30, "epochs": 50, "hidden": [256], "ps": [0.2, 0.6, 1.0]}
    return {"per_class": 100, "epochs": 250, "hidden": [512], "ps": [0.2, 0.4, 0.6, 0.8, 1.0]}


# ------------------------------------------------------------------- fitting
def fitting_jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    s = _sizes(cfg.quick)
    base = {
        "data": cfg.data,
        "per_class": s["per_class"],
        "epochs": s["epochs"],
        "hidden": s["hidden"],
        "solver": "adam",
        "lr": 0.005,
    }
    settings = [("true", {"corruption": "none", "p": 0.0})]
    settings += [(f"p{p:.1f}", {"corruption": "labels", "p": p}) for p in s["ps"]]
    settings += [(c, {"corruption": c, "p": None}) for c in ("shuffled_pixels", "random_pixels")]
    settings += [("gaussian", {"corruption": "gaussian", "p": None})]
    if not cfg.quick:  # the paper's plain SGD, true and random labels
        for name, extra in (("true", {"corruption": "none", "p": 0.0}), ("p1.0", None)):
            extra = extra or {"corruption": "labels", "p": 1.0}
            settings.append((f"{name}-sgd", {**extra, "solver": "sgd", "lr": 0.01}))
    return [(name, {**base, **extra}) for name, extra in settings]


def fitting_run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    X, y = sp.X, sp.y
    kind = params["corruption"]
    gen = rng_for(seed, "fitting", kind, params["p"])
    if kind == "labels":
        y = datasets.corrupt_labels(y, params["p"], gen, n_classes=sp.n_classes)
    elif kind == "shuffled_pixels":
        perm = gen.permutation(X.shape[1])  # the same permutation for train and test
        X = X[:, perm]
        sp = dataclasses.replace(sp, X=X, X_test=sp.X_test[:, perm])
    elif kind == "random_pixels":
        X = datasets.random_pixels(X, gen)
    elif kind == "gaussian":
        X = datasets.gaussian_like(X, gen)
    t = train(
        X,
        y,
        hidden=tuple(params["hidden"]),
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        solver=params["solver"],
        lr=params["lr"],
        X_test=sp.X_test,
        y_test=sp.y_test,
    )
    acc = np.asarray(t.history["train_acc"])
    hit = np.flatnonzero(acc >= 1.0)
    return {
        "history": t.history,
        "epochs_to_fit": int(hit[0]) + 1 if hit.size else None,
        "final_train_acc": float(acc[-1]),
        "test_acc": float(t.history["test_acc"][-1]),
        "label_noise": float(np.mean(y != sp.y)),
        "n_train": int(X.shape[0]),
    }


def fitting_summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    order = [name for name, _ in fitting_jobs(cfg)]
    ps = [0.0] + _sizes(cfg.quick)["ps"]
    by_p = {"p": [], "epochs_to_fit": [], "test_acc": [], "final_train_acc": []}
    for p in ps:
        r = results["true" if p == 0 else f"p{p:.1f}"]
        by_p["p"].append(p)
        for k in ("epochs_to_fit", "test_acc", "final_train_acc"):
            by_p[k].append(r[k])
    settings = {
        name: {
            k: results[name][k]
            for k in ("epochs_to_fit", "final_train_acc", "test_acc", "label_noise")
        }
        for name in order
    }
    return {
        "order": order,
        "curves": {name: results[name]["history"] for name in order},
        "settings": settings,
        "by_p": by_p,
        "n_train": results["true"]["n_train"],
    }


def fitting_figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, (a1, a2) = figure(2)
    for name in d["order"]:
        h = d["curves"][name]
        a1.plot(h["epoch"], h["loss"], label=name)
        a2.plot(h["epoch"], h["train_acc"], label=name)
    a1.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
    a2.set(xlabel="epoch", ylabel="training accuracy", title="Training accuracy")
    a1.legend(fontsize=7)
    fig2, (b1, b2) = figure(2)
    p = d["by_p"]["p"]
    b1.plot(p, none_to_nan(d["by_p"]["epochs_to_fit"]), "o-")
    b1.set(xlabel="label corruption p", ylabel="epochs to 100% train accuracy", title="Time to fit")
    b2.plot(p, d["by_p"]["test_acc"], "o-", label="test")
    b2.plot(p, d["by_p"]["final_train_acc"], "s--", label="train (final)")
    b2.set(xlabel="label corruption p", ylabel="accuracy", title="Accuracy vs corruption")
    b2.legend()
    return [("fitting_curves", fig), ("fitting_vs_p", fig2)]


def fitting_tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        [name, s["label_noise"], s["epochs_to_fit"], s["final_train_acc"], s["test_acc"]]
        for name, s in d["settings"].items()
    ]
    return [
        {
            "title": "Fitting random labels",
            "columns": ["setting", "labels changed", "epochs to fit", "train acc", "test acc"],
            "rows": rows,
        }
    ]


def fitting_reading(d: dict[str, Any]) -> str:
    s = d["settings"]
    fitted = [n for n, v in s.items() if v["epochs_to_fit"] is not None]
    t, r = s["true"], s.get("p1.0", {})
    et, er = t["epochs_to_fit"], r.get("epochs_to_fit")
    speed = (
        f"true labels are fitted after {et} epochs, completely random labels after {er}"
        if et is not None and er is not None
        else "not every setting reached 100% training accuracy within the epoch budget"
    )
    return (
        f"{len(fitted)} of {len(s)} settings reach 100% training accuracy on "
        f"{d['n_train']} training samples: {speed}. Test accuracy falls from "
        f"{t['test_acc']:.3f} with true labels to {r.get('test_acc', float('nan')):.3f} with "
        "random ones, so the same network and optimizer memorize noise as "
        "readily as they learn the signal, only more slowly."
    )


# --------------------------------------------------------------- regularizers
_REGS = ("none", "weight_decay", "augmentation", "early_stopping", "all")


def reg_jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    s = _sizes(cfg.quick)
    data = load_data(cfg.data)
    regs = [r for r in _REGS if data.image_side or r not in ("augmentation", "all")]
    out = []
    for labels in ("real", "random"):
        for reg in regs:
            out.append(
                (
                    f"{labels}-{reg}",
                    {
                        "data": cfg.data,
                        "labels": labels,
                        "regularizer": reg,
                        "per_class": s["per_class"],
                        "epochs": 40 if cfg.quick else 200,
                        "hidden": s["hidden"],
                        "alpha": 0.05,
                        "patience": 5 if cfg.quick else 20,
                    },
                )
            )
    return out


def reg_run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    X, y = sp.X, sp.y
    if params["labels"] == "random":
        y = datasets.corrupt_labels(y, 1.0, rng_for(seed, "reg-labels"), n_classes=sp.n_classes)
    reg = params["regularizer"]
    wd = reg in ("weight_decay", "all")
    aug = reg in ("augmentation", "all")
    es = reg in ("early_stopping", "all")
    validation = None
    Xtr, ytr = X, y
    if es:  # hold out a fifth of the training set for the stopping rule
        perm = rng_for(seed, "reg-val").permutation(X.shape[0])
        k = X.shape[0] // 5
        validation = (X[perm[:k]], y[perm[:k]])
        Xtr, ytr = X[perm[k:]], y[perm[k:]]
    t = train(
        Xtr,
        ytr,
        hidden=tuple(params["hidden"]),
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        alpha=params["alpha"] if wd else 0.0,
        augment_side=sp.image_side if aug else None,
        validation=validation,
        patience=params["patience"] if es else None,
        X_test=sp.X_test,
        y_test=sp.y_test,
    )
    return {
        "train_acc": float(t.clf.score(Xtr, ytr)),
        "test_acc": float(t.clf.score(sp.X_test, sp.y_test)),
        "epochs_run": len(t.history["epoch"]),
        "stopped_epoch": t.stopped_epoch,
    }


def reg_summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    regs = [r for r in _REGS if f"real-{r}" in results]
    return {
        "regularizers": regs,
        "real": {r: results[f"real-{r}"] for r in regs},
        "random": {r: results[f"random-{r}"] for r in regs},
    }


def reg_figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, axes = figure(2)
    regs = d["regularizers"]
    x = np.arange(len(regs))
    for ax, labels in zip(axes, ("real", "random"), strict=True):
        ax.bar(x - 0.2, [d[labels][r]["train_acc"] for r in regs], 0.4, label="train")
        ax.bar(x + 0.2, [d[labels][r]["test_acc"] for r in regs], 0.4, label="test")
        ax.set_xticks(x, [r.replace("_", "\n") for r in regs], fontsize=7)
        ax.set(ylim=(0, 1.05), ylabel="accuracy", title=f"{labels} labels")
        ax.legend(fontsize=7)
    return [("regularizers", fig)]


def reg_tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for labels in ("real", "random"):
        for r in d["regularizers"]:
            v = d[labels][r]
            rows.append([labels, r, v["train_acc"], v["test_acc"], v["epochs_run"]])
    return [
        {
            "title": "Regularizers",
            "columns": ["labels", "regularizer", "train acc", "test acc", "epochs"],
            "rows": rows,
        }
    ]


def reg_reading(d: dict[str, Any]) -> str:
    rand = d["random"]
    real = d["real"]
    best = max(d["regularizers"], key=lambda r: real[r]["test_acc"])
    return (
        f"Without regularization the network reaches {real['none']['train_acc']:.3f} training "
        f"accuracy on real labels and {rand['none']['train_acc']:.3f} on random labels. With "
        "every explicit regularizer the random-label training accuracy stays at "
        f"{min(rand[r]['train_acc'] for r in d['regularizers']):.3f} or more, while its test "
        f"accuracy stays at most {max(rand[r]['test_acc'] for r in d['regularizers']):.3f}; "
        f"the best real-label test accuracy ({real[best]['test_acc']:.3f}) comes with "
        f"'{best}' against {real['none']['test_acc']:.3f} without. How far the regularizers "
        "lower the random-label training accuracy is the measure of how much memorization "
        "they prevent."
    )


def _setting_fit(cfg: Config) -> str:
    s = _sizes(cfg.quick)
    return (
        f"{cfg.data}: {s['per_class']} training samples per class, MLP {s['hidden']} ReLU, "
        f"Adam lr 0.005, batch 64, {s['epochs']} epochs"
        + ("" if cfg.quick else "; plus SGD (lr 0.01, momentum 0.9) for true and random labels")
    )


def _setting_reg(cfg: Config) -> str:
    s = _sizes(cfg.quick)
    return (
        f"{cfg.data}: {s['per_class']} per class, MLP {s['hidden']} ReLU, Adam; weight decay "
        "alpha 0.05, random 1-pixel shifts, early stopping on a held-out fifth of the "
        "training set"
    )


EXPERIMENTS = [
    Experiment(
        name="fitting",
        title="Fitting random labels",
        seed_document="001",
        references="Zhang et al., ICLR 2017, Fig. 1",
        jobs=fitting_jobs,
        run=fitting_run,
        summarize=fitting_summarize,
        figures=fitting_figures,
        tables=fitting_tables,
        reading=fitting_reading,
        setting=_setting_fit,
    ),
    Experiment(
        name="regularizers",
        title="Regularizers",
        seed_document="001",
        references="Zhang et al., ICLR 2017, Table 1",
        jobs=reg_jobs,
        run=reg_run,
        summarize=reg_summarize,
        figures=reg_figures,
        tables=reg_tables,
        reading=reg_reading,
        setting=_setting_reg,
    ),
]

"""Sections 1 and 2: fitting random labels and the role of regularizers (seed 001).

Zhang et al., "Understanding deep learning requires rethinking generalization"
(ICLR 2017), Fig. 1 and Table 1, on the study's data with scikit-learn MLPs.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from .. import datasets
from .common import load_data, rng_for, split, train
from .plotting import band, band_note, figure, legend_below, legend_right, style
from .registry import Config, Experiment
from .spread import at, paper_row, pm, sd_of, separated, spread_note


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 30, "epochs": 50, "hidden": [256], "ps": [0.2, 0.6, 1.0]}
    return {"per_class": 100, "epochs": 180, "hidden": [512], "ps": [0.2, 0.4, 0.6, 0.8, 1.0]}


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
        "n_classes": load_data(cfg.data).n_classes,
        "data": cfg.data,
    }


def fitting_figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    sd = d.get("spread") or {}
    fig, (a1, a2) = figure(2, width=4.0, height=3.4)
    for i, name in enumerate(d["order"]):
        h, e = d["curves"][name], at(sd, "curves", name) or {}
        st = {**style(i), "marker": None}
        band(a1, h["epoch"], h["loss"], e.get("loss"), label=name, **st)
        band(a2, h["epoch"], h["train_acc"], e.get("train_acc"), label=name, **st)
    a1.set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)", yscale="log")
    a1.set_title("Training loss")
    a2.set(xlabel="epoch", ylabel="training accuracy (fraction)", ylim=(-0.02, 1.02))
    a2.set_title("Training accuracy")
    legend_right(fig, a2, title="setting")
    fig2, (b1, b2) = figure(2, width=4.0, height=3.4)
    p = d["by_p"]["p"]
    band(
        b1,
        p,
        d["by_p"]["epochs_to_fit"],
        at(sd, "by_p", "epochs_to_fit"),
        errorbars=True,
        marker="o",
    )
    b1.set(xlabel="label corruption p", ylabel="epochs to 100% training accuracy")
    b1.set_title("Time to fit (gaps: not fitted)")
    band(b2, p, d["by_p"]["test_acc"], at(sd, "by_p", "test_acc"), label="test", marker="o")
    band(
        b2,
        p,
        d["by_p"]["final_train_acc"],
        at(sd, "by_p", "final_train_acc"),
        label="train (final)",
        marker="s",
        ls="--",
    )
    b2.set(xlabel="label corruption p", ylabel="accuracy (fraction)", ylim=(-0.02, 1.02))
    b2.set_title("Accuracy vs corruption")
    legend_below(b2)
    return [
        (
            "fitting_curves",
            fig,
            f"Training loss (log scale) and training accuracy per epoch for each setting "
            f"({d['n_train']} training samples): true labels, label corruption p, shuffled "
            "or random pixels, Gaussian inputs, and the SGD runs. " + band_note(d),
        ),
        (
            "fitting_vs_p",
            fig2,
            "Epochs until the training accuracy first reaches 100% (missing where a seed "
            "never did) and final train / test accuracy, against the fraction p of labels "
            "replaced by random ones. " + band_note(d),
        ),
    ]


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
    n_seeds = d.get("n_seeds", 1)
    fitted = [n for n, v in s.items() if v["epochs_to_fit"] is not None]
    t, r = s["true"], s.get("p1.0")
    seeds = "in every seed " if n_seeds > 1 else ""
    head = (
        f"{len(fitted)} of {len(s)} settings reach 100% training accuracy {seeds}on "
        f"{d['n_train']} training samples within the epoch budget"
    )
    if r is None:
        return head + ". " + spread_note(n_seeds)
    et, er = t["epochs_to_fit"], r["epochs_to_fit"]
    e_t, e_r = (
        sd_of(d, "settings", "true", "epochs_to_fit"),
        sd_of(d, "settings", "p1.0", "epochs_to_fit"),
    )
    if et is not None and er is not None:
        slower = separated(er, e_r, et, e_t)
        pace = (
            "more slowly, by more than the spread over seeds"
            if slower and er > et
            else "faster, by more than the spread over seeds"
            if slower
            else "at a pace within the spread over seeds"
            if slower is False
            else ("more slowly" if er > et else "no more slowly")
        )
        fit = (
            f": true labels are fitted after {pm(et, e_t, '.0f')} epochs, completely random "
            f"labels after {pm(er, e_r, '.0f')}, so the network memorizes noise, {pace}"
        )
    elif et is not None and r["final_train_acc"] >= 0.99:
        fit = (
            f": true labels are fitted after {pm(et, e_t, '.0f')} epochs; completely random "
            f"labels reach {r['final_train_acc']:.3f} training accuracy but not 100% within "
            "the budget: nearly memorized, more slowly"
        )
    elif et is not None:
        fit = (
            f": true labels are fitted after {pm(et, e_t, '.0f')} epochs, but completely "
            f"random labels are not (final training accuracy {r['final_train_acc']:.3f}), so "
            "within this budget the network does not memorize noise as it learns the signal"
        )
    else:
        fit = (
            f": not even the true labels are fitted (final training accuracy "
            f"{t['final_train_acc']:.3f}; random labels {r['final_train_acc']:.3f}), so this "
            "run says nothing about how readily the network memorizes noise: the budget is "
            "too small"
        )
    tt, tr = t["test_acc"], r["test_acc"]
    e_tt, e_tr = sd_of(d, "settings", "true", "test_acc"), sd_of(d, "settings", "p1.0", "test_acc")
    gap = separated(tt, e_tt, tr, e_tr)
    judged = (
        ""
        if gap is None
        else " (separated by more than their spread)"
        if gap
        else " (within their spread)"
    )
    return (
        f"{head}{fit}. Test accuracy is {pm(tt, e_tt)} with true labels and {pm(tr, e_tr)} "
        f"with random ones{judged}. " + spread_note(n_seeds)
    )


def fitting_papers(d: dict[str, Any]) -> list[list[str]]:
    s = d["settings"]
    r, t = s.get("p1.0"), s["true"]
    n_classes = d.get("n_classes", 10)
    why_data = f"{d.get('data', 'digits')} with {d['n_train']} training samples, not CIFAR-10"
    rows = []
    if r is not None:
        tr = r["final_train_acc"]
        rows.append(
            paper_row(
                "Zhang et al. 2017, Table 1",
                "CIFAR-10, MLP 1x512, random labels, no regularizer",
                "99.34% train accuracy (MLP 3x512: 100.0%)",
                f"{pm(tr, sd_of(d, 'settings', 'p1.0', 'final_train_acc'))} train accuracy",
                "agree" if tr >= 0.99 else "differ",
                (
                    "random labels fitted, as in the paper; "
                    if tr >= 0.99
                    else "the epoch budget is too short to fit random labels here; "
                )
                + why_data,
            )
        )
        te = r["test_acc"]
        e = sd_of(d, "settings", "p1.0", "test_acc") or 0.0
        chance = 1.0 / n_classes
        near = abs(te - chance) <= max(2 * e, 0.03)
        rows.append(
            paper_row(
                "Zhang et al. 2017, Table 1",
                "CIFAR-10, MLP 1x512, random labels",
                "10.61% test accuracy (chance: 10%)",
                f"{pm(te, sd_of(d, 'settings', 'p1.0', 'test_acc'))} test accuracy "
                f"(chance {chance:.3f})",
                "agree" if near else "differ",
                "both at chance level" if near else "ours is not within 0.03 of chance",
            )
        )
        et, er = t["epochs_to_fit"], r["epochs_to_fit"]
        if et is not None and er is not None:
            verdict, why = (
                ("agree", "random labels take longer")
                if er > et
                else ("differ", "random labels are not slower here")
            )
            ours = f"{er:.0f} vs {et:.0f} epochs to fit"
        else:
            verdict, why = "not comparable", "not every run reached 100% training accuracy"
            ours = "not fitted within the budget"
        rows.append(
            paper_row(
                "Zhang et al. 2017, Fig. 1a",
                "CIFAR-10, Inception / AlexNet / MLP, SGD",
                "random labels are fitted more slowly than true labels (a small factor)",
                ours,
                verdict,
                why,
            )
        )
    ps, acc = d["by_p"]["p"], d["by_p"]["test_acc"]
    falls = all(b <= a + 0.02 for a, b in itertools.pairwise(acc)) and acc[-1] < acc[0]
    rows.append(
        paper_row(
            "Zhang et al. 2017, Fig. 1c",
            "CIFAR-10, label corruption p from 0 to 1",
            "test error grows steadily with p",
            "test accuracy "
            + ", ".join(f"{a:.2f}" for a in acc)
            + " at p = "
            + ", ".join(f"{p:g}" for p in ps),
            "agree" if falls else "differ",
            "falls with p (within 0.02 per step)" if falls else "not monotone in p",
        )
    )
    return rows


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
                        "epochs": 40 if cfg.quick else 150,
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
        "n_classes": load_data(cfg.data).n_classes,
    }


def reg_figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    fig, axes = figure(2, width=4.2, height=3.4)
    regs = d["regularizers"]
    sd = d.get("spread") or {}
    x = np.arange(len(regs))
    for ax, labels in zip(axes, ("real", "random"), strict=True):
        for off, key, name in ((-0.2, "train_acc", "train"), (0.2, "test_acc", "test")):
            m = [d[labels][r][key] for r in regs]
            e = [at(sd, labels, r, key) for r in regs]
            err = None if all(v is None for v in e) else [v or 0.0 for v in e]
            ax.bar(x + off, m, 0.4, yerr=err, capsize=2, label=name)
        ax.set_xticks(x, [r.replace("_", "\n") for r in regs], fontsize=7)
        ax.set(ylim=(0, 1.05), ylabel="accuracy (fraction)", title=f"{labels} labels")
        legend_below(ax)
    return [
        (
            "regularizers",
            fig,
            "Final training and test accuracy with each explicit regularizer (weight decay, "
            "1-pixel-shift augmentation, early stopping, all together), real labels (left) "
            "and random labels (right). " + band_note(d).replace("bands / ", ""),
        )
    ]


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


def reg_effect(acc: float, none: float) -> str:
    """How much a regularizer keeps the network from fitting random labels."""
    if acc <= 0.5:
        return "nearly prevents fitting them"
    if acc < 0.95 * none:
        return "partly prevents fitting them"
    return "does not prevent fitting them"


def reg_reading(d: dict[str, Any]) -> str:
    rand, real = d["random"], d["real"]
    regs = [r for r in d["regularizers"] if r != "none"]
    none_tr = rand["none"]["train_acc"]
    parts = []
    for r in regs:
        acc = rand[r]["train_acc"]
        parts.append(
            f"{r.replace('_', ' ')}: {pm(acc, sd_of(d, 'random', r, 'train_acc'))} "
            f"({reg_effect(acc, none_tr)})"
        )
    gains = []
    for r in regs:
        g = separated(
            real[r]["test_acc"],
            sd_of(d, "real", r, "test_acc"),
            real["none"]["test_acc"],
            sd_of(d, "real", "none", "test_acc"),
        )
        delta = real[r]["test_acc"] - real["none"]["test_acc"]
        judged = "" if g is None else " (beyond the spread)" if g else " (within the spread)"
        gains.append(f"{r.replace('_', ' ')} {delta:+.3f}{judged}")
    return (
        f"Without regularization the network reaches {pm(real['none']['train_acc'], None)} "
        f"training accuracy on real labels and "
        f"{pm(none_tr, sd_of(d, 'random', 'none', 'train_acc'))} "
        "on random labels. Random-label training accuracy with each regularizer: "
        + "; ".join(parts)
        + ". Against no regularizer, the real-label test accuracy changes by "
        + ", ".join(gains)
        + f" (from {pm(real['none']['test_acc'], sd_of(d, 'real', 'none', 'test_acc'))}). How "
        "far a regularizer lowers the random-label training accuracy measures how much "
        "memorization it prevents within the epoch budget. " + spread_note(d.get("n_seeds", 1))
    )


def reg_papers(d: dict[str, Any]) -> list[list[str]]:
    real, rand = d["real"], d["random"]
    none_te = real["none"]["test_acc"]
    chance = 1.0 / d.get("n_classes", 10)
    regs = [r for r in d["regularizers"] if r != "none"]
    best = max(regs, key=lambda r: real[r]["test_acc"]) if regs else "none"
    gain = real[best]["test_acc"] - none_te
    fits = rand["none"]["train_acc"]
    return [
        paper_row(
            "Zhang et al. 2017, Table 1",
            "CIFAR-10, MLP 1x512, no regularizer",
            "50.51% test accuracy (chance 10%): regularizers are not necessary",
            f"{pm(none_te, sd_of(d, 'real', 'none', 'test_acc'))} test accuracy without any "
            f"(chance {chance:.3f})",
            "agree" if none_te > 2 * chance else "differ",
            "generalizes well above chance without regularizers"
            if none_te > 2 * chance
            else "does not generalize without regularizers",
        ),
        paper_row(
            "Zhang et al. 2017, Table 1",
            "CIFAR-10, Inception: crop + weight decay vs none; MLP 1x512: weight decay vs none",
            "a few points at most: 89.05% vs 85.75% (Inception), 50.39% vs 50.51% (MLP 1x512)",
            f"best regularizer '{best}': {gain:+.3f} test accuracy",
            "agree" if gain <= 0.05 else "differ",
            "a small gain, as in the paper" if gain <= 0.05 else "a larger gain than the paper's",
        ),
        paper_row(
            "Zhang et al. 2017, Table 1",
            "CIFAR-10, MLP 1x512 / 3x512, random labels, no regularizer",
            "99.34% / 100.0% train accuracy",
            f"{pm(fits, sd_of(d, 'random', 'none', 'train_acc'))} train accuracy",
            "agree" if fits >= 0.99 else "differ",
            "random labels fitted" if fits >= 0.99 else "not fitted within the epoch budget",
        ),
        paper_row(
            "Zhang et al. 2017, Sec. 2.2",
            "CIFAR-10, random labels with regularizers",
            "regularizers are not sufficient to control generalization (no number in the "
            "seed notes' table)",
            "; ".join(f"{r}: {rand[r]['train_acc']:.2f} train" for r in regs),
            "not comparable",
            "the seed notes' table has no random-label rows with regularizers; here "
            "augmentation or early stopping can stop the fit within our short budget",
        ),
    ]


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
        papers=fitting_papers,
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
        papers=reg_papers,
        setting=_setting_reg,
    ),
]

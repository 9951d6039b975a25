"""Section 5: generalization intervals (seed 004; Salman & Liu)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import datasets, intervals
from .common import histogram, load_data, random_labels, split, summary, train
from .plotting import bar_hist, figure
from .registry import Config, Experiment


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "per_class": 20,
            "epochs": 25,
            "hidden": 48,
            "pairs": 150,
            "triangles": 30,
            "checkpoints": [1, 3, 6, 12, 25],
            "traj_pairs": 100,
        }
    return {
        "per_class": 100,
        "epochs": 300,
        "hidden": 256,
        "pairs": 5000,
        "triangles": 1000,
        "checkpoints": [1, 2, 4, 8, 15, 30, 60, 100, 150, 200, 300],
        "traj_pairs": 2000,
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    s = _sizes(cfg.quick)
    base = {"data": cfg.data, **{k: s[k] for k in ("per_class", "epochs", "hidden", "pairs")}}
    out = [
        (
            f"labels-{lab}",
            {**base, "kind": "labels", "labels": lab, "depth": 2, "triangles": s["triangles"]},
        )
        for lab in ("real", "random")
    ]
    side = load_data(cfg.data).image_side
    dims = ["pool1", "pool2", "pool4"] if side and side % 4 == 0 else ["pool1"]
    for dim in [*dims, "moons"]:
        for lab in ("real", "random"):
            out.append(
                (
                    f"dim-{dim}-{lab}",
                    {**base, "kind": "dim", "input": dim, "labels": lab, "depth": 2},
                )
            )
    for depth in (1, 2, 4):
        for lab in ("real", "random"):
            out.append(
                (f"depth{depth}-{lab}", {**base, "kind": "depth", "labels": lab, "depth": depth})
            )
    out.append(
        (
            "trajectory",
            {
                **base,
                "kind": "trajectory",
                "labels": "real",
                "depth": 2,
                "checkpoints": s["checkpoints"],
                "pairs": s["traj_pairs"],
            },
        )
    )
    return out


def _setup(params: dict[str, Any], seed: int) -> Any:
    data = load_data("moons" if params.get("input") == "moons" else params["data"])
    sp = split(data, params["per_class"], seed)
    X, Xt = sp.X, sp.X_test
    if params.get("input", "pool1") not in ("pool1", "moons"):
        f = int(params["input"][4:])
        X, Xt = datasets.average_pool(X, f), datasets.average_pool(Xt, f)
    y = sp.y if params["labels"] == "real" else random_labels(sp.y, sp.n_classes, seed)
    return sp, X, y, Xt


def _mean_gi(net: Any, X: np.ndarray, y: np.ndarray, pairs: int, seed: int) -> np.ndarray:
    a, d, _ = intervals.pairwise(X, y, max_pairs=pairs, rng=seed)
    return np.asarray(intervals.generalization_intervals(net, a, d, t_range=(-1.0, 2.0)).length)


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    sp, X, y, Xt = _setup(params, seed)
    hidden = (params["hidden"],) * params["depth"]
    snaps = params.get("checkpoints", [])
    t = train(
        X,
        y,
        hidden=hidden,
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        X_test=Xt,
        y_test=sp.y_test,
        snapshot_epochs=snaps,
    )
    net = t.network
    base = {
        "train_acc": t.history["train_acc"][-1],
        "test_acc": t.history["test_acc"][-1],
        "input_dim": int(X.shape[1]),
    }
    if params["kind"] == "trajectory":
        gi = [float(_mean_gi(n, X, y, params["pairs"], seed).mean()) for _, n in t.snapshots]
        val = [t.history["test_acc"][e - 1] for e, _ in t.snapshots]
        r = float(np.corrcoef(gi, val)[0, 1]) if np.std(gi) > 0 and np.std(val) > 0 else None
        return {
            **base,
            "epochs": [e for e, _ in t.snapshots],
            "mean_gi": gi,
            "val_acc": val,
            "correlation": r,
        }
    pw = _mean_gi(net, X, y, params["pairs"], seed)
    out = {**base, "pairwise": summary(pw)}
    if params["kind"] != "labels":
        return out
    bins = np.linspace(0.0, 3.0, 31)
    a, d, _ = intervals.triangle_midlines(X, y, max_triangles=params["triangles"], rng=seed)
    mid = np.asarray(
        intervals.generalization_intervals(net, a, d, t_range=intervals.MIDLINE_RANGE).length
    )
    pr, no = [], []
    classes = np.unique(y)
    for c in classes:
        a, d, _ = intervals.principal(X, y, int(c), 0)
        pr.append(np.asarray(intervals.generalization_intervals(net, a, d, t_range=(-2, 2)).length))
        nxt = int(classes[(np.searchsorted(classes, c) + 1) % classes.size])
        a, d, _ = intervals.normal(X, y, int(c), nxt)
        no.append(np.asarray(intervals.generalization_intervals(net, a, d, t_range=(-2, 2)).length))
    dists = {
        "pairwise": pw,
        "midline": mid,
        "principal": np.concatenate(pr),
        "normal": np.concatenate(no),
    }
    out["directions"] = {
        k: {
            "hist": histogram(
                v,
                bins
                if k == "pairwise"
                else np.linspace(0.0, 5.0, 31)
                if k == "midline"
                else np.linspace(0.0, 4.0, 31),
            ),
            **summary(v),
        }
        for k, v in dists.items()
    }
    return out


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    dims = sorted(
        {k.split("-")[1] for k in results if k.startswith("dim-")},
        key=lambda s: -results[f"dim-{s}-real"]["input_dim"],
    )
    return {
        "labels": {lab: results[f"labels-{lab}"] for lab in ("real", "random")},
        "dims": [
            {
                "input": s,
                "input_dim": results[f"dim-{s}-real"]["input_dim"],
                **{
                    lab: results[f"dim-{s}-{lab}"]["pairwise"]["mean"] for lab in ("real", "random")
                },
            }
            for s in dims
        ],
        "depths": [
            {
                "depth": k,
                **{
                    lab: results[f"depth{k}-{lab}"]["pairwise"]["mean"]
                    for lab in ("real", "random")
                },
            }
            for k in (1, 2, 4)
        ],
        "trajectory": results["trajectory"],
    }


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, axes = figure(4)
    for ax, kind in zip(axes, ("pairwise", "midline", "principal", "normal"), strict=True):
        for lab in ("real", "random"):
            bar_hist(ax, d["labels"][lab]["directions"][kind]["hist"], f"{lab} labels")
        ax.set(xlabel="interval length (t units)", ylabel="density", title=kind)
    axes[0].legend(fontsize=7)
    fig2, (a, b, c) = figure(3)
    x = [r["input_dim"] for r in d["dims"]]
    for lab in ("real", "random"):
        a.plot(x, [r[lab] for r in d["dims"]], "o-", label=lab)
        b.plot([r["depth"] for r in d["depths"]], [r[lab] for r in d["depths"]], "o-", label=lab)
    a.set(
        xscale="log", xlabel="input dimension", ylabel="mean pairwise GI", title="GI vs dimension"
    )
    b.set(xlabel="hidden layers", ylabel="mean pairwise GI", title="GI vs depth")
    a.legend(fontsize=7)
    tr = d["trajectory"]
    c.plot(tr["val_acc"], tr["mean_gi"], "o-")
    c.set(
        xlabel="validation accuracy",
        ylabel="mean pairwise GI",
        title="Over training (r = {})".format(
            "n/a" if tr["correlation"] is None else f"{tr['correlation']:.3f}"
        ),
    )
    return [("intervals_distributions", fig), ("intervals_trends", fig2)]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        [lab, kind, v["mean"], v["median"], v["n"]]
        for lab in ("real", "random")
        for kind, v in d["labels"][lab]["directions"].items()
    ]
    return [
        {
            "title": "Generalization intervals by direction",
            "rows": rows,
            "columns": ["labels", "direction", "mean", "median", "lines"],
        },
        {
            "title": "Mean pairwise GI vs input dimension",
            "columns": ["input", "dim", "real", "random"],
            "rows": [[r["input"], r["input_dim"], r["real"], r["random"]] for r in d["dims"]],
        },
        {
            "title": "Mean pairwise GI vs depth",
            "columns": ["hidden layers", "real", "random"],
            "rows": [[r["depth"], r["real"], r["random"]] for r in d["depths"]],
        },
        {
            "title": "Over training",
            "columns": ["correlation(mean GI, val acc)"],
            "rows": [[d["trajectory"]["correlation"]]],
        },
    ]


def reading(d: dict[str, Any]) -> str:
    re_, ra = (d["labels"][k]["directions"]["pairwise"]["mean"] for k in ("real", "random"))
    r = d["trajectory"]["correlation"]
    return (
        f"Along pairwise lines between same-label training points, a network trained on real "
        f"labels keeps its class over a mean interval of {re_:.3g} (t units, the pair spans "
        f"[0, 1]) against {ra:.3g} for random labels: with real labels the training points "
        "are joined by wide regions of one class, with random labels the network carves "
        "small pockets around each point. Over training the mean interval and the "
        "validation accuracy have correlation "
        f"{'n/a' if r is None else f'{r:.3f}'}."
    )


EXPERIMENTS = [
    Experiment(
        name="intervals",
        title="Generalization intervals",
        seed_document="004",
        references="Salman & Liu, towards quantifying intrinsic generalization of deep ReLU "
        "networks",
        jobs=jobs,
        run=run,
        summarize=summarize,
        figures=figures,
        tables=tables,
        reading=reading,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, ReLU MLP width "
            f"{_sizes(cfg.quick)['hidden']}, Adam, {_sizes(cfg.quick)['epochs']} epochs; "
            f"{_sizes(cfg.quick)['pairs']} same-label pairs on t in [-1, 2]; dimension via "
            "average pooling and two moons"
        ),
    )
]

"""Section 5: generalization intervals (seed 004; Salman & Liu)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import datasets, intervals
from .common import (
    cnn_label_runs,
    histogram,
    load_data,
    random_labels,
    skipped_text,
    split,
    summary,
    train,
)
from .plotting import band, band_note, bar_hist, figure, legend_below, legend_right, style
from .registry import Config, Experiment
from .spread import at, paper_row, pm, sd_of, separated, spread_note


# Salman & Liu's networks: three hidden layers of 128 ReLU units (the main runs), and 1, 2
# and 4 hidden layers of 512, 256 and 128 units (their Fig. 6, the depth runs).
def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "per_class": 20,
            "epochs": 25,
            "hidden": 48,
            "depth_widths": {1: 96, 2: 64, 4: 32},
            "pairs": 150,
            "triangles": 30,
            "checkpoints": [1, 3, 6, 12, 25],
            "traj_pairs": 100,
        }
    return {
        "per_class": 100,
        "epochs": 150,
        "hidden": 128,
        "depth_widths": {1: 512, 2: 256, 4: 128},
        "pairs": 1000,
        "triangles": 300,
        "checkpoints": [1, 2, 4, 8, 15, 30, 60, 100, 150],
        "traj_pairs": 500,
    }


MAIN_DEPTH = 3


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    s = _sizes(cfg.quick)
    base = {"data": cfg.data, **{k: s[k] for k in ("per_class", "epochs", "hidden", "pairs")}}
    out = [
        (
            f"labels-{lab}",
            {
                **base,
                "kind": "labels",
                "labels": lab,
                "depth": MAIN_DEPTH,
                "triangles": s["triangles"],
            },
        )
        for lab in ("real", "random")
    ]
    side = load_data(cfg.data).image_side
    dims = ["pool2", "pool4"] if side and side % 4 == 0 else []  # pool1: the labels runs
    for dim in [*dims, "moons"]:
        for lab in ("real", "random"):
            out.append(
                (
                    f"dim-{dim}-{lab}",
                    {**base, "kind": "dim", "input": dim, "labels": lab, "depth": MAIN_DEPTH},
                )
            )
    for depth, width in s["depth_widths"].items():
        for lab in ("real", "random"):
            out.append(
                (
                    f"depth{depth}-{lab}",
                    {**base, "kind": "depth", "labels": lab, "depth": depth, "hidden": width},
                )
            )
    out.append(
        (
            "trajectory",
            {
                **base,
                "kind": "trajectory",
                "labels": "real",
                "depth": MAIN_DEPTH,
                "checkpoints": s["checkpoints"],
                "pairs": s["traj_pairs"],
            },
        )
    )
    out.append(("cnn", {**base, "kind": "cnn", "cnn": _cnn_sizes(cfg.quick)}))
    return out


def _cnn_sizes(quick: bool) -> dict[str, Any]:
    return {"channels": [4, 8], "epochs": 20} if quick else {"channels": [8, 16], "epochs": 100}


def _cnn(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Mean pairwise generalization interval of a small CNN with max pooling
    (:func:`common.cnn_label_runs`), trained on real and on random labels, on the same kind
    of pairs as the MLPs. Skipped without torch or image data."""

    def measure(net: Any, sp: Any, y: np.ndarray) -> dict[str, float]:
        return {"mean": float(_mean_gi(net, sp.X, y, params["pairs"], seed).mean())}

    return cnn_label_runs(params, seed, measure)


def cnn_text(cnn: dict[str, Any] | None) -> str:
    """The CNN row's reading (computed from its numbers)."""
    skipped = skipped_text(cnn)
    if skipped is not None:
        return skipped
    re_, ra = cnn["real"], cnn["random"]
    word = "longer" if re_["mean"] > ra["mean"] else "not longer"
    return (
        f"A small CNN with max pooling ({cnn['channels'][0]} and {cnn['channels'][1]} "
        f"channels) has mean pairwise interval {re_['mean']:.3g} with real labels (train "
        f"accuracy {re_['train_acc']:.2f}) and {ra['mean']:.3g} with random labels (train "
        f"accuracy {ra['train_acc']:.2f}): {word} with real labels. "
    )


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
    if params["kind"] == "cnn":
        return _cnn(params, seed)
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
    lab_runs = {lab: results[f"labels-{lab}"] for lab in ("real", "random")}
    dims = [
        {
            "input": "pool1",
            "input_dim": lab_runs["real"]["input_dim"],
            **{lab: lab_runs[lab]["pairwise"]["mean"] for lab in ("real", "random")},
        }
    ]
    for s in sorted({k.split("-")[1] for k in results if k.startswith("dim-")}):
        dims.append(
            {
                "input": s,
                "input_dim": results[f"dim-{s}-real"]["input_dim"],
                **{
                    lab: results[f"dim-{s}-{lab}"]["pairwise"]["mean"] for lab in ("real", "random")
                },
            }
        )
    dims.sort(key=lambda r: -r["input_dim"])
    depths = sorted(
        {int(k[5:].split("-")[0]) for k in results if k.startswith("depth")} | {MAIN_DEPTH}
    )
    return {
        "labels": lab_runs,
        "dims": dims,
        "depths": [
            {
                "depth": k,
                **{
                    lab: (lab_runs[lab] if k == MAIN_DEPTH else results[f"depth{k}-{lab}"])[
                        "pairwise"
                    ]["mean"]
                    for lab in ("real", "random")
                },
            }
            for k in depths
        ],
        "trajectory": results["trajectory"],
        "data": cfg.data,
        **({"cnn": results["cnn"]} if "cnn" in results else {}),
    }


def figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    from matplotlib.ticker import NullFormatter

    sd = d.get("spread") or {}
    fig, axes = figure(4, width=3.2, height=3.2)
    for ax, kind in zip(axes, ("pairwise", "midline", "principal", "normal"), strict=True):
        for lab in ("real", "random"):
            bar_hist(ax, d["labels"][lab]["directions"][kind]["hist"], f"{lab} labels")
        ax.set(xlabel="interval length (t units)", ylabel="density (per t unit)", title=kind)
    legend_right(fig, axes[0])
    fig2, (a, b, c) = figure(3, width=3.7, height=3.4)
    grid = [r for r in d["dims"] if r["input"] != "moons"]
    moons = [r for r in d["dims"] if r["input"] == "moons"]
    for i, lab in enumerate(("real", "random")):
        st = style(i)
        idx = [d["dims"].index(r) for r in grid]
        band(
            a,
            [r["input_dim"] for r in grid],
            [r[lab] for r in grid],
            [at(sd, "dims", j, lab) for j in idx],
            label=f"{lab} ({d.get('data', 'data')})",
            errorbars=True,
            **st,
        )
        for r in moons:
            j = d["dims"].index(r)
            a.errorbar(
                [r["input_dim"]],
                [r[lab]],
                yerr=[at(sd, "dims", j, lab) or 0.0],
                fmt="*",
                ms=9,
                color=st["color"],
                capsize=2,
                label=f"{lab} (two moons)",
            )
        band(
            b,
            [r["depth"] for r in d["depths"]],
            [r[lab] for r in d["depths"]],
            [at(sd, "depths", j, lab) for j in range(len(d["depths"]))],
            label=lab,
            errorbars=True,
            **st,
        )
    dims = sorted({r["input_dim"] for r in d["dims"]})
    a.set(
        xscale="log",
        xlabel="input dimension",
        ylabel="mean pairwise GI (t units)",
        title="GI vs input dimension",
    )
    a.set_xticks(dims, [str(x) for x in dims])
    a.xaxis.set_minor_formatter(NullFormatter())
    legend_below(a)
    b.set(xlabel="hidden layers", ylabel="mean pairwise GI (t units)", title="GI vs depth")
    b.set_xticks([r["depth"] for r in d["depths"]])
    legend_below(b)
    tr = d["trajectory"]
    c.plot(tr["val_acc"], tr["mean_gi"], "o-", ms=3)
    for e, x, y in zip(tr["epochs"], tr["val_acc"], tr["mean_gi"], strict=True):
        if e in (tr["epochs"][0], tr["epochs"][-1]):
            c.annotate(f"epoch {e}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    c.set(
        xlabel="validation accuracy (fraction)",
        ylabel="mean pairwise GI (t units)",
        title="Over training (r = {})".format(
            "n/a" if tr["correlation"] is None else f"{tr['correlation']:.3f}"
        ),
    )
    return [
        (
            "intervals_distributions",
            fig,
            "Distributions of generalization interval lengths (t units; a pairwise line "
            "spans t in [0, 1] between two same-label training points, searched on [-1, 2]) "
            "for networks trained on real and random labels, along pairwise lines, triangle "
            "midlines, the class's first principal direction and a normal direction. "
            + band_note(d).replace("Lines: mean", "Histograms: pooled"),
        ),
        (
            "intervals_trends",
            fig2,
            "Mean pairwise generalization interval against input dimension (average-pooled "
            "images; two moons drawn apart as stars), against the number of hidden layers, "
            "and over training against validation accuracy (one seed's trajectory). "
            + band_note(d),
        ),
    ]


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
        *_cnn_table(d.get("cnn")),
    ]


def _cnn_table(cnn: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not cnn:
        return []
    rows = (
        [[f"skipped ({cnn['skipped']})", None, None]]
        if "skipped" in cnn
        else [[lab, cnn[lab]["mean"], cnn[lab]["train_acc"]] for lab in ("real", "random")]
    )
    return [
        {
            "title": "A small CNN with max pooling: mean pairwise GI",
            "columns": ["labels", "mean GI", "train acc"],
            "rows": rows,
        }
    ]


HIGH_DIM = 500  # Salman & Liu's "high dimension": MNIST (784) and CIFAR-10 (3072)


def _gap(d: dict[str, Any], kind: str) -> tuple[float, float, bool | None]:
    re_ = d["labels"]["real"]["directions"][kind]["mean"]
    ra = d["labels"]["random"]["directions"][kind]["mean"]
    sep = separated(
        re_,
        sd_of(d, "labels", "real", "directions", kind, "mean"),
        ra,
        sd_of(d, "labels", "random", "directions", kind, "mean"),
    )
    return re_, ra, sep


def _judge(sep: bool | None) -> str:
    if sep is None:
        return "one seed, no spread to judge against"
    return "a gap larger than their spread" if sep else "within their spread"


def dimension_trend(dims: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], bool | None]:
    """(dim, random/real) per pooled input dimension (two moons apart: another data set),
    increasing dim; and whether the ratio rises (never falls by more than 0.02 per step)."""
    pts = sorted(
        (r["input_dim"], r["random"] / r["real"])
        for r in dims
        if r["input"] != "moons" and r["real"] and r["real"] > 0
    )
    if len(pts) < 2:
        return pts, None
    steady = all(b[1] >= a[1] - 0.02 for a, b in itertools.pairwise(pts))
    return pts, steady and pts[-1][1] > pts[0][1]


def moons_text(dims: list[dict[str, Any]]) -> str:
    m = [r for r in dims if r["input"] == "moons"]
    if not m:
        return ""
    r = m[0]
    return (
        f" On two moons (2-d, another data set) real {r['real']:.3g} vs random {r['random']:.3g}."
    )


def reading(d: dict[str, Any]) -> str:
    dim = d["labels"]["real"].get("input_dim") or d["dims"][0]["input_dim"]
    re_, ra, sep = _gap(d, "pairwise")
    close = abs(re_ - ra) <= 0.1 * max(re_, ra)
    if dim >= HIGH_DIM:
        ctx = f"In {dim} dimensions, Salman & Liu's high-dimension regime, they " + (
            "are close, as the paper finds" if close else "differ, unlike the paper's finding"
        )
    else:
        ctx = (
            f"This data is {dim}-dimensional, well below MNIST's 784: Salman & Liu find real "
            "and random pairwise intervals almost identical only in high dimension, and "
            "random-label intervals shorter when the dimension is reduced (their "
            "down-sampled MNIST and two moons), which is "
            + ("what happens here" if ra < re_ and not close else "not what happens here")
        )
    pts, rises = dimension_trend(d["dims"])
    trend = ", ".join(f"{r:.2f} at {k}-d" for k, r in pts)
    trend_txt = (
        " Across input dimensions (average pooling) the random/real ratio of mean pairwise "
        f"intervals is {trend}"
        + (
            ": it rises with the dimension, the paper's low-dimension effect."
            if rises
            else ": it does not rise with the dimension."
            if rises is False
            else ": one dimension only."
        )
        + moons_text(d["dims"])
    )
    mr, mra, msep = _gap(d, "midline")
    pr = d["labels"]["real"]["directions"]["principal"]["mean"]
    no = d["labels"]["real"]["directions"]["normal"]["mean"]
    r = d["trajectory"]["correlation"]
    e_re = sd_of(d, "labels", "real", "directions", "pairwise", "mean")
    e_ra = sd_of(d, "labels", "random", "directions", "pairwise", "mean")
    return (
        f"Along pairwise lines between same-label training points (t units: the pair spans "
        f"[0, 1]) the mean generalization interval is {pm(re_, e_re, '.3g')} "
        f"with real labels and {pm(ra, e_ra, '.3g')} "
        f"with random labels ({_judge(sep)}). {ctx}.{trend_txt} Along triangle midlines: "
        f"{mr:.3g} real vs {mra:.3g} random ({_judge(msep)}); with real labels the first "
        f"principal direction keeps the class over {pr:.3g} against {no:.3g} along a normal "
        f"direction ({'longer' if pr > no else 'not longer'} along the tangent). Over "
        "training the mean interval and the validation accuracy have correlation "
        f"{'n/a' if r is None else f'{r:.3f}'}. "
        + cnn_text(d.get("cnn"))
        + spread_note(d.get("n_seeds", 1))
    )


def papers(d: dict[str, Any]) -> list[list[str]]:
    dim = d["labels"]["real"].get("input_dim") or d["dims"][0]["input_dim"]
    re_, ra, _ = _gap(d, "pairwise")
    close = abs(re_ - ra) <= 0.1 * max(re_, ra)
    mr, mra, _ = _gap(d, "midline")
    pr = d["labels"]["real"]["directions"]["principal"]["mean"]
    no = d["labels"]["real"]["directions"]["normal"]["mean"]
    pts, rises = dimension_trend(d["dims"])
    r = d["trajectory"]["correlation"]
    setting = "MNIST 784-d, 1000 training samples, 3 x 128 ReLU, SGD lr 0.01"
    high = dim >= HIGH_DIM
    rows = [
        paper_row(
            "Salman & Liu, Sec. 4.3, Fig. 4 (left)",
            setting + ", pairwise lines, t in [-1, 2]",
            "real and random pairwise intervals almost identical in high dimension",
            f"{dim}-d: real {re_:.3g}, random {ra:.3g}",
            ("agree" if close else "differ") if high else "not comparable",
            "same regime" if high else f"{dim}-d data: the paper's claim is for high dimension",
        ),
        paper_row(
            "Salman & Liu, Sec. 4.3, Fig. 4 (middle, right), Fig. 8",
            "down-sampled MNIST; two moons (2-d, 300 training samples)",
            "lower dimension: random-label intervals get shorter, real ones do not change",
            "random/real (pooled): " + ", ".join(f"{x:.2f} at {k}-d" for k, x in pts),
            "not comparable" if rises is None else "agree" if rises else "differ",
            "the ratio rises with the dimension"
            if rises
            else "one input dimension only (no image data to pool)"
            if rises is None
            else "the ratio does not rise with the dimension",
        ),
        paper_row(
            "Salman & Liu, Fig. 5",
            "MNIST class 5, triangle midlines, range 5",
            "midline intervals much smaller with random labels, unchanged with real ones",
            f"real {mr:.3g}, random {mra:.3g}",
            "agree" if mra < mr else "differ",
            "shorter with random labels" if mra < mr else "not shorter with random labels",
        ),
        paper_row(
            "Salman & Liu, Fig. 2",
            "MNIST, first principal component vs a normal direction, real labels",
            "output changes much less along the tangent (principal) than the normal direction",
            f"interval {pr:.3g} (principal) vs {no:.3g} (normal)",
            "agree" if pr > no else "differ",
            "longer along the principal direction"
            if pr > no
            else "not longer along the principal direction",
        ),
        paper_row(
            "Salman & Liu, Fig. 9",
            "MNIST, over training",
            "generalization intervals correlate very well with validation accuracy (no "
            "coefficient printed)",
            "n/a" if r is None else f"r = {r:.3f}",
            "not comparable" if r is None else "agree" if r > 0.5 else "differ",
            "no variation over training"
            if r is None
            else "strong positive correlation"
            if r > 0.5
            else "weak or negative correlation",
        ),
    ]
    return rows


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
        papers=papers,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, ReLU MLP "
            f"{MAIN_DEPTH} x {_sizes(cfg.quick)['hidden']} (depth runs: "
            + ", ".join(f"{k} x {w}" for k, w in _sizes(cfg.quick)["depth_widths"].items())
            + f"), Adam lr 0.005, {_sizes(cfg.quick)['epochs']} epochs; "
            f"{_sizes(cfg.quick)['pairs']} same-label pairs on t in [-1, 2]; dimension via "
            "average pooling and two moons"
        ),
    )
]

"""Section 4: linear regions (seed 002; Hanin & Rolnick 2019, Serra et al., Telgarsky)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import bounds
from ..network import sawtooth
from ..regions import along_segments, distance_to_boundary, distinct_patterns
from .common import he_network, histogram, load_data, rng_for, split, summary, train
from .plotting import bar_hist, figure
from .registry import Config, Experiment


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "neurons": [16, 32, 64],
            "lines": 100,
            "epochs": 20,
            "per_class": 30,
            "saw_depths": list(range(1, 11)),
            "saw_depth": 8,
            "sigmas": [1e-4, 1e-3, 1e-2, 1e-1],
            "trials": 5,
        }
    return {
        "neurons": [32, 64, 128, 256],
        "lines": 500,
        "epochs": 100,
        "per_class": 100,
        "saw_depths": list(range(1, 17)),
        "saw_depth": 12,
        "sigmas": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "trials": 20,
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    s = _sizes(cfg.quick)
    out = [
        (
            f"depth{k}",
            {
                "data": cfg.data,
                "depth": k,
                **{x: s[x] for x in ("neurons", "lines", "epochs", "per_class")},
            },
        )
        for k in (1, 2, 3, 4)
    ]
    out.append(
        (
            "sawtooth",
            {
                "depths": s["saw_depths"],
                "depth": s["saw_depth"],
                "sigmas": s["sigmas"],
                "trials": s["trials"],
            },
        )
    )
    return out


def _lines(X: np.ndarray, m: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    gen = rng_for(seed, "lines")
    i = gen.integers(0, X.shape[0], m)
    j = (i + 1 + gen.integers(0, X.shape[0] - 1, m)) % X.shape[0]
    scale = float(np.median(np.linalg.norm(X[i] - X[j], axis=1)))
    d = gen.standard_normal((m, X.shape[1]))
    d *= scale / np.linalg.norm(d, axis=1, keepdims=True)
    return {"random": (X[i], X[i] + d), "between": (X[i], X[j])}


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    if "sigmas" in params:
        return _sawtooth(params, seed)
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    lines = _lines(sp.X, params["lines"], seed)
    k = params["depth"]
    rows = []
    for n in params["neurons"]:
        hidden = [max(1, n // k)] * k
        widths = [sp.X.shape[1], *hidden, sp.n_classes]
        nets = {
            "init": he_network(widths, seed),
            "trained": train(
                sp.X,
                sp.y,
                hidden=tuple(hidden),
                epochs=params["epochs"],
                seed=seed,
                n_classes=sp.n_classes,
            ).network,
        }
        row: dict[str, Any] = {
            "neurons": sum(hidden),
            "hidden": hidden,
            "line_upper": float(bounds.line_upper(hidden)),
        }
        for stage, net in nets.items():
            for kind, (a, b) in lines.items():
                row[f"{stage}_{kind}"] = float(np.mean(along_segments(net, a, b).counts))
            row[f"{stage}_distinct"] = distinct_patterns(net, sp.X).n_distinct / sp.X.shape[0]
        rows.append(row)
    # distance-to-boundary distributions for the largest network, at init and trained
    dist = {}
    for stage, net in nets.items():
        dd = np.log10(np.asarray(distance_to_boundary(net, sp.X).distance))
        dist[stage] = {"hist": histogram(dd, np.linspace(-5, 1, 31)), **summary(dd)}
    return {"depth": k, "rows": rows, "distance_log10": dist, "n_train": sp.X.shape[0]}


def _sawtooth(params: dict[str, Any], seed: int) -> dict[str, Any]:
    a, b = np.zeros((1, 1)), np.ones((1, 1))
    exact = [int(along_segments(sawtooth(k), a, b).counts[0]) for k in params["depths"]]
    net = sawtooth(params["depth"])
    pert = []
    for s in params["sigmas"]:
        c = [
            int(along_segments(net.perturbed(s, rng=rng_for(seed, "saw", s, t)), a, b).counts[0])
            for t in range(params["trials"])
        ]
        pert.append({"sigma": s, "mean": float(np.mean(c)), "min": min(c), "max": max(c)})
    return {
        "depths": params["depths"],
        "pieces": exact,
        "depth": params["depth"],
        "perturbed": pert,
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return {
        "by_depth": [results[f"depth{k}"] for k in (1, 2, 3, 4)],
        "sawtooth": results["sawtooth"],
    }


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, axes = figure(2, 2)
    for ax, key in zip(
        axes, ("init_random", "trained_random", "init_between", "trained_between"), strict=True
    ):
        for dep in d["by_depth"]:
            n = [r["neurons"] for r in dep["rows"]]
            line = ax.plot(n, [r[key] for r in dep["rows"]], "o-", label=f"depth {dep['depth']}")
            ax.plot(n, [r["line_upper"] for r in dep["rows"]], ":", color=line[0].get_color())
        ax.set(
            xlabel="hidden neurons",
            ylabel="regions per segment",
            yscale="log",
            title=key.replace("_", ", ") + " (dotted: line bound)",
        )
    axes[0].legend(fontsize=7)
    fig2, (s1, s2, s3) = figure(3)
    sw = d["sawtooth"]
    s1.semilogy(sw["depths"], sw["pieces"], "o-", label="exact")
    s1.semilogy(sw["depths"], [2.0**k for k in sw["depths"]], "k:", label="2^k")
    s1.set(xlabel="depth", ylabel="pieces on [0, 1]", title="Sawtooth")
    s1.legend(fontsize=7)
    s2.semilogx([p["sigma"] for p in sw["perturbed"]], [p["mean"] for p in sw["perturbed"]], "o-")
    s2.axhline(2.0 ** sw["depth"], color="k", ls=":")
    s2.set(
        xlabel="relative perturbation sigma",
        ylabel="pieces",
        title=f"Perturbed sawtooth, depth {sw['depth']}",
    )
    for dep in d["by_depth"]:
        bar_hist(s3, dep["distance_log10"]["trained"]["hist"], f"depth {dep['depth']}")
    s3.set(
        xlabel="log10 distance to nearest boundary",
        ylabel="density",
        title="Distance to boundary (trained)",
    )
    s3.legend(fontsize=7)
    return [("regions_lines", fig), ("regions_sawtooth", fig2)]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        [
            dep["depth"],
            r["neurons"],
            r["init_random"],
            r["trained_random"],
            r["init_between"],
            r["trained_between"],
            r["trained_distinct"],
            r["line_upper"],
        ]
        for dep in d["by_depth"]
        for r in dep["rows"]
    ]
    sw = d["sawtooth"]
    return [
        {
            "title": "Regions along segments (mean pieces per segment)",
            "rows": rows,
            "columns": [
                "depth",
                "neurons",
                "init random",
                "trained random",
                "init between",
                "trained between",
                "distinct fraction",
                "line bound",
            ],
        },
        {
            "title": f"Sawtooth depth {sw['depth']} under perturbation",
            "columns": ["sigma", "mean pieces", "min", "max"],
            "rows": [[p["sigma"], p["mean"], p["min"], p["max"]] for p in sw["perturbed"]],
        },
    ]


def reading(d: dict[str, Any]) -> str:
    last = [dep["rows"][-1] for dep in d["by_depth"]]
    ratio = max(r["trained_random"] / r["line_upper"] for r in last)
    sw = d["sawtooth"]
    big = sw["perturbed"][-1]
    return (
        f"Along random segments the networks cross far fewer regions than the worst case: at "
        f"most {ratio:.2g} of the line bound for the largest networks, and the count grows "
        f"roughly with the number of neurons, whatever the depth (Hanin & Rolnick). The "
        f"sawtooth realises its 2^k pieces exactly (depth {sw['depths'][-1]}: "
        f"{sw['pieces'][-1]}), but a relative weight perturbation of {big['sigma']:g} leaves "
        f"{big['mean']:.0f} of the {2 ** sw['depth']} pieces at depth {sw['depth']}: "
        "exponentially many regions are fragile. Trained networks put "
        f"{min(r['trained_distinct'] for r in last):.0%} or more of the training points in "
        "distinct regions."
    )


EXPERIMENTS = [
    Experiment(
        name="regions",
        title="Linear regions",
        seed_document="002",
        references="Hanin & Rolnick 2019; Serra et al. 2018; Telgarsky 2016",
        jobs=jobs,
        run=run,
        summarize=summarize,
        figures=figures,
        tables=tables,
        reading=reading,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class; depths 1-4, hidden "
            f"neurons {_sizes(cfg.quick)['neurons']} split evenly; He init vs Adam-trained "
            f"({_sizes(cfg.quick)['epochs']} epochs); {_sizes(cfg.quick)['lines']} segments: "
            "random directions of the median pair distance, and between training points"
        ),
    )
]

"""Section 6: critical samples and loss sensitivity (seed 001; Arpit et al. 2017).

Runs only when :mod:`fastmem.critical` exists (feature detection); otherwise the section
is absent from the report.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from .common import histogram, load_data, random_labels, split, train
from .plotting import bar_hist, figure
from .registry import Config, Experiment


def available() -> str | None:
    if importlib.util.find_spec("fastmem.critical") is None:
        return "this fastmem has no fastmem.critical module"
    return None


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"per_class": 10, "epochs": 20, "checkpoints": [1, 5, 10, 20], "radius": 0.05}
    return {
        "per_class": 50,
        "epochs": 150,
        "checkpoints": [1, 5, 10, 25, 50, 100, 150],
        "radius": 0.05,
    }


def jobs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    return [
        (lab, {"data": cfg.data, "labels": lab, **_sizes(cfg.quick)}) for lab in ("real", "random")
    ]


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from .. import critical

    sp = split(load_data(params["data"]), params["per_class"], seed)
    y = sp.y if params["labels"] == "real" else random_labels(sp.y, sp.n_classes, seed)
    t = train(
        sp.X,
        y,
        hidden=(128,),
        epochs=params["epochs"],
        seed=seed,
        n_classes=sp.n_classes,
        snapshot_epochs=params["checkpoints"],
    )
    lo, up = [], []
    for _, net in t.snapshots:
        c = critical.critical_samples(
            net, sp.X, radius=params["radius"], method="lass", certify="crown"
        )
        lo.append(float(c.csr_lower))
        up.append(float(c.csr_upper))
    ls = critical.loss_sensitivity(t.network, sp.X, y)
    vals = np.asarray(ls.values if hasattr(ls, "values") else ls.per_sample, dtype=float)
    return {
        "epochs": [e for e, _ in t.snapshots],
        "csr_lower": lo,
        "csr_upper": up,
        "gini": float(ls.gini),
        "sensitivity": histogram(np.log10(vals + 1e-12), np.linspace(-8, 2, 31)),
    }


def summarize(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    return {lab: results[lab] for lab in ("real", "random")}


def figures(d: dict[str, Any]) -> list[tuple[str, Any]]:
    fig, (a, b) = figure(2)
    for lab in ("real", "random"):
        r = d[lab]
        line = a.plot(r["epochs"], r["csr_upper"], "o-", label=f"{lab} (upper)")
        a.plot(
            r["epochs"], r["csr_lower"], "s--", color=line[0].get_color(), label=f"{lab} (lower)"
        )
        bar_hist(b, r["sensitivity"], f"{lab} (Gini {r['gini']:.2f})")
    a.set(xlabel="epoch", ylabel="critical sample ratio", title="CSR bounds")
    b.set(xlabel="log10 loss sensitivity", ylabel="density", title="Loss sensitivity")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    return [("critical", fig)]


def tables(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "title": "Critical samples (final epoch)",
            "columns": ["labels", "CSR lower", "CSR upper", "Gini"],
            "rows": [
                [lab, d[lab]["csr_lower"][-1], d[lab]["csr_upper"][-1], d[lab]["gini"]]
                for lab in ("real", "random")
            ],
        }
    ]


def reading(d: dict[str, Any]) -> str:
    re_, ra = d["real"], d["random"]
    return (
        f"At the last checkpoint the critical sample ratio lies in [{re_['csr_lower'][-1]:.3f}, "
        f"{re_['csr_upper'][-1]:.3f}] with real labels and in [{ra['csr_lower'][-1]:.3f}, "
        f"{ra['csr_upper'][-1]:.3f}] with random labels; loss-sensitivity Gini coefficients "
        f"are {re_['gini']:.3f} and {ra['gini']:.3f}."
    )


EXPERIMENTS = [
    Experiment(
        name="critical",
        title="Critical samples and loss sensitivity",
        seed_document="001",
        references="Arpit et al., ICML 2017",
        jobs=jobs,
        run=run,
        summarize=summarize,
        figures=figures,
        tables=tables,
        reading=reading,
        available=available,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class, MLP "
            f"(128,) ReLU, radius {_sizes(cfg.quick)['radius']}"
        ),
    )
]

"""Section 4: linear regions (seed 002; Hanin & Rolnick 2019, Serra et al., Telgarsky)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

from .. import bounds
from ..network import sawtooth
from ..plane import draw_regions, plane_regions, plane_through
from ..regions import Ragged, along_segments, distance_to_boundary, distinct_patterns
from .common import (
    he_network,
    histogram,
    load_data,
    random_labels,
    rng_for,
    skipped_text,
    split,
    summary,
    train,
    train_cnn,
)
from .plotting import band, band_note, bar_hist, figure, legend_below, legend_right, style
from .registry import Config, Experiment
from .spread import at, paper_row, spread_note


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
            "slice_hidden": [32, 32],
            "slice_epochs": 60,
            "cnn_channels": [4, 8],
            "cnn_epochs": 15,
        }
    return {
        "neurons": [32, 64, 128, 256],
        "lines": 300,
        "epochs": 60,
        "per_class": 100,
        "saw_depths": list(range(1, 17)),
        "saw_depth": 12,
        "sigmas": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "trials": 20,
        "slice_hidden": [64, 64],
        "slice_epochs": 200,
        "cnn_channels": [8, 16],
        "cnn_epochs": 40,
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
            "cnn",
            {
                "data": cfg.data,
                "per_class": s["per_class"],
                "lines": s["lines"],
                "channels": s["cnn_channels"],
                "epochs": s["cnn_epochs"],
            },
        )
    )
    out.append(
        (
            "slices",
            {
                "data": cfg.data,
                "per_class": s["per_class"],
                "hidden": s["slice_hidden"],
                "epochs": s["slice_epochs"],
            },
        )
    )
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


def _plane(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple, float]:
    """The plane through the first three training points of the first class with three
    (Hanin & Rolnick's 2-D slice), its extent and the extent's area."""
    classes, counts = np.unique(y, return_counts=True)
    c = classes[np.flatnonzero(counts >= 3)[0]]
    origin, dirs, extent = plane_through(*X[np.flatnonzero(y == c)[:3]])
    return origin, dirs, extent, (extent[1] - extent[0]) * (extent[3] - extent[2])


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    if "sigmas" in params:
        return _sawtooth(params, seed)
    if "channels" in params:
        return _cnn(params, seed)
    if "hidden" in params:
        return _slices(params, seed)
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    lines = _lines(sp.X, params["lines"], seed)
    origin, dirs, extent, area = _plane(sp.X, sp.y)
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
            # regions per unit area of the slice (the plane's coordinates are orthonormal)
            row[f"{stage}_plane"] = plane_regions(net, origin, dirs, extent=extent).count / area
        rows.append(row)
    # distance-to-boundary distributions for the largest network, at init and trained
    dist = {}
    for stage, net in nets.items():
        dd = np.log10(np.asarray(distance_to_boundary(net, sp.X).distance))
        dist[stage] = {"hist": histogram(dd, np.linspace(-5, 1, 31)), **summary(dd)}
    return {"depth": k, "rows": rows, "distance_log10": dist, "n_train": sp.X.shape[0]}


def _cnn(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Regions along segments of a small CNN with max pooling (:func:`common.train_cnn`),
    at He init and trained, on the same training points and lines as the MLPs. Skipped
    without torch or image data."""
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    got = train_cnn(sp, data.image_side, params["channels"], params["epochs"], sp.y, seed)
    if "skipped" in got:
        return got
    nets = {"init": got["init"], "trained": got["trained"]}
    lines = _lines(sp.X, params["lines"], seed)
    out: dict[str, Any] = {
        "channels": list(params["channels"]),
        "neurons": sum(nets["init"].widths[1:-1]),
        "pattern_bits": nets["init"].n_pattern_bits,
    }
    for stage, net in nets.items():
        for kind, (a, b) in lines.items():
            out[f"{stage}_{kind}"] = float(np.mean(along_segments(net, a, b).counts))
        out[f"{stage}_accuracy"] = float(np.mean(net.predict(sp.X) == sp.y))
    return out


def cnn_text(cnn: dict[str, Any] | None, deps: list[dict[str, Any]]) -> str:
    """The CNN row's reading, beside the depth-2 MLP with the nearest number of neurons."""
    skipped = skipped_text(cnn)
    if skipped is not None:
        return skipped
    mlp = deps[1] if len(deps) > 1 else deps[0]
    near = min(mlp["rows"], key=lambda r: abs(r["neurons"] - cnn["neurons"]))
    f = cnn["trained_random"] / cnn["init_random"] if cnn["init_random"] > 0 else math.nan
    g = near["trained_random"] / near["init_random"] if near["init_random"] > 0 else math.nan
    return (
        f"A CNN with max pooling ({cnn['channels'][0]} and {cnn['channels'][1]} channels, "
        f"{cnn['neurons']} ReLU units) crosses {cnn['init_random']:.1f} regions per random "
        f"segment at He init and {cnn['trained_random']:.1f} trained (x{f:.2f}, train "
        f"accuracy {cnn['trained_accuracy']:.0%}); the depth-{mlp['depth']} MLP with "
        f"{near['neurons']} neurons crosses {near['init_random']:.1f} and "
        f"{near['trained_random']:.1f} (x{g:.2f}). "
    )


_SLICES = {
    "init": "He init",
    "real": "trained, real labels",
    "random": "trained, random labels",
}


def _slices(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The exact slice through three training points of one class, for one architecture at
    init and trained on the real and on random labels (the pictures, and their numbers)."""
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    origin, dirs, extent, area = _plane(sp.X, sp.y)
    classes, counts = np.unique(sp.y, return_counts=True)
    three = sp.X[np.flatnonzero(sp.y == classes[np.flatnonzero(counts >= 3)[0]])[:3]]
    hidden = tuple(params["hidden"])
    widths = [sp.X.shape[1], *hidden, sp.n_classes]
    labels = {"real": sp.y, "random": random_labels(sp.y, sp.n_classes, seed)}
    nets = {"init": he_network(widths, seed)}
    fit = {}
    for name, y in labels.items():
        res = train(sp.X, y, hidden=hidden, epochs=params["epochs"], seed=seed,
                    n_classes=sp.n_classes)  # fmt: skip
        nets[name] = res.network
        fit[name] = float(np.mean(res.network.predict(sp.X) == y))
    out: dict[str, Any] = {"hidden": list(hidden), "area": area}
    for name, net in nets.items():
        p = plane_regions(net, origin, dirs, extent=extent, points=three)
        seg = [np.diff(p.boundary[i], axis=0) for i in range(len(p.boundary))]
        length = float(sum(np.linalg.norm(g, axis=1).sum() for g in seg))
        out[name] = {
            "count": p.count,
            "per_area": p.count / area,
            "boundary_per_area": length / area,
            "classes": int(np.unique(p.predicted[p.predicted >= 0]).size),
            "train_accuracy": fit.get(name),
            "picture": _encode_picture(p),
        }
    return out


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _encode_picture(p: Any) -> str:
    """A slice's picture as one string (a string leaf: merging seeds keeps the first
    seed's picture instead of averaging coordinates)."""
    from ..plane import _class_at

    return json.dumps(
        {
            "vertices": _b64(p.vertices.astype(np.float32)),
            "poly_values": _b64(p.polygons.values.astype(np.int32)),
            "poly_offsets": _b64(p.polygons.offsets.astype(np.int32)),
            "classes": _b64(_class_at(p.logits, p.centroids()).astype(np.int16)),
            "boundary_values": _b64(p.boundary.values.astype(np.float32)),
            "boundary_offsets": _b64(p.boundary.offsets.astype(np.int32)),
            "marks": p.marks.tolist(),
            "extent": list(p.extent),
        }
    )


def decode_picture(text: str) -> dict[str, Any]:
    """The arrays of :func:`_encode_picture` (vertices and boundary as float32)."""
    d = json.loads(text)

    def arr(key: str, dtype: Any) -> np.ndarray:
        return np.frombuffer(base64.b64decode(d[key]), dtype=dtype)

    return {
        "vertices": arr("vertices", np.float32).reshape(-1, 2),
        "polygons": Ragged(arr("poly_values", np.int32), arr("poly_offsets", np.int32)),
        "classes": arr("classes", np.int16),
        "boundary": Ragged(
            arr("boundary_values", np.float32).reshape(-1, 2), arr("boundary_offsets", np.int32)
        ),
        "marks": np.asarray(d["marks"], dtype=np.float64),
        "extent": tuple(d["extent"]),
    }


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
        **({"slices": results["slices"]} if "slices" in results else {}),
        **({"cnn": results["cnn"]} if "cnn" in results else {}),
    }


_PANELS = {
    "init_random": "He init, random directions",
    "trained_random": "trained, random directions",
    "init_between": "He init, between training points",
    "trained_between": "trained, between training points",
}


def figures(d: dict[str, Any]) -> list[tuple[str, Any, str]]:
    sd = d.get("spread") or {}
    fig, axes = figure(2, 2, width=4.0, height=3.2)
    for ax, key in zip(axes, _PANELS, strict=True):
        for i, dep in enumerate(d["by_depth"]):
            n = [r["neurons"] for r in dep["rows"]]
            e = [at(sd, "by_depth", i, "rows", j, key) for j in range(len(n))]
            st = style(i)
            band(ax, n, [r[key] for r in dep["rows"]], e, label=f"depth {dep['depth']}", **st)
            ax.plot(n, [r["line_upper"] for r in dep["rows"]], ":", color=st["color"], lw=1)
        ax.set(xlabel="hidden neurons", ylabel="regions per segment", yscale="log")
        ax.set_title(_PANELS[key], fontsize=10)
    legend_right(fig, axes[0], title="dotted: line bound")
    fig2, (s1, s2, s3) = figure(3, width=3.6, height=3.3)
    sw = d["sawtooth"]
    s1.semilogy(sw["depths"], sw["pieces"], "o-", ms=3, label="exact network")
    s1.semilogy(sw["depths"], [2.0**k for k in sw["depths"]], "k:", label="2^k")
    s1.set(xlabel="depth k", ylabel="linear pieces on [0, 1]", title="Sawtooth")
    legend_below(s1)
    sig = [p["sigma"] for p in sw["perturbed"]]
    band(
        s2,
        sig,
        [p["mean"] for p in sw["perturbed"]],
        [at(sd, "sawtooth", "perturbed", j, "mean") for j in range(len(sig))],
        marker="o",
        label="mean over trials",
    )
    s2.fill_between(
        sig,
        [p["min"] for p in sw["perturbed"]],
        [p["max"] for p in sw["perturbed"]],
        color="0.6",
        alpha=0.2,
        lw=0,
        label="min-max over trials",
    )
    s2.axhline(2.0 ** sw["depth"], color="k", ls=":", label=f"2^{sw['depth']}")
    s2.set(
        xscale="log",
        yscale="log",
        xlabel="relative perturbation sigma",
        ylabel="linear pieces on [0, 1]",
        title=f"Perturbed, depth {sw['depth']}",
    )
    legend_below(s2)
    for dep in d["by_depth"]:
        bar_hist(s3, dep["distance_log10"]["trained"]["hist"], f"depth {dep['depth']}")
    s3.set(
        xlabel="log10 distance to nearest boundary",
        ylabel="density (per log10 unit)",
        title="Distance to boundary, trained",
    )
    legend_below(s3)
    fig3, (p1, p2) = figure(2, width=4.0, height=3.2)
    for ax, stage in ((p1, "init"), (p2, "trained")):
        for i, dep in enumerate(d["by_depth"]):
            rows = [r for r in dep["rows"] if f"{stage}_plane" in r]
            if not rows:
                continue
            n = [r["neurons"] for r in rows]
            e = [at(sd, "by_depth", i, "rows", j, f"{stage}_plane") for j in range(len(n))]
            band(ax, n, [r[f"{stage}_plane"] for r in rows], e, label=f"depth {dep['depth']}",
                 **style(i))  # fmt: skip
        title = f"2-D slice, {'He init' if stage == 'init' else 'trained'}"
        ax.set(xlabel="hidden neurons", ylabel="regions per unit area", xscale="log",
               yscale="log", title=title)  # fmt: skip
    legend_right(fig3, p1)
    pictures = []
    sl = d.get("slices")
    if sl:
        fig4, axes4 = figure(3, width=3.6, height=3.6)
        for ax, (name, title) in zip(axes4, _SLICES.items(), strict=True):
            pic = decode_picture(sl[name]["picture"])
            draw_regions(ax, pic["vertices"], pic["polygons"], pic["classes"], pic["boundary"],
                         pic["marks"], pic["extent"])  # fmt: skip
            ax.set_title(f"{title}: {sl[name]['count']:.0f} regions", fontsize=10)
            ax.set(xlabel="s", ylabel="t")
        pictures.append(
            (
                "regions_slices",
                fig4,
                f"The exact linear regions (thin grey sides) of a {sl['hidden']} ReLU network "
                "on the plane through three training points of one class (x0, x1, x2), "
                "each region coloured by the class the network predicts on it, black: the "
                "decision boundary; at He init, trained on the real labels and trained on "
                "random labels (first seed; the counts are means over seeds).",
            )
        )
    return [
        *pictures,
        (
            "regions_plane",
            fig3,
            "Exact linear regions per unit area of the plane through three training points "
            "of one class (fastmem.plane_regions; orthonormal plane coordinates, margin 0.25 "
            "around their triangle) against the number of hidden neurons, depths 1-4, at He "
            "initialization and after training (Hanin & Rolnick 2019b's 2-D measurement). "
            + band_note(d),
        ),
        (
            "regions_lines",
            fig,
            "Mean number of linear regions crossed by a segment (random direction of the "
            "median pair distance, or between two training points) against the number of "
            "hidden neurons, depths 1-4, at He initialization and after training; dotted: "
            "the line upper bound of bounds.line_upper. " + band_note(d),
        ),
        (
            "regions_sawtooth",
            fig2,
            "Left: pieces of the exact sawtooth network on [0, 1] against depth, with 2^k. "
            "Middle: pieces at depth "
            f"{sw['depth']} after a relative Gaussian weight perturbation sigma (mean and "
            "min-max over trials). Right: distribution of the input-space distance from "
            "training points to the nearest region boundary (largest trained network of "
            "each depth). " + band_note(d),
        ),
    ]


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
            r.get("init_plane"),
            r.get("trained_plane"),
        ]
        for dep in d["by_depth"]
        for r in dep["rows"]
    ]
    sw = d["sawtooth"]
    extra = []
    sl = d.get("slices")
    if sl:
        extra.append(
            {
                "title": f"The slice through three training points, {sl['hidden']} network",
                "columns": [
                    "network",
                    "regions",
                    "per unit area",
                    "boundary per unit area",
                    "classes on the slice",
                    "train accuracy",
                ],
                "rows": [
                    [
                        title,
                        sl[k]["count"],
                        sl[k]["per_area"],
                        sl[k]["boundary_per_area"],
                        sl[k]["classes"],
                        sl[k]["train_accuracy"],
                    ]
                    for k, title in _SLICES.items()
                ],
            }
        )
    cnn = d.get("cnn")
    if cnn:
        stages = ("init", "trained")
        extra.append(
            {
                "title": "A small CNN with max pooling (regions along segments)",
                "columns": [
                    "network",
                    "random segments",
                    "between training points",
                    "train accuracy",
                ],
                "rows": [[f"CNN: skipped ({cnn['skipped']})", None, None, None]]
                if "skipped" in cnn
                else [
                    [
                        f"CNN {cnn['channels']}, {'He init' if st == 'init' else 'trained'}",
                        cnn[f"{st}_random"],
                        cnn[f"{st}_between"],
                        cnn[f"{st}_accuracy"],
                    ]
                    for st in stages
                ],
            }
        )
    return [
        *extra,
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
                "init per area (slice)",
                "trained per area (slice)",
            ],
        },
        {
            "title": f"Sawtooth depth {sw['depth']} under perturbation",
            "columns": ["sigma", "mean pieces", "min", "max"],
            "rows": [[p["sigma"], p["mean"], p["min"], p["max"]] for p in sw["perturbed"]],
        },
    ]


def growth_exponent(rows: list[dict[str, Any]], key: str) -> float | None:
    """Slope of log(count) against log(neurons) between the smallest and largest network."""
    a, b = rows[0], rows[-1]
    if a["neurons"] == b["neurons"] or a[key] <= 0 or b[key] <= 0:
        return None
    return float(np.log(b[key] / a[key]) / np.log(b["neurons"] / a["neurons"]))


def _where(dep: dict[str, Any], r: dict[str, Any]) -> str:
    return f"depth {dep['depth']}, {r['neurons']} neurons"


def sawtooth_text(sw: dict[str, Any]) -> str:
    exact = all(p == 2**k for k, p in zip(sw["depths"], sw["pieces"], strict=True))
    head = (
        f"The exact sawtooth has 2^k pieces at every depth 1-{sw['depths'][-1]} "
        f"({sw['pieces'][-1]} at depth {sw['depths'][-1]})"
        if exact
        else "The exact sawtooth misses 2^k pieces at depth(s) "
        + ", ".join(str(k) for k, p in zip(sw["depths"], sw["pieces"], strict=True) if p != 2**k)
    )
    full = 2 ** sw["depth"]
    parts = [f"sigma {p['sigma']:g}: {p['mean']:.0f}" for p in sw["perturbed"]]
    text = (
        f"{head}. Under a relative weight perturbation, the depth-{sw['depth']} network "
        f"({full} pieces exact) has on average " + ", ".join(parts) + " pieces"
    )
    above = [p for p in sw["perturbed"] if p["mean"] > full]
    below = [p for p in sw["perturbed"] if p["mean"] < 0.5 * full]
    if above:
        where = ", ".join(f"{p['sigma']:g}" for p in above)
        text += (
            f". More than {full} at sigma {where}: in "
            "the exact network many breakpoints coincide (a neuron's input only touches 0 "
            "at a kink of the layer before), and a small perturbation splits each coincident "
            "breakpoint into separate ones a tiny distance apart, adding pieces rather than "
            "removing them"
        )
    if below:
        text += (
            f"; at sigma {below[0]['sigma']:g} and above fewer than half the pieces survive: "
            "exponentially many regions are fragile"
        )
    return text + "."


def slices_text(sl: dict[str, Any] | None) -> str:
    """The pictures' reading: regions and decision boundary, real against random labels."""
    if not sl:
        return ""
    r, q, i = sl["real"], sl["random"], sl["init"]
    more = "more" if q["count"] > r["count"] else "fewer"
    return (
        f"On the slice through three training points of one class, the {sl['hidden']} "
        f"network has {i['count']:.0f} regions at init, {r['count']:.0f} trained on the real "
        f"labels and {q['count']:.0f} trained on random labels ({more} with random labels); "
        f"its decision boundary is {q['boundary_per_area']:.2f} per unit area with random "
        f"labels against {r['boundary_per_area']:.2f} with real ones, and {r['classes']:.0f} "
        f"vs {q['classes']:.0f} classes are predicted somewhere on the slice. "
    )


def plane_text(deps: list[dict[str, Any]]) -> str:
    """The 2-D slice's reading: growth of regions per unit area with neurons and depth."""
    if not all("init_plane" in r for dep in deps for r in dep["rows"]):
        return ""
    exps = [(growth_exponent(dep["rows"], "init_plane"), dep["depth"]) for dep in deps]
    txt = ", ".join(f"{e:.2f} (depth {k})" for e, k in exps if e is not None)
    ok = [e for e, _ in exps if e is not None]
    shape = (
        "about quadratic, as Hanin & Rolnick's (c n)^2 / 2 per unit area"
        if ok and all(1.4 <= e <= 2.6 for e in ok)
        else "not quadratic at every depth"
    )
    first, last = deps[0]["rows"][-1], deps[-1]["rows"][-1]
    ratio = last["init_plane"] / first["init_plane"] if first["init_plane"] > 0 else math.nan
    # exponential in depth would multiply the density by ~2 per added layer
    depth_word = (
        "no exponential growth with depth"
        if ratio < 2.0
        else "more regions with depth at equal neurons"
    )
    train = ", ".join(
        f"x{dep['rows'][-1]['trained_plane'] / dep['rows'][-1]['init_plane']:.2f} "
        f"(depth {dep['depth']})"
        for dep in deps
        if dep["rows"][-1]["init_plane"] > 0
    )
    return (
        f"In the plane through three training points of one class, the regions per unit "
        f"area at He init grow with exponent {txt} in the number of neurons: {shape}; at "
        f"{last['neurons']} neurons depth {deps[-1]['depth']} has {ratio:.2f} times the "
        f"density of depth {deps[0]['depth']} ({depth_word}). Training changes "
        f"the density by {train}. "
    )


def reading(d: dict[str, Any]) -> str:
    deps = d["by_depth"]
    last = [(dep, dep["rows"][-1]) for dep in deps]
    ratios = [(r["trained_random"] / r["line_upper"], dep) for dep, r in last]
    lo, hi = min(ratios, key=lambda t: t[0]), max(ratios, key=lambda t: t[0])
    exps = [(growth_exponent(dep["rows"], "trained_random"), dep["depth"]) for dep in deps]
    exps_txt = ", ".join(f"{e:.2f} (depth {k})" for e, k in exps if e is not None)
    lin = [e for e, _ in exps if e is not None]
    shape = (
        "roughly linear in the number of neurons at every depth (Hanin & Rolnick)"
        if lin and all(0.5 <= e <= 1.5 for e in lin)
        else "not linear in the number of neurons at every depth"
    )
    change = []
    for dep, r in last:
        f = r["trained_random"] / r["init_random"] if r["init_random"] > 0 else float("nan")
        change.append(f"x{f:.2f} (depth {dep['depth']})")
    dist = [
        (dep["distance_log10"]["init"]["median"], dep["distance_log10"]["trained"]["median"])
        for dep in deps
    ]
    dist_txt = ", ".join(
        f"{10**a:.2g} -> {10**b:.2g}" for a, b in dist if a is not None and b is not None
    )
    allrows = [(dep, r) for dep in deps for r in dep["rows"]]
    dmin = min(allrows, key=lambda t: t[1]["trained_distinct"])
    dmax = max(allrows, key=lambda t: t[1]["trained_distinct"])
    return (
        f"Along random segments the largest trained networks cross between "
        f"{lo[0]:.2g} (depth {lo[1]['depth']}) and {hi[0]:.2g} (depth "
        f"{hi[1]['depth']}) of the line upper bound. The count grows with exponent {exps_txt} "
        f"in the number of neurons: {shape}. Training changes the number of regions per "
        f"random segment by {', '.join(change)} for the largest network of each depth, and "
        f"the median distance from a training point to the nearest boundary by {dist_txt} "
        f"(init -> trained, depths {', '.join(str(dep['depth']) for dep in deps)}). Trained "
        f"networks put from {dmin[1]['trained_distinct']:.1%} ({_where(*dmin)}) to "
        f"{dmax[1]['trained_distinct']:.1%} ({_where(*dmax)}) of the training points in "
        f"distinct regions. {plane_text(deps)}{slices_text(d.get('slices'))}"
        f"{cnn_text(d.get('cnn'), deps)}"
        f"{sawtooth_text(d['sawtooth'])} " + spread_note(d.get("n_seeds", 1))
    )


def papers(d: dict[str, Any]) -> list[list[str]]:
    deps = d["by_depth"]
    exps = [growth_exponent(dep["rows"], "trained_random") for dep in deps]
    lin = [e for e in exps if e is not None]
    linear = bool(lin) and all(0.5 <= e <= 1.5 for e in lin)
    last = [dep["rows"][-1] for dep in deps]
    f = [r["trained_random"] / r["init_random"] for r in last if r["init_random"] > 0]
    stable = bool(f) and all(0.5 <= x <= 2.0 for x in f)
    sw = d["sawtooth"]
    exact = all(p == 2**k for k, p in zip(sw["depths"], sw["pieces"], strict=True))
    big = sw["perturbed"][-1]
    frag = big["mean"] < 0.5 * 2 ** sw["depth"]
    rows = []
    if all("init_plane" in r for dep in deps for r in dep["rows"]):
        pe = [growth_exponent(dep["rows"], "init_plane") for dep in deps]
        quad = bool([e for e in pe if e is not None]) and all(
            1.4 <= e <= 2.6 for e in pe if e is not None
        )
        rows.append(
            paper_row(
                "Hanin & Rolnick 2019b (surprisingly few activation patterns)",
                "ReLU nets at init, MNIST, 2-D slices through three data points",
                "regions per unit area ~ (c n)^2 / 2: quadratic in the neurons n, not "
                "exponential in depth",
                "exponent "
                + ", ".join("n/a" if e is None else f"{e:.2f}" for e in pe)
                + " (depths 1-4)",
                "agree" if quad else "differ",
                "exponent within [1.4, 2.6] at every depth"
                if quad
                else "an exponent outside [1.4, 2.6]: few sizes, small networks",
            )
        )
    return [
        *rows,
        paper_row(
            "Hanin & Rolnick 2019 (seed 002 slides)",
            "ReLU nets at init and during training, MNIST, lines through input space",
            "regions along a line: linear, not exponential, in the number of neurons",
            "growth exponent "
            + ", ".join("n/a" if e is None else f"{e:.2f}" for e in exps)
            + " (depths 1-4)",
            "agree" if linear else "differ",
            "exponent within [0.5, 1.5] at every depth"
            if linear
            else "an exponent outside [0.5, 1.5]: few sizes, small networks",
        ),
        paper_row(
            "Hanin & Rolnick 2019 (seed 002 slides)",
            "MNIST, during training",
            "the number of regions and the distance to the nearest boundary stay roughly "
            "constant during training",
            "trained / init regions per random segment: " + ", ".join(f"{x:.2f}" for x in f),
            "agree" if stable else "differ",
            "within a factor 2 at every depth" if stable else "changes by more than a factor 2",
        ),
        paper_row(
            "Telgarsky; ICERM 2020 slides",
            "mirror map composed k times",
            "2^k equally spaced affine pieces on [0, 1]",
            f"{sw['pieces'][-1]} pieces at depth {sw['depths'][-1]}",
            "agree" if exact else "differ",
            "exact at every depth" if exact else "a depth misses 2^k",
        ),
        paper_row(
            "ICERM 2020 slides",
            "sawtooth, multiplicative Gaussian weight noise w(1 + eps)",
            "sawtooth networks fall apart with mild variance on the weights",
            f"depth {sw['depth']}: {big['mean']:.0f} of {2 ** sw['depth']} pieces at relative "
            f"sigma {big['sigma']:g}",
            "agree" if frag else "differ",
            "additive noise scaled to each layer's rms weight, not multiplicative; "
            + ("fewer than half the pieces remain" if frag else "most pieces remain"),
        ),
    ]


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
        papers=papers,
        setting=lambda cfg: (
            f"{cfg.data}: {_sizes(cfg.quick)['per_class']} per class; depths 1-4, hidden "
            f"neurons {_sizes(cfg.quick)['neurons']} split evenly; He init vs Adam-trained "
            f"({_sizes(cfg.quick)['epochs']} epochs); {_sizes(cfg.quick)['lines']} segments: "
            "random directions of the median pair distance, and between training points; "
            "the 2-D slice through three training points of one class (margin 0.25)"
        ),
    )
]

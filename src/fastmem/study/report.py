"""results.json and the report (figures + one self-contained index.html)."""

from __future__ import annotations

import base64
import html
import json
import os
import traceback
from typing import Any

from .io import RESULTS_SCHEMA, read_job, read_json_checked, write_atomic
from .registry import Config, Experiment, experiments

SCHEMA_FILE = RESULTS_SCHEMA


class ReportError(ValueError):
    """results.json is unreadable or is not what results.schema.json describes."""


def schema() -> dict[str, Any]:
    with open(SCHEMA_FILE) as f:
        return json.load(f)


def fmt(v: Any) -> str:
    """How a table cell shows a value (the tests parse this back)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def assemble(
    chosen: list[Experiment],
    cfg: Config,
    jobdir: str,
    jobs: dict[str, Any],
    *,
    failures: dict[str, str],
    meta: dict[str, Any],
    optional: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """results.json's content: every section whose jobs all finished.

    Job files are read and checked against ``job.schema.json``; a section with a
    missing or damaged job file is left out (and, unless it is in ``optional``, listed
    among the failures), never summarized from what is there.
    """
    from .spread import build_section

    sections: dict[str, Any] = {}
    failed = [{"job": k, "traceback": tb} for k, tb in failures.items()]
    for exp in chosen:
        keys = [k for k in jobs if k.startswith(exp.name + "/")]
        if any(k in failures for k in keys):
            continue
        by_seed: dict[int, dict[str, Any]] = {}
        params: dict[str, Any] = {}
        timing = {"time_s": 0.0, "train_s": 0.0, "analysis_s": 0.0}
        calls: dict[str, float] = {}
        broken = None
        for k in keys:
            job, h = jobs[k]
            rec, why = read_job(os.path.join(jobdir, job.filename(h)), h)
            if rec is None:
                broken = f"job file of {k}: {why}"
                break
            by_seed.setdefault(job.seed, {})[job.setting] = rec["result"]
            for t in timing:
                timing[t] += float(rec.get(t, rec["time_s"] if t == "analysis_s" else 0.0))
            for c, v in (rec.get("analysis_calls") or {}).items():
                calls[c] = calls.get(c, 0.0) + float(v)
            params[job.setting] = job.params
        if broken is not None:
            if exp.name not in optional:
                failed.append({"job": f"{exp.name} (files)", "traceback": broken})
            continue
        try:
            sec = build_section(exp, cfg, by_seed)
            data, tables, reading = sec["data"], sec["tables"], sec["reading"]
        except Exception:
            failed.append({"job": f"{exp.name} (summary)", "traceback": traceback.format_exc()})
            continue
        sections[exp.name] = {
            "title": exp.title,
            "seed_document": exp.seed_document,
            "references": exp.references,
            "setting": exp.setting(cfg),
            "seed": cfg.seed,
            "seeds": sorted(by_seed),
            "params": params,
            **timing,
            "analysis_calls": calls,
            "data": data,
            "tables": tables,
            "reading": reading,
        }
    return {
        "schema_version": 1,
        **meta,
        "config": {**cfg.to_dict(), "seeds": cfg.seeds},
        "sections": sections,
        "failures": failed,
    }


def render(out: str) -> list[str]:
    """(Re)draw every figure and index.html from ``out/results.json`` alone."""
    import matplotlib

    matplotlib.use("Agg", force=False)

    path = os.path.join(out, "results.json")
    results, why = read_json_checked(path, RESULTS_SCHEMA)
    if results is None:
        raise ReportError(f"{path} is malformed: {why}")
    figdir = os.path.join(out, "figures")
    os.makedirs(figdir, exist_ok=True)
    known = experiments()
    written: list[str] = []
    body, toc = [], []
    for name, sec in results["sections"].items():
        exp = known.get(name)
        figs = exp.figures(sec["data"]) if exp is not None else []
        imgs = []
        for fname, fig, *cap in figs:
            png = os.path.join(figdir, f"{fname}.png")
            svg = os.path.join(figdir, f"{fname}.svg")
            for path in (png, svg):
                tmp = path + ".part"
                fig.savefig(tmp, dpi=110, format=path.rsplit(".", 1)[1])
                os.replace(tmp, path)
                written.append(path)
            with open(png, "rb") as f:
                b64 = base64.b64encode(f.read()).decode()
            imgs.append(
                f'<figure><img alt="{fname}" src="data:image/png;base64,{b64}">'
                f"<figcaption>{html.escape(cap[0]) + ' ' if cap else ''}"
                f"(figures/{fname}.png)</figcaption></figure>"
            )
        tables = "".join(_table(t) for t in sec["tables"])
        toc.append(f'<li><a href="#{name}">{html.escape(sec["title"])}</a></li>')
        body.append(
            f'<section id="{name}"><h2>{html.escape(sec["title"])}</h2>'
            f'<p class="meta">Seed document {sec["seed_document"]} '
            f"({html.escape(sec['references'])})"
            f" &middot; {_seeds_text(sec)} &middot; {_timing(sec)}</p>"
            f'<p class="meta">Setting: {html.escape(sec["setting"])}</p>'
            f'<p class="reading">{html.escape(sec["reading"])}</p>'
            f"{''.join(imgs)}{tables}</section>"
        )
    fails = ""
    if results["failures"]:
        items = "".join(
            f"<li><b>{html.escape(f['job'])}</b><pre>{html.escape(f['traceback'])}</pre></li>"
            for f in results["failures"]
        )
        fails = f'<section id="failures"><h2>Failed jobs</h2><ul>{items}</ul></section>'
        toc.append('<li><a href="#failures">Failed jobs</a></li>')
    cfg = results["config"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>fastmem study</title>
<style>
body {{ font-family: sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }}
img {{ max-width: 100%; }} figure {{ margin: 1rem 0; }}
figcaption {{ color: #666; font-size: 80%; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 85%; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
.meta {{ color: #555; font-size: 90%; }} pre {{ font-size: 75%; overflow-x: auto; }}
</style></head><body>
<h1>fastmem study</h1>
<p class="meta">fastmem {html.escape(str(results["fastmem_version"]))}, backend
{html.escape(str(results["backend"]))}, data {html.escape(str(cfg["data"]))},
{"quick" if cfg["quick"] else "full"} settings, seed {cfg["seed"]}
({cfg.get("seeds", 1)} seed(s)); created
{html.escape(str(results["created"]))}. Every number below is in results.json;
<code>fastmem report DIR</code> redraws this page from it.</p>
<nav><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>
{"".join(body)}{fails}
</body></html>
"""
    index = os.path.join(out, "index.html")
    write_atomic(index, page.encode())
    written.append(index)
    return written


def _timing(sec: dict[str, Any]) -> str:
    if "train_s" not in sec:  # results.json from before the split
        return f"{sec['time_s']:.1f} s of jobs"
    return (
        f"{sec['time_s']:.1f} s of jobs ({sec['train_s']:.1f} s training, "
        f"{sec['analysis_s']:.1f} s analysis)"
    )


def fmt_cell(v: Any, sd: Any = None) -> str:
    """A table cell: the value, with `` ± sd`` when the cell has a spread over seeds."""
    if sd is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return fmt(v)
    return f"{fmt(v)} ± {sd:.2g}"


def _seeds_text(sec: dict[str, Any]) -> str:
    seeds = sec.get("seeds") or [sec["seed"]]
    if len(seeds) == 1:
        return f"study seed {seeds[0]}"
    return f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), mean ± sd"


def _table(t: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t["columns"])
    sds = t.get("sd") or [[None] * len(row) for row in t["rows"]]
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(fmt_cell(v, e))}</td>" for v, e in zip(row, sd_row, strict=True)
        )
        + "</tr>"
        for row, sd_row in zip(t["rows"], sds, strict=True)
    )
    return (
        f'<table class="numbers"><caption>{html.escape(t["title"])}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )

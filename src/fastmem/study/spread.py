"""Seeds and spread: one section's numbers from several seeds, and judging against them.

Every job runs once per seed (``--seeds N``: the study seed, seed + 1, ...). A section's
``summarize`` runs on each seed's results alone; :func:`merge` then folds the per-seed
numbers into one tree of means, with a parallel tree of standard deviations under
``"spread"`` and the number of seeds under ``"n_seeds"``. Tables are merged cell by cell
(:func:`merge_tables`: the mean in ``rows``, the standard deviation in ``sd``), so every
table cell and every figure point is a mean over seeds with its spread.

Readings judge differences against the spread with :func:`separated`: two means are
separated when they differ by more than the sum of their standard deviations (their one-sd
bars do not overlap). With one seed there is no spread to judge against, and the readings
say so.

Examples
--------
>>> from fastmem.study.spread import merge
>>> d = merge([{"acc": 0.5, "n": 10}, {"acc": 0.7, "n": 10}])
>>> round(d["acc"], 3), d["n"], round(d["spread"]["acc"], 3), d["n_seeds"]
(0.6, 10, 0.141, 2)
"""

from __future__ import annotations

import math
from typing import Any

_MISSING = object()


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mean_sd(values: list[Any]) -> tuple[Any, Any]:
    """Mean and sd of one leaf over seeds; (value, 0.0) when all seeds agree."""
    if any(v is None or v is _MISSING for v in values):
        return None, None  # e.g. "epochs to fit" is None where a seed did not fit
    if all(_is_num(v) for v in values):
        if all(v == values[0] for v in values):
            return values[0], 0.0
        n = len(values)
        m = math.fsum(values) / n
        var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
        return m, math.sqrt(var)
    if all(isinstance(v, bool) for v in values):
        if all(v == values[0] for v in values):
            return values[0], None
        return sum(values) / len(values), None  # the fraction of seeds where it holds
    return values[0], None


def _merge(values: list[Any]) -> tuple[Any, Any]:
    present = [v for v in values if v is not _MISSING]
    first = present[0] if present else None
    if isinstance(first, dict) and all(isinstance(v, dict) for v in present):
        keys: list[str] = []
        for v in present:
            keys += [k for k in v if k not in keys]
        mean, sd = {}, {}
        for k in keys:
            mean[k], sd[k] = _merge(
                [v.get(k, _MISSING) if v is not _MISSING else v for v in values]
            )
        return mean, sd
    if (
        isinstance(first, list)
        and all(isinstance(v, list) for v in present)
        and len({len(v) for v in present}) == 1
        and len(present) == len(values)
    ):
        pairs = [_merge([v[i] for v in values]) for i in range(len(first))]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(first, (dict, list)):
        return first, None  # shapes differ between seeds: the first seed's, no spread
    return _mean_sd(values)


def merge(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold per-seed section data (same structure) into means, with ``spread`` and ``n_seeds``.

    Numbers become their mean over seeds (unchanged when all seeds agree), with the
    standard deviation at the same place under ``spread`` (None where there is none:
    strings, one seed); a number that is None (missing) in any seed is None; a boolean
    that differs between seeds becomes the fraction of seeds where it holds.
    """
    if not per_seed:
        raise ValueError("merge: no seeds")
    mean, sd = _merge(list(per_seed))
    out = dict(mean)
    out["spread"] = sd if len(per_seed) > 1 else _nones(sd)
    out["n_seeds"] = len(per_seed)
    return out


def _nones(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _nones(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_nones(v) for v in tree]
    return None


def merge_tables(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Tables of each seed -> one list of tables whose numeric cells are means, with ``sd``.

    ``sd`` has the shape of ``rows``: the standard deviation of a numeric cell over seeds
    (None for text cells and with one seed). Tables whose shape differs between seeds keep
    the first seed's cells, without ``sd``.
    """
    first = per_seed[0]
    out = []
    for i, t in enumerate(first):
        same = all(
            len(s) == len(first)
            and len(s[i]["rows"]) == len(t["rows"])
            and all(len(a) == len(b) for a, b in zip(s[i]["rows"], t["rows"], strict=True))
            for s in per_seed
        )
        if not same:
            out.append(dict(t))
            continue
        rows, sds = [], []
        for r, row in enumerate(t["rows"]):
            cells, cell_sd = [], []
            for c in range(len(row)):
                m, s = _mean_sd([seed[i]["rows"][r][c] for seed in per_seed])
                if m is None and any(seed[i]["rows"][r][c] is not None for seed in per_seed):
                    # a number in some seeds, missing in others: say so rather than guess
                    vals = [seed[i]["rows"][r][c] for seed in per_seed]
                    m = f"{sum(v is not None for v in vals)} of {len(vals)} seeds"
                cells.append(m)
                cell_sd.append(s if len(per_seed) > 1 and _is_num(m) else None)
            rows.append(cells)
            sds.append(cell_sd)
        out.append({**t, "rows": rows, "sd": sds})
    return out


def at(tree: Any, *path: Any) -> Any:
    """``tree[p0][p1]...``, None where any step is missing (spread lookups)."""
    for p in path:
        try:
            tree = tree[p]
        except (KeyError, IndexError, TypeError):
            return None
    return tree


def sd_of(d: dict[str, Any], *path: Any) -> float | None:
    """The standard deviation over seeds of ``d[path]`` (None: one seed or no number)."""
    v = at(d.get("spread"), *path)
    return float(v) if _is_num(v) else None


def separated(a: float, sd_a: float | None, b: float, sd_b: float | None) -> bool | None:
    """True when ``a`` and ``b`` differ by more than ``sd_a + sd_b``; None without spread."""
    if sd_a is None or sd_b is None:
        return None
    return abs(a - b) > sd_a + sd_b


def pm(v: float | None, sd: float | None, fmt: str = ".3f") -> str:
    """``"0.981 ± 0.004"`` (just the value without a spread; "n/a" for None)."""
    if v is None:
        return "n/a"
    return f"{v:{fmt}}" if sd is None else f"{v:{fmt}} ± {sd:{fmt}}"


def spread_note(n_seeds: int) -> str:
    """How the reading's comparisons were judged, in words."""
    if n_seeds > 1:
        return (
            f"Values are means ± standard deviations over {n_seeds} seeds; two values "
            "differ when their gap exceeds the sum of their standard deviations."
        )
    return "One seed: there is no spread to judge differences against (use --seeds 3)."


# ----------------------------------------------------------- the papers' values
PAPER_COLUMNS = ["paper", "their setting", "their value or claim", "ours", "verdict", "why"]
VERDICTS = ("agree", "differ", "not comparable")


def paper_row(paper: str, setting: str, claim: str, ours: str, verdict: str, why: str) -> list[str]:
    """One row of a section's "papers' values beside ours" table (verdict checked)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return [paper, setting, claim, ours, verdict, why]


def papers_table(rows: list[list[str]]) -> dict[str, Any]:
    return {"title": "The papers' values beside ours", "columns": PAPER_COLUMNS, "rows": rows}


def build_section(exp: Any, cfg: Any, by_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A section's data, tables and reading from its jobs' results, seed by seed.

    ``by_seed`` maps seed -> {setting: result}. Returns ``{"data", "tables", "reading"}``
    (``data`` with ``spread`` and ``n_seeds``; the papers' table last when the experiment
    has one).
    """
    from .io import clean

    seeds = sorted(by_seed)
    per_seed = [clean(exp.summarize(by_seed[s], cfg)) for s in seeds]
    data = clean(merge(per_seed))
    data["seeds"] = seeds
    tables = clean(merge_tables([clean(exp.tables(d)) for d in per_seed]))
    papers = getattr(exp, "papers", None)
    if papers is not None:
        tables.append(papers_table(papers(data)))
    return {"data": data, "tables": tables, "reading": exp.reading(data)}

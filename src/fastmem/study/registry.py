"""The study's experiments: one :class:`Experiment` per report section.

An experiment is a handful of plain functions, so that each can be adapted alone:

- ``jobs(cfg) -> [(setting, params)]``: the jobs (one per setting) for a study config;
- ``run(params, seed) -> dict``: one job, numbers only (JSON-able), deterministic;
- ``summarize(results, cfg) -> dict``: the section's numbers from its jobs' results
  (``results`` maps setting -> the dict ``run`` returned);
- ``figures(data) -> [(name, matplotlib Figure)]``, ``tables(data) -> [table]`` and
  ``reading(data) -> str``: the report, from the section's numbers alone;
- ``available() -> None | str``: None, or why this install cannot run it (the section
  is then absent from the report, never shown uncomputed);
- ``papers(data) -> [row]`` (optional): the papers' settings and values or claims beside
  ours, each row with a verdict (:func:`fastmem.study.spread.paper_row`).

With ``--seeds N`` every job runs once per seed; ``summarize`` and ``tables`` see one
seed's results, ``reading``, ``figures`` and ``papers`` the merged data (means, with the
standard deviations under ``data["spread"]``; :mod:`fastmem.study.spread`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Table = dict[str, Any]  # {"title": str, "columns": [str], "rows": [[str | number | None]]}


@dataclass(frozen=True)
class Config:
    """What a study computes (the --out directory's identity is data + quick + seed)."""

    data: str = "digits"
    quick: bool = False
    seed: int = 0
    seeds: int = 1  # jobs run for seed, seed + 1, ..., seed + seeds - 1 (not in the identity)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "quick": self.quick, "seed": self.seed}


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    seed_document: str  # the seed notes it reproduces, e.g. "001"
    references: str
    jobs: Callable[[Config], list[tuple[str, dict[str, Any]]]]
    run: Callable[[dict[str, Any], int], dict[str, Any]]
    summarize: Callable[[dict[str, dict[str, Any]], Config], dict[str, Any]]
    figures: Callable[[dict[str, Any]], list[tuple[str, Any]]]
    tables: Callable[[dict[str, Any]], list[Table]]
    reading: Callable[[dict[str, Any]], str]
    setting: Callable[[Config], str]
    available: Callable[[], str | None] = lambda: None
    papers: Callable[[dict[str, Any]], list[list[str]]] | None = None


_MODULES = (
    "fastmem.study.exp_fitting",
    "fastmem.study.exp_constructions",
    "fastmem.study.exp_regions",
    "fastmem.study.exp_intervals",
    "fastmem.study.exp_critical",
    "fastmem.study.exp_information",
    "fastmem.study.exp_svd",
)

_EXTRA: dict[str, Experiment] = {}


def register(exp: Experiment) -> None:
    """Add an experiment (tests use this for failing / slow jobs); runs in-process only."""
    _EXTRA[exp.name] = exp


def unregister(name: str) -> None:
    _EXTRA.pop(name, None)


def experiments() -> dict[str, Experiment]:
    """All experiments in report order (available or not)."""
    out: dict[str, Experiment] = {}
    for mod in _MODULES:
        for exp in importlib.import_module(mod).EXPERIMENTS:
            out[exp.name] = exp
    out.update(_EXTRA)
    return out


def builtin() -> list[Experiment]:
    """The experiments a plain ``fastmem study`` runs: every built-in one (not tests'
    registered ones) that this install can run, in report order."""
    return [e for e in experiments().values() if e.name not in _EXTRA and e.available() is None]


def is_extra(name: str) -> bool:
    """True for an experiment added with :func:`register` (run in-process only)."""
    return name in _EXTRA


def get(name: str) -> Experiment:
    return experiments()[name]

"""``fastmem study``: the papers' experiments end to end, with a report.

Examples
--------
>>> from fastmem.study import registry
>>> "fitting" in registry.experiments()
True
"""

from __future__ import annotations

from .common import StudyInputError
from .report import render
from .runner import run_study

__all__ = ["StudyInputError", "render", "run_study"]

"""Every docstring example in the installed package runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
import warnings

import pytest

import fastmem

MODULES = [
    "fastmem",
    *sorted(
        m.name
        for m in pkgutil.walk_packages(fastmem.__path__, prefix="fastmem.")
        if not m.name.startswith(("fastmem._core", "fastmem._cuda", "fastmem._numba"))
    ),
]
# Examples that import an optional dependency run only where it is installed.
_OPTIONAL_IMPORT = re.compile(r"^\s*(?:import|from)\s+(torch|sklearn|matplotlib|dask)\b", re.M)


def _is_api_module(name: str) -> bool:
    """Library API modules; private ones and the study command's internals are exempt."""
    parts = name.split(".")
    return not any(p.startswith("_") for p in parts) and parts[:2] != ["fastmem", "study"]


def _missing_optional(test: doctest.DocTest) -> str | None:
    for example in test.examples:
        for name in _OPTIONAL_IMPORT.findall(example.source):
            if importlib.util.find_spec(name) is None:
                return name
    return None


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    skipped = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. ConvergenceWarning of a tiny sklearn fit
        for test in finder.find(module, module.__name__):
            missing = _missing_optional(test)
            if missing:
                skipped.append(f"{test.name} (needs {missing})")
                continue
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    if _is_api_module(name) and not skipped:
        # A public module documents its API with at least one example that runs.
        assert result.attempted > 0, f"{name}: no docstring example ran"
    if skipped and result.attempted == 0:
        pytest.skip("optional dependencies missing: " + ", ".join(skipped))

"""Every docstring example in the installed package runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. ConvergenceWarning of a tiny sklearn fit
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    if not name.rpartition(".")[2].startswith("_"):
        # A public module documents its API with at least one example that runs.
        assert result.attempted > 0, f"{name}: no docstring example ran"

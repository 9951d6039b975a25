"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import numpy as np


def on_backend_device(x: np.ndarray, backend: str):
    """The array as the backend consumes it: CuPy for cuda, NumPy otherwise."""
    if backend == "cuda":
        import cupy

        return cupy.asarray(x)
    return x


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array."""
    return x.get() if hasattr(x, "get") else np.asarray(x)


def backends_to_compare(names: list[str]) -> list[str]:
    """``names`` when there are at least two to compare; otherwise skip with the reason."""
    import pytest

    if len(names) < 2:
        pytest.skip(f"only {names} available here: nothing to compare across backends")
    return names

"""The kernel sets export the same kernels with the same parameters.

``fastmem._core`` (C++), ``fastmem._cuda`` (CUDA, where built) and ``fastmem._numba``
are interchangeable: the Python layer calls ``be.kernels.<name>(...)`` whichever backend
was chosen. A kernel added to one set and forgotten in another must fail here, not in a
user's session. Parameter names are read from pybind11's generated signatures and from
the Numba wrappers' Python signatures: two independent sources.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from fastmem import _numba

# Module-level helpers of the compiled modules that are not kernels.
NOT_KERNELS = {
    "_core": {"max_threads", "set_num_threads", "activation_kinds"},
    "_cuda": {"device_status", "runtime_version", "activation_kinds"},
}


# Kernels with no CUDA twin: the exact 2-D slice's one-pass cut keeps each thread's
# polygons in growing host buffers; on the GPU fastmem.plane counts, then emits
# (plane_cut_count, plane_cut_emit, which every kernel set has). plane_decide works on the
# mesh, which lives on the host: with the CUDA backend fastmem.plane decides the regions
# with NumPy (the same operations; tests/test_plane.py compares the two bit for bit).
# The segment engine's chained pass walks each segment's vertices one after the other
# (breakpoint_causes, chain_values): on the GPU the walk takes the GEMM over the vertices
# instead (fastmem._graph._Walk._act_affine; tests/test_chain.py compares the two).
CPU_ONLY = {"plane_cut", "plane_decide", "breakpoint_causes", "chain_values"}


def _numba_kernels() -> dict[str, list[str]]:
    kernels = {}
    for name in dir(_numba):
        obj = getattr(_numba, name)
        if name.startswith("_") or not inspect.isfunction(obj):
            continue
        if obj.__module__.startswith("fastmem._numba."):
            kernels[name] = list(inspect.signature(obj).parameters)
    return kernels


def _pybind_parameters(func: object) -> list[str]:
    """Parameter names of a pybind11 function (its first overload) from its docstring."""
    doc = func.__doc__ or ""
    name = func.__name__
    match = re.search(rf"^(?:1\. )?{re.escape(name)}\((.*)\) ->", doc, re.MULTILINE)
    assert match, f"no signature in the docstring of {name}: {doc[:200]!r}"
    params, depth, current = [], 0, ""
    for ch in match.group(1):  # split on top-level commas (types contain brackets)
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            params.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        params.append(current)
    return [p.split(":")[0].strip() for p in params]


def _compiled_kernels(module_name: str) -> dict[str, list[str]]:
    module = importlib.import_module(f"fastmem.{module_name}")
    kernels = {}
    for name in dir(module):
        obj = getattr(module, name)
        if name.startswith("_") or name in NOT_KERNELS[module_name] or not callable(obj):
            continue
        kernels[name] = _pybind_parameters(obj)
    return kernels


def _compiled_or_skip(module_name: str) -> dict[str, list[str]]:
    try:
        return _compiled_kernels(module_name)
    except ImportError as exc:
        pytest.skip(f"fastmem.{module_name} is not built here ({exc})")


def test_numba_all_lists_every_kernel():
    kernels = set(_numba_kernels())
    assert len(kernels) >= 12
    assert kernels <= set(_numba.__all__), sorted(kernels - set(_numba.__all__))


@pytest.mark.parametrize("module_name", ["_core", "_cuda"])
def test_compiled_kernels_match_numba(module_name):
    compiled = _compiled_or_skip(module_name)
    numba_kernels = _numba_kernels()
    if module_name == "_cuda":
        numba_kernels = {k: v for k, v in numba_kernels.items() if k not in CPU_ONLY}
    assert sorted(compiled) == sorted(numba_kernels), (
        f"only in {module_name}: {sorted(set(compiled) - set(numba_kernels))}; "
        f"only in _numba: {sorted(set(numba_kernels) - set(compiled))}"
    )
    for name, params in compiled.items():
        assert params == numba_kernels[name], f"{name}: {module_name} {params} != numba"


def test_pybind_signature_parser_reads_names():
    # The parser must see real names, or the comparison above compares nothing.
    compiled = _compiled_or_skip("_core")
    assert compiled["hash_patterns"] == ["codes", "out"]
    assert all("arg0" not in params for params in compiled.values())


@pytest.mark.parametrize("module_name", ["_core", "_cuda"])
def test_activation_kinds_agree_with_the_kernels(module_name):
    from fastmem import _kinds

    try:
        module = importlib.import_module(f"fastmem.{module_name}")
    except ImportError as exc:
        pytest.skip(f"fastmem.{module_name} is not built here ({exc})")
    compiled = module.activation_kinds()
    python = {
        name: (code, _kinds.bits_per_neuron(code)) for name, code in _kinds.ACTIVATIONS.items()
    }
    assert compiled == python

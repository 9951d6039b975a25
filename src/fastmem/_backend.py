"""Kernel backends: which exist, which one runs a call, and why.

fastmem has three kernel modules with the same function names and arguments:

``cpp``
    ``fastmem._core``, C++17 with OpenMP (NumPy arrays).
``cuda``
    ``fastmem._cuda``, CUDA (CuPy arrays, or anything exposing
    ``__cuda_array_interface__``). Each call runs on the device holding its arrays and
    launches on the stream they name (CuPy's current stream), without waiting for the
    GPU; reading a result on the host (CuPy) synchronises that stream.
``numba``
    ``fastmem._numba``, Numba JIT (NumPy arrays); the fallback kernel set of a
    pure-Python install.

Choice per call: an explicit ``backend=`` argument, else the environment
variable ``FASTMEM_BACKEND``, else the data's device (CuPy -> ``cuda``; NumPy ->
``cpp``, or ``numba`` when the C++ extension was not built). A requested
backend that is unavailable raises `BackendError` with the reason; it is never
replaced silently.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from .errors import BackendError, InputError

__all__ = ["BACKEND_NAMES", "Backend", "BackendInfo", "backends", "select_backend"]

BACKEND_NAMES = ("cpp", "cuda", "numba")
ENV_VAR = "FASTMEM_BACKEND"


@dataclass(frozen=True)
class BackendInfo:
    """Availability of one backend.

    Attributes
    ----------
    name : str
        ``"cpp"``, ``"cuda"`` or ``"numba"``.
    available : bool
        Whether kernels can run on this backend now.
    reason : str
        Why not (empty when available), e.g. ``"built without CUDA"``,
        ``"no CUDA device"``, ``"cupy not installed"``.
    details : str
        Version / threading information when available.
    """

    name: str
    available: bool
    reason: str = ""
    details: str = ""

    def __str__(self) -> str:
        state = f"available ({self.details})" if self.available else f"unavailable: {self.reason}"
        return f"{self.name}: {state}"


@dataclass(frozen=True)
class Backend:
    """A usable backend: its kernel module and array module."""

    name: str
    kernels: ModuleType
    xp: ModuleType

    @property
    def device(self) -> str:
        return "cuda" if self.name == "cuda" else "cpu"


def _cpu_lacks_sse42() -> bool:
    """True on a Linux x86-64 CPU without SSE4.2: fastmem._core is built for x86-64-v2
    (CMake option FASTMEM_X86_LEVEL) and would stop with an illegal instruction there."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            info = f.read(1 << 16)
    except OSError:
        return False
    return "flags" in info and "sse4_2" not in info


@cache
def _probe(name: str) -> tuple[BackendInfo, ModuleType | None]:
    if name == "cpp":
        if _cpu_lacks_sse42():
            why = (
                "this CPU lacks SSE4.2, which fastmem._core is compiled for; rebuild with "
                "-Ccmake.define.FASTMEM_X86_LEVEL= or use FASTMEM_BACKEND=numba"
            )
            return BackendInfo("cpp", False, why), None
        try:
            core = importlib.import_module("fastmem._core")
        except ImportError as exc:
            return BackendInfo("cpp", False, f"built without the C++ core ({exc})"), None
        threads = core.max_threads()
        omp = "OpenMP" if core.openmp else "no OpenMP"
        return BackendInfo("cpp", True, details=f"{omp}, {threads} threads"), core
    if name == "numba":
        if importlib.util.find_spec("numba") is None:
            return BackendInfo("numba", False, "numba not installed"), None
        try:
            kernels = importlib.import_module("fastmem._numba")
        except Exception as exc:  # a broken numba install must not break import fastmem
            return BackendInfo("numba", False, f"numba failed to import: {exc}"), None
        return BackendInfo("numba", True, details=f"numba {kernels.numba_version}"), kernels
    if name == "cuda":
        try:
            cuda = importlib.import_module("fastmem._cuda")
        except ImportError:
            return BackendInfo("cuda", False, "built without CUDA"), None
        n_devices, why = cuda.device_status()
        if n_devices == 0:
            return BackendInfo("cuda", False, f"no CUDA device ({why})"), None
        if importlib.util.find_spec("cupy") is None:
            return BackendInfo("cuda", False, "cupy not installed"), None
        version = cuda.runtime_version()
        return (
            BackendInfo("cuda", True, details=f"{n_devices} device(s), CUDA runtime {version}"),
            cuda,
        )
    raise AssertionError(name)


def backends() -> dict[str, BackendInfo]:
    """Report every kernel backend: available or not, and why not.

    Returns
    -------
    dict of str to BackendInfo
        Keyed by ``"cpp"``, ``"cuda"``, ``"numba"``.

    Examples
    --------
    >>> import fastmem
    >>> info = fastmem.backends()
    >>> sorted(info)
    ['cpp', 'cuda', 'numba']
    >>> info["numba"].available
    True
    """
    return {name: _probe(name)[0] for name in BACKEND_NAMES}


def _requested(backend: str | None) -> tuple[str | None, str]:
    if backend is not None:
        if backend not in BACKEND_NAMES:
            raise InputError(f"backend: must be one of {BACKEND_NAMES} or None, got {backend!r}")
        return backend, f"backend={backend!r}"
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if not env:
        return None, ""
    if env not in BACKEND_NAMES:
        raise BackendError(f"{ENV_VAR}={env!r} is not one of {', '.join(BACKEND_NAMES)}")
    return env, f"{ENV_VAR}={env}"


def array_module(device: str) -> ModuleType:
    if device == "cuda":
        try:
            import cupy
        except ImportError as exc:
            raise BackendError(f"the cuda backend needs CuPy: {exc}") from exc
        return cupy
    return np


def select_backend(device: str = "cpu", backend: str | None = None) -> Backend:
    """Pick the backend for data on ``device`` (``"cpu"`` or ``"cuda"``).

    Parameters
    ----------
    device : {"cpu", "cuda"}
        Where the caller's arrays live.
    backend : {"cpp", "cuda", "numba"}, optional
        Force a backend; otherwise ``FASTMEM_BACKEND`` or the automatic choice.

    Raises
    ------
    BackendError
        The forced (or, for CUDA data, the only possible) backend is unavailable.

    Examples
    --------
    >>> from fastmem import select_backend
    >>> select_backend("cpu", backend="numba").name
    'numba'
    """
    name, source = _requested(backend)
    if name is None:
        if device == "cuda":
            name, source = "cuda", "the data is on a CUDA device"
        else:
            name = "cpp" if _probe("cpp")[0].available else "numba"
            source = "automatic choice"
    info, kernels = _probe(name)
    if kernels is None:
        raise BackendError(f"backend {name!r} ({source}) is unavailable: {info.reason}")
    return Backend(name=name, kernels=kernels, xp=array_module("cuda" if name == "cuda" else "cpu"))


def to_device(x: Any, device: str) -> Any:
    """Move an array to ``device`` (no copy when already there)."""

    cp = sys.modules.get("cupy")
    on_gpu = cp is not None and isinstance(x, cp.ndarray)
    if device == "cuda" and not on_gpu:
        return array_module("cuda").asarray(x)
    if device == "cpu" and on_gpu:
        return x.get()
    return x

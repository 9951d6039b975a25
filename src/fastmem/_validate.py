"""Input checking shared by every public entry point.

Array libraries are detected through ``sys.modules`` so that CuPy or torch are
never imported just to check a type.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "array_device",
    "as_float_array",
    "as_generator",
    "check_dtype",
    "common_device",
    "positive_int",
    "to_host",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_generator(rng: Any, name: str = "rng") -> np.random.Generator:
    """The one reading of an ``rng=`` argument: a Generator, a non-negative int seed or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        if rng is not None and int(rng) < 0:
            raise InputError(f"{name}: a seed must be >= 0, got {rng}")
        return np.random.default_rng(None if rng is None else int(rng))
    raise InputError(f"{name}: must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools and non-integers are refused)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def to_host(x: Any) -> Any:
    """A CuPy array copied to a NumPy array; anything else returned as it is."""
    return x.get() if _is_cupy(x) else x


def _is_cupy(x: Any) -> bool:
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(x, cp.ndarray)


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def array_device(x: Any) -> str:
    """Return ``"cuda"`` for CuPy arrays and CUDA torch tensors, else ``"cpu"``."""
    if _is_cupy(x):
        return "cuda"
    if _is_torch(x) and x.device.type == "cuda":
        return "cuda"
    return "cpu"


def common_device(**named: Any) -> str:
    """The device shared by all named arrays; `InputError` if they are mixed."""
    devices = {name: array_device(x) for name, x in named.items() if x is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise InputError(
            f"arrays live on different devices ({where}); move them to one device "
            "(cupy.asarray / .get(), or Network.to)"
        )
    return next(iter(devices.values()), "cpu")


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """Normalise a floating dtype argument (float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InputError(f"{name}: {dtype!r} is not a dtype") from exc
    if dt not in FLOAT_DTYPES:
        raise InputError(f"{name}: must be float32 or float64, got {dt}")
    return dt


def _to_host_or_cupy(x: Any, name: str) -> Any:
    if _is_cupy(x):
        return x
    if _is_torch(x):
        x = x.detach()
        if x.device.type == "cuda":
            import cupy  # the caller's data is already on the GPU

            return cupy.asarray(x)
        return x.cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be converted to an array ({exc})") from exc


def as_float_array(
    x: Any,
    name: str,
    *,
    ndim: int,
    dtype: np.dtype,
    xp: Any = np,
    allow_empty: bool = False,
) -> Any:
    """Check and convert one numeric input.

    Returns a C-contiguous array of ``dtype`` on the array module ``xp``. Raises
    `InputError` naming ``name`` for a wrong ndim, a non-numeric dtype, an
    empty array (unless ``allow_empty``), NaN or Inf, or an array that lives on
    another device than ``xp``.
    """
    arr = _to_host_or_cupy(x, name)
    on_gpu = _is_cupy(arr)
    if on_gpu != (xp is not np):
        have, want = ("CuPy (cuda)", "NumPy (cpu)") if on_gpu else ("NumPy (cpu)", "CuPy (cuda)")
        raise InputError(
            f"{name}: is a {have} array but the computation runs on {want}; "
            "do not mix devices (move the array, or the network with Network.to)"
        )
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise InputError(f"{name}: must be numeric (bool, int or float), got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape_hint = {1: "(n,)", 2: "(n, d)"}.get(ndim, f"{ndim}-D")
        raise InputError(f"{name}: expected a {ndim}-D array {shape_hint}, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise InputError(f"{name}: is empty (shape {arr.shape})")
    with np.errstate(over="ignore"):  # overflow is reported just below, by name
        arr = xp.ascontiguousarray(arr, dtype=dtype)
    # Checked after the cast: float64 values beyond float32's range become Inf.
    if arr.size and not bool(xp.isfinite(arr).all()):
        bad = int((~xp.isfinite(arr)).sum())
        raise InputError(f"{name}: contains {bad} NaN or Inf value(s)")
    return arr

"""Input checking shared by every public entry point.

Array libraries are detected through ``sys.modules`` so that CuPy or torch are
never imported just to check a type.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "array_device",
    "as_bool",
    "as_float_array",
    "as_generator",
    "as_labels",
    "as_path",
    "available_memory",
    "check_allocation",
    "check_dtype",
    "check_npz_sizes",
    "common_device",
    "finite_float",
    "format_bytes",
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
    # min and max carry any NaN (NumPy and CuPy propagate it) or Inf: two passes without
    # a boolean temporary of the array's size
    if arr.size and not (math.isfinite(float(arr.min())) and math.isfinite(float(arr.max()))):
        bad = int((~xp.isfinite(arr)).sum())
        raise InputError(f"{name}: contains {bad} NaN or Inf value(s)")
    return arr


def as_labels(y: Any, name: str, n: int | None = None) -> np.ndarray:
    """Integer class labels: a 1-D int64 host array of ``n`` non-negative entries.

    Floats are accepted when every value is finite and integral; anything else (NaN,
    Inf, fractions, negative, 2-D, objects, strings, the wrong length) is an
    `InputError` naming ``name``.
    """
    arr = to_host(_to_host_or_cupy(y, name))
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array of class labels, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name}: has {arr.shape[0]} labels for {n} rows")
    if arr.size == 0:
        raise InputError(f"{name}: is empty")
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise InputError(f"{name}: must hold integer class labels (finite, integral values)")
        if np.abs(arr).max() >= 2.0**62:
            raise InputError(f"{name}: labels of magnitude 2**62 or more are not supported")
    elif arr.dtype.kind not in "iu" or (arr.dtype == np.uint64 and int(arr.max()) >= 2**62):
        raise InputError(f"{name}: must hold integer class labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if int(arr.min()) < 0:
        raise InputError(f"{name}: class labels must be >= 0, got {int(arr.min())}")
    return arr


def finite_float(
    value: Any, name: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = False
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}: must be a real number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        lo = "(" if low_open else "["
        raise InputError(f"{name}: must be finite and in {lo}{low:g}, {high:g}], got {value!r}")
    return v


def as_bool(value: Any, name: str) -> bool:
    """``value`` as a bool (Python or NumPy bool only)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: must be True or False, got {value!r}")
    return bool(value)


def as_path(path: Any, name: str = "path") -> str:
    """A filesystem path argument as a ``str``."""
    try:
        return os.fspath(path)
    except TypeError as exc:
        raise InputError(f"{name}: must be a str or os.PathLike path, got {path!r}") from exc


# ------------------------------------------------------------------ sizes
# Allocations below this are never checked: reading the limits costs ~50 us, and a
# machine that cannot give 64 MiB fails anywhere.
_UNCHECKED_BYTES = 64 << 20


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Room left under this process's cgroup memory limit (v2, then v1), if any; the
    cgroup's inactive page cache counts as room (the kernel reclaims it first)."""
    for d, limit_name, usage_name, cache_key in (
        ("/sys/fs/cgroup/", "memory.max", "memory.current", "inactive_file"),
        ("/sys/fs/cgroup/memory/", "memory.limit_in_bytes", "memory.usage_in_bytes",
         "total_inactive_file"),
    ):  # fmt: skip
        limit = _read_int(d + limit_name)
        if limit is None or limit >= 1 << 60:  # "max" / a huge v1 value: no limit
            continue
        usage = _read_int(d + usage_name) or 0
        cache = 0
        try:
            with open(d + "memory.stat") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == cache_key:
                        cache = int(value)
        except (OSError, ValueError):
            pass
        return max(0, limit - usage + cache)
    return None


def _address_space_room() -> int | None:
    """Room left under ``RLIMIT_AS`` (``ulimit -v``), if it is set."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


def available_memory(xp: Any = np) -> tuple[int, str]:
    """Bytes a new allocation can take now on ``xp``'s device, and where that comes from.

    CPU: the least of ``MemAvailable`` (``/proc/meminfo``; else the physical memory,
    ``sysconf``), the room under the cgroup's memory limit and under ``RLIMIT_AS``.
    CuPy: the device's free memory plus what CuPy's pool holds unused.
    """
    if xp is not np:
        free, _ = xp.cuda.runtime.memGetInfo()
        return int(free) + int(xp.get_default_memory_pool().free_bytes()), "free GPU memory"
    found: list[tuple[int, str]] = []
    avail = _meminfo_available()
    if avail is not None:
        found.append((avail, "MemAvailable"))
    else:
        try:
            found.append(
                (os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory")
            )
        except (ValueError, OSError, AttributeError):
            pass
    room = _cgroup_room()
    if room is not None:
        found.append((room, "under the cgroup memory limit"))
    room = _address_space_room()
    if room is not None:
        found.append((room, "under ulimit -v"))
    if not found:  # nothing readable: do not refuse
        return 1 << 62, "unknown"
    return min(found)


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable size (``"74.5 GiB"``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_allocation(nbytes: float, what: str, argument: str, xp: Any = np) -> None:
    """Refuse, before allocating, memory that is not there.

    ``nbytes``: an estimate of what ``what`` (a noun phrase: "the pieces of layer 3")
    needs on ``xp``'s device (a float is fine: sizes from products of arguments may
    exceed int64). Raises `InputError` naming ``argument``, saying what it would need
    and what is available, when it exceeds :func:`available_memory`.
    """
    if nbytes <= _UNCHECKED_BYTES:
        return
    avail, source = available_memory(xp)
    if nbytes > avail:
        raise InputError(
            f"{argument}: {what} would need about {format_bytes(nbytes)}, but only "
            f"{format_bytes(avail)} is available ({source}); refused before allocating"
        )


def check_npz_sizes(path: Any, argument: str = "path") -> None:
    """Refuse an ``.npz`` whose members' headers promise arrays that cannot be loaded.

    Reads only the zip directory and each ``.npy`` header (no data): a member whose
    header promises more bytes than the member holds (a damaged or hostile file), or
    members that together need more memory than is available, raise `InputError`
    naming ``argument``. Anything unreadable here is left to the loader's own errors.
    """
    import zipfile

    start = None
    if hasattr(path, "seek") and hasattr(path, "tell"):  # a file object: put it back
        try:
            start = path.tell()
        except Exception:
            return
    try:
        _check_npz_members(zipfile.ZipFile(path), argument)
    except InputError:
        raise
    except Exception:  # not a zip, not a path: the loader reports it
        pass
    finally:
        if start is not None:
            path.seek(start)


def _check_npz_members(zf: Any, argument: str) -> None:
    total = 0
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    header = f.tell()
            except Exception:  # a damaged header: the loader reports it
                continue
            if dtype.hasobject:
                continue
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size - header:
                raise InputError(
                    f"{argument}: member {info.filename!r} promises a {shape} {dtype} array "
                    f"({format_bytes(nbytes)}) but holds {format_bytes(info.file_size - header)}"
                    ": the file is damaged"
                )
            total += nbytes
    check_allocation(total, "the arrays of this file", argument)

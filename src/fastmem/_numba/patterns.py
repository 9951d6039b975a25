"""Activation, pattern packing and hashing (see cpp/include/fastmem/patterns.hpp)."""

from __future__ import annotations

import numba as nb
import numpy as np

from .._kinds import bits_per_neuron
from .activations import (
    N_KINDS,
    _activate,
    _bits_per_neuron,
    _clamp_high,
    _clamp_low,
    _is_clamp,
    _state,
)

_ONE = np.uint64(1)
_SIX = np.uint64(6)
_M63 = np.uint64(63)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
HASH_IV = np.uint64(0x6A09E667F3BCC909)


@nb.njit(cache=True, error_model="numpy")
def _mix64(z):
    z ^= z >> _S30
    z *= _MUL1
    z ^= z >> _S27
    z *= _MUL2
    z ^= z >> _S31
    return z


@nb.njit(parallel=True, cache=True)
def _apply_activation(z, kind, slope):
    rows, width = z.shape
    for i in nb.prange(rows):
        for j in range(width):
            z[i, j] = _activate(z[i, j], kind, slope)


@nb.njit(parallel=True, cache=True)
def _pack_and_activate(z, codes, bit_offset, kind, slope):
    rows, width = z.shape
    bpn = _bits_per_neuron(kind)
    for i in nb.prange(rows):
        for j in range(width):
            v = z[i, j]
            state = _state(v, kind)
            first = bit_offset + j * bpn
            for b in range(bpn):
                if (state >> np.uint64(b)) & _ONE:
                    g = np.uint64(first + b)
                    codes[i, g >> _SIX] |= _ONE << (g & _M63)
            z[i, j] = _activate(v, kind, slope)


@nb.njit(parallel=True, cache=True)
def _hash_patterns(codes, out):
    rows, n_words = codes.shape
    for i in nb.prange(rows):
        h = HASH_IV
        for w in range(n_words):
            h = _mix64(h ^ codes[i, w])
        out[i] = h


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"fastmem._numba: {what}")


def _check_float_matrix(z: np.ndarray, name: str) -> None:
    _require(
        isinstance(z, np.ndarray) and z.dtype in (np.float32, np.float64),
        f"{name} must be a float32 or float64 ndarray",
    )
    _require(z.ndim == 2 and z.flags.c_contiguous, f"{name} must be 2-D and C-contiguous")


def _check_kind(kind: int) -> None:
    _require(0 <= kind < N_KINDS, "unknown activation kind")


@nb.njit(parallel=True, cache=True)
def _snap_thresholds(z, h, fan_in, w_abs_sum, b_abs, kind, gamma):
    rows, width = z.shape
    for i in nb.prange(rows):
        peak = 0.0
        for k in range(fan_in):
            a = -h[i, k] if h[i, k] < 0.0 else h[i, k]
            peak = a if a > peak else peak
        for j in range(width):
            band = gamma * (peak * w_abs_sum[j] + b_abs[j])
            v = z[i, j]
            if not band - band == 0.0:  # an overflowed band snaps nothing
                continue
            if _is_clamp(kind):
                c0, c1 = _clamp_low(kind), _clamp_high(kind)
                if v - c0 <= band and c0 - v <= band:
                    z[i, j] = c0
                elif v - c1 <= band and c1 - v <= band:
                    z[i, j] = c1
            elif v <= band and -v <= band:
                z[i, j] = 0.0


def snap_thresholds(
    z: np.ndarray,
    h: np.ndarray,
    fan_in: int,
    w_abs_sum: np.ndarray,
    b_abs: np.ndarray,
    kind: int,
    gamma: float,
) -> None:
    """Snap float64 pre-activations onto thresholds within rounding (activations.hpp's
    ``snap_row``; the reference is fastmem._kinds.snap_reference)."""
    for name, a, nd in (("z", z, 2), ("h", h, 2), ("w_abs_sum", w_abs_sum, 1), ("b_abs", b_abs, 1)):
        _require(
            isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == nd
            and a.flags.c_contiguous,
            f"{name} must be a C-contiguous {nd}-D float64 ndarray",
        )  # fmt: skip
    _require(z.shape[0] == h.shape[0], "z and h must have the same number of rows")
    _require(0 <= fan_in <= h.shape[1], "fan_in exceeds h's columns")
    _require(
        w_abs_sum.shape[0] == z.shape[1] and b_abs.shape[0] == z.shape[1],
        "w_abs_sum and b_abs must have one entry per column of z",
    )
    _check_kind(kind)
    _snap_thresholds(z, h, int(fan_in), w_abs_sum, b_abs, int(kind), float(gamma))


def apply_activation(z: np.ndarray, kind: int, slope: float) -> None:
    """Apply activation ``kind`` to ``z`` (rows, width) in place."""
    _check_float_matrix(z, "z")
    _check_kind(kind)
    # The slope is rounded to z's dtype first, as the compiled kernels do.
    _apply_activation(z, int(kind), z.dtype.type(slope))


def pack_and_activate(
    z: np.ndarray, codes: np.ndarray, bit_offset: int, kind: int, slope: float
) -> None:
    """OR the state bits of ``z`` into ``codes`` from ``bit_offset``, then activate ``z``."""
    _check_float_matrix(z, "z")
    _check_kind(kind)
    _require(
        isinstance(codes, np.ndarray) and codes.dtype == np.uint64 and codes.ndim == 2,
        "codes must be a 2-D uint64 ndarray",
    )
    _require(codes.flags.c_contiguous, "codes must be C-contiguous")
    _require(z.shape[0] == codes.shape[0], "z and codes must have the same number of rows")
    bpn = bits_per_neuron(kind)
    _require(
        bit_offset >= 0 and bit_offset + z.shape[1] * bpn <= 64 * codes.shape[1],
        "pattern bits exceed codes width",
    )
    _pack_and_activate(z, codes, int(bit_offset), int(kind), z.dtype.type(slope))


def hash_patterns(codes: np.ndarray, out: np.ndarray) -> None:
    """Write the 64-bit hash of every row of ``codes`` into ``out``."""
    _require(
        isinstance(codes, np.ndarray) and codes.dtype == np.uint64 and codes.ndim == 2,
        "codes must be a 2-D uint64 ndarray",
    )
    _require(
        isinstance(out, np.ndarray) and out.dtype == np.uint64 and out.ndim == 1,
        "out must be a 1-D uint64 ndarray",
    )
    _require(codes.flags.c_contiguous and out.flags.c_contiguous, "arrays must be C-contiguous")
    _require(codes.shape[0] == out.shape[0], "codes and out must have the same number of rows")
    _hash_patterns(codes, out)

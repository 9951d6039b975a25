"""Activation kinds for the Numba kernels (see cpp/include/fastmem/activations.hpp).

Value, state bits, slope and thresholds of each piecewise-linear kind, defined once for
every Numba kernel. Kink convention (PyTorch autograd's): slope 0 at ``z = 0`` for relu,
``slope`` at ``z = 0`` for leaky_relu, 0 at both ends of a clamp (hard-tanh: ``z = -1`` and
``z = +1``; relu6: 0 and 6), 0 everywhere for threshold. The ``_k`` variants take every
constant from ``k = _consts(dtype)`` (``[0, 1, 2, -1, 6]`` in the kernel's dtype) so that
float32 arithmetic stays float32.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._kinds import ACTIVATIONS, HARDTANH, LEAKY_RELU, RELU, RELU6, THRESHOLD

__all__ = [
    "HARDTANH",
    "LEAKY_RELU",
    "N_KINDS",
    "RELU",
    "RELU6",
    "THRESHOLD",
    "_activate",
    "_activate_k",
    "_activation_slope",
    "_activation_slope_k",
    "_bits_per_neuron",
    "_clamp_high",
    "_clamp_low",
    "_consts",
    "_is_clamp",
    "_n_thresholds",
    "_state",
    "_threshold",
    "_threshold_k",
]

#: Kernel codes run 0 .. N_KINDS - 1.
N_KINDS = len(ACTIVATIONS)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _is_clamp(kind):
    return kind == HARDTANH or kind == RELU6


@nb.njit(cache=True, error_model="numpy", inline="always")
def _clamp_low(kind):
    return 0.0 if kind == RELU6 else -1.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def _clamp_high(kind):
    return 6.0 if kind == RELU6 else 1.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def _n_thresholds(kind):
    return 2 if _is_clamp(kind) else 1


@nb.njit(cache=True, error_model="numpy", inline="always")
def _threshold(kind, i):
    # threshold i (increasing): a clamp's ends, else 0
    if _is_clamp(kind):
        return _clamp_low(kind) if i == 0 else _clamp_high(kind)
    return 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def _bits_per_neuron(kind):
    return _n_thresholds(kind)


def _consts(dtype):
    # Constants in the kernels' dtype: a float64 literal would promote float32 arithmetic
    # and break bit-identity with the C++ kernels. [0]: 0, [1]: 1, [2]: 2, [3]: -1, [4]: 6
    # (relu6's high end).
    return np.array([0, 1, 2, -1, 6], dtype=dtype)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _threshold_k(kind, i, k):
    # _threshold in k's dtype
    if kind == HARDTANH:
        return k[3] if i == 0 else k[1]
    if kind == RELU6:
        return k[0] if i == 0 else k[4]
    return k[0]


@nb.njit(cache=True, error_model="numpy")
def _activate(z, kind, slope):
    # Literal constants (not z * 0) so that ReLU gives +0.0 like the C++ kernels.
    if kind == RELU:
        return z if z > 0 else 0.0
    if kind == LEAKY_RELU:
        return z if z > 0 else slope * z
    if _is_clamp(kind):
        lo, hi = _clamp_low(kind), _clamp_high(kind)
        if z < lo:
            return lo
        if z > hi:
            return hi
        return z
    return 1.0 if z >= 0 else 0.0


@nb.njit(cache=True, error_model="numpy")
def _activate_k(z, kind, slope, k):
    # _activate with every constant taken from k (z's dtype), for float32 arithmetic.
    if kind == RELU:
        return z if z > k[0] else k[0]
    if kind == LEAKY_RELU:
        return z if z > k[0] else slope * z
    if _is_clamp(kind):
        lo, hi = _threshold_k(kind, 0, k), _threshold_k(kind, 1, k)
        return lo if z < lo else (hi if z > hi else z)
    return k[1] if z >= k[0] else k[0]


@nb.njit(cache=True, error_model="numpy")
def _state(z, kind):
    if _is_clamp(kind):
        s = np.uint64(0)
        if z > _clamp_low(kind):
            s |= np.uint64(1)
        if z > _clamp_high(kind):
            s |= np.uint64(2)
        return s
    if kind == THRESHOLD:
        return np.uint64(1) if z >= 0 else np.uint64(0)
    return np.uint64(1) if z > 0 else np.uint64(0)


@nb.njit(cache=True, error_model="numpy")
def _activation_slope(z, kind, slope):
    # The derivative at z (kink convention in the module docstring).
    if kind == RELU:
        return 1.0 if z > 0 else 0.0
    if kind == LEAKY_RELU:
        return 1.0 if z > 0 else slope
    if _is_clamp(kind):
        return 1.0 if (z > _clamp_low(kind) and z < _clamp_high(kind)) else 0.0
    return 0.0


@nb.njit(cache=True, error_model="numpy")
def _activation_slope_k(z, kind, slope, k):
    # _activation_slope with every constant taken from k (z's dtype).
    if kind == RELU:
        return k[1] if z > k[0] else k[0]
    if kind == LEAKY_RELU:
        return k[1] if z > k[0] else slope
    if _is_clamp(kind):
        return k[1] if (z > _threshold_k(kind, 0, k) and z < _threshold_k(kind, 1, k)) else k[0]
    return k[0]

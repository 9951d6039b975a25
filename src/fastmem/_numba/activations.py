"""Activation kinds for the Numba kernels (see cpp/include/fastmem/activations.hpp).

Value, state bits and slope of each piecewise-linear kind, defined once for every Numba
kernel. Kink convention (PyTorch autograd's): slope 0 at ``z = 0`` for relu, ``slope`` at
``z = 0`` for leaky_relu, 0 at ``z = -1`` and ``z = +1`` for hard-tanh, 0 everywhere for
threshold. The ``_k`` variants take every constant from ``k = _consts(dtype)``
(``[0, 1, 2, -1]`` in the kernel's dtype) so that float32 arithmetic stays float32.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._kinds import HARDTANH, LEAKY_RELU, RELU, THRESHOLD, bits_per_neuron

__all__ = [
    "HARDTANH",
    "LEAKY_RELU",
    "RELU",
    "THRESHOLD",
    "_activate",
    "_activate_k",
    "_activation_slope",
    "_activation_slope_k",
    "_bits_per_neuron",
    "_state",
]

_bits_per_neuron = nb.njit(cache=True, error_model="numpy")(bits_per_neuron)


@nb.njit(cache=True, error_model="numpy")
def _activate(z, kind, slope):
    # Literal constants (not z * 0) so that ReLU gives +0.0 like the C++ kernels.
    if kind == RELU:
        return z if z > 0 else 0.0
    if kind == LEAKY_RELU:
        return z if z > 0 else slope * z
    if kind == HARDTANH:
        if z < -1:
            return -1.0
        if z > 1:
            return 1.0
        return z
    return 1.0 if z >= 0 else 0.0


@nb.njit(cache=True, error_model="numpy")
def _activate_k(z, kind, slope, k):
    # _activate with every constant taken from k (z's dtype), for float32 arithmetic.
    if kind == RELU:
        return z if z > k[0] else k[0]
    if kind == LEAKY_RELU:
        return z if z > k[0] else slope * z
    if kind == HARDTANH:
        return k[3] if z < k[3] else (k[1] if z > k[1] else z)
    return k[1] if z >= k[0] else k[0]


@nb.njit(cache=True, error_model="numpy")
def _state(z, kind):
    if kind == HARDTANH:
        s = np.uint64(0)
        if z > -1:
            s |= np.uint64(1)
        if z > 1:
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
    if kind == HARDTANH:
        return 1.0 if (z > -1 and z < 1) else 0.0
    return 0.0


@nb.njit(cache=True, error_model="numpy")
def _activation_slope_k(z, kind, slope, k):
    # _activation_slope with every constant taken from k (z's dtype).
    if kind == RELU:
        return k[1] if z > k[0] else k[0]
    if kind == LEAKY_RELU:
        return k[1] if z > k[0] else slope
    if kind == HARDTANH:
        return k[1] if (z > k[3] and z < k[1]) else k[0]
    return k[0]

"""Activation kinds: the Python home of their codes and facts.

The C++/CUDA home is cpp/include/fastmem/activations.hpp (``fastmem._core.activation_kinds()``
reports its table; tests/test_kernel_parity.py checks that the two agree), the Numba home
src/fastmem/_numba/activations.py. Convention at a kink (PyTorch autograd's): the slope is 0
at ``z = 0`` for relu, ``slope`` at ``z = 0`` for leaky_relu, 0 at ``z = -1`` and ``z = +1``
for hard-tanh, 0 everywhere for threshold (tests/test_activations.py checks all homes).
"""

from __future__ import annotations

from typing import Any

RELU, LEAKY_RELU, HARDTANH, THRESHOLD = 0, 1, 2, 3

#: Piecewise-linear hidden activations and their kernel codes.
ACTIVATIONS = {"relu": RELU, "leaky_relu": LEAKY_RELU, "hardtanh": HARDTANH, "threshold": THRESHOLD}


def bits_per_neuron(kind: int) -> int:
    """Pattern bits one neuron of activation code ``kind`` owns (hard-tanh: two states)."""
    return 2 if kind == HARDTANH else 1


def activation_slope(z: Any, kind: int, slope: float, xp: Any) -> Any:
    """The derivative of activation code ``kind`` at each entry of ``z`` (array of ``xp``).

    Same dtype as ``z``; at a kink the slope of PyTorch autograd (module docstring).
    """
    if kind == RELU:
        return (z > 0).astype(z.dtype)
    if kind == LEAKY_RELU:
        return xp.where(z > 0, 1.0, slope).astype(z.dtype)
    if kind == HARDTANH:
        return ((z > -1) & (z < 1)).astype(z.dtype)
    return xp.zeros_like(z)

"""Activation kinds: the Python home of their codes and facts.

The C++/CUDA home is cpp/include/fastmem/activations.hpp (``fastmem._core.activation_kinds()``
reports its table; tests/test_kernel_parity.py checks that the two agree), the Numba home
src/fastmem/_numba/activations.py. Convention at a kink (PyTorch autograd's): the slope is 0
at ``z = 0`` for relu, ``slope`` at ``z = 0`` for leaky_relu, 0 at ``z = -1`` and ``z = +1``
for hard-tanh, 0 everywhere for threshold (tests/test_activations.py checks all homes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


def thresholds(kind: int) -> tuple[float, ...]:
    """Where activation code ``kind`` changes branch (its pattern bits change there)."""
    return (-1.0, 1.0) if kind == HARDTANH else (0.0,)


# Higham's gamma_{n+1} for a float64 dot product of n terms plus a bias: the computed value
# is within gamma * (sum |w_i h_i| + |b|) of the exact one, in any order, FMA or not.
def _gamma64(n: int) -> float:
    t = (n + 1) * 2.0**-53
    return t / (1.0 - t)


def snap_to_thresholds(
    z: Any, h: Any, fan_in: int, w_abs_sum: Any, b_abs: Any, kind: int, kernels: Any
) -> None:
    """Set to the threshold, in place, every float64 pre-activation that rounding cannot
    tell from it: ``|z - theta| <= gamma_{n+1} (||w_j||_1 max_i |h_i| + |b_j|)``.

    ``z`` (rows, m) = ``h[:, :fan_in]`` ``W^T + b``; ``w_abs_sum`` (m,) the row sums of
    ``|W|``, ``b_abs`` (m,). A neuron whose exact pre-activation sits on a threshold while
    its inputs vary (inputs that cancel) is computed as the threshold plus noise of either
    sign: the forward pass and the segment engine both read it as on the threshold (the
    state a kink belongs to), so the state does not flicker from point to point. float32
    values are left alone (their bound is too wide to be a tie rule; float32 counts are
    approximate). Per row, so the result does not depend on the batch. Applied to the
    hidden layers after the first: the first layer's pre-activations depend on the input
    coordinates directly. One kernel pass (``snap_thresholds``: C++, CUDA, Numba; the
    plain reference is :func:`snap_reference`).
    """
    if z.dtype != np.float64 or z.size == 0:
        return
    kernels.snap_thresholds(z, h, fan_in, w_abs_sum, b_abs, kind, _gamma64(fan_in))


def snap_reference(z: Any, h: Any, w_abs_sum: Any, b_abs: Any, kind: int) -> None:
    """Plain NumPy statement of :func:`snap_to_thresholds` (``h``: the ``fan_in`` inputs)."""
    if z.dtype != np.float64 or z.size == 0:
        return
    gamma = _gamma64(h.shape[1])
    peak = np.abs(h).max(axis=1) if h.shape[1] else np.zeros(h.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        band = gamma * (peak[:, None] * w_abs_sum[None, :] + b_abs[None, :])
        finite = np.isfinite(band)  # an overflowed band snaps nothing
        near = [finite & (z - t <= band) & (t - z <= band) for t in thresholds(kind)]
        for theta, mask in reversed(list(zip(thresholds(kind), near, strict=True))):
            z[mask] = theta  # within both of hard-tanh's bands (> 1): -1, the first

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


def carry_snap(
    bias: Any, reader: int | None, w_abs: Any, slope: float, kind: int, xp: Any
) -> tuple[Any, float, float]:
    """The snap arguments (``snap_to``, ``snap_unit``, ``snap_w``) of the
    ``next_preactivations`` kernels for a next layer with bias ``bias`` and row sums
    ``w_abs`` (``sum_j |W_kj|``), read by the activation code ``reader`` (None: max
    pooling), after an activation of code ``kind``; ``snap_to`` None where nothing is
    snapped.

    The kernels compute the next layer at a piece's breakpoints from its values at the
    piece's ends by rank-1 updates (``carry_to_breakpoints`` in
    cpp/include/fastmem/regions.hpp). A neuron whose inputs are all off along part of a
    piece (a bias-free convolution over dead neurons) is exactly its bias there, and the
    forward pass computes exactly that; the updates leave noise of either sign, so its
    state would differ from the forward pass's where the bias sits on a threshold (or,
    before max pooling, where a window's equal entries tie). So the kernels set a carried
    value within the carry's rounding band of ``snap_to[k]`` (the bias; NaN: not read so)
    to it.

    The band: a carried value is the piece's left value plus ``dr`` times running slopes
    summed over the piece's ``n_bp`` breakpoints; each slope is ``znh - znl`` less and then
    plus, once each, the rank-1 terms of the ``n_flips`` neurons that flip in the piece,
    ``|f_j W_kj| <= ds |W_kj| (|z_j(l)| + |z_j(r)|)`` (``ds``: the largest change of the
    activation's slope). So it lies within ``gamma_m (2 |znl_k| + 2 |znh_k| + 4 ds ||W_k||_1
    P)`` of the exact value (Higham's ``gamma_m``, ``m = 2 n_flips + n_bp + 4``; ``P``: the
    largest ``|z_j|`` at the piece's ends over its candidates, the neurons that may flip).
    The kernels take, per piece, ``snap_unit m (2 max_k (|znl_k| + |znh_k|) + snap_w P)``:
    ``snap_unit`` twice ``gamma_m / m`` (``m u < 1e-3``), ``snap_w = 4 ds max_k ||W_k||_1``
    over the snapped neurons (:func:`carry_snap_reference`). float64 only, as
    :func:`snap_to_thresholds`.
    """
    none = (None, 0.0, 0.0)
    if bias.dtype != np.float64:
        return none
    cols = snap_targets(bias, reader, xp)
    if cols.shape[0] == 0:
        return none
    snap_to = xp.full(bias.shape[0], np.nan)
    snap_to[cols] = bias[cols]
    ds = max(1.0, abs(1.0 - slope)) if kind == LEAKY_RELU else 1.0
    return snap_to, 2 * 2.0**-53 / (1 - 1e-3), 4 * ds * float(w_abs[cols].max())


def carry_snap_reference(
    rows: Any, zl: Any, zh: Any, znl: Any, znh: Any, m: int, snap_to: Any, unit: float, w: float
) -> None:
    """Plain NumPy statement of the kernels' snap of one piece's carried ``rows`` (in
    place; ``zl``, ``zh``: the layer's candidates at the piece's ends, ``znl``, ``znh``:
    the next layer there; ``m = 2 n_flips + n_bp + 4``)."""
    pz = max(float(np.abs(zl).max(initial=0.0)), float(np.abs(zh).max(initial=0.0)))
    pn = float((np.abs(znl) + np.abs(znh)).max(initial=0.0))
    band = unit * m * (2 * pn + w * pz)
    if not np.isfinite(band):
        return
    with np.errstate(invalid="ignore"):
        near = np.abs(rows - snap_to) <= band
    rows[near] = np.broadcast_to(snap_to, rows.shape)[near]


def snap_targets(bias: Any, kind_next: int | None, xp: Any) -> Any:
    """The neurons :func:`carry_snap` snaps: those whose bias sits on a threshold of
    the activation code ``kind_next`` that reads them, or all (``kind_next`` None: max
    pooling, whose windows tie)."""
    if kind_next is None:
        return xp.arange(bias.shape[0])
    if kind_next < 0 or kind_next == THRESHOLD:  # no reader, or a step (cut as it is)
        return xp.zeros(0, dtype=np.int64)
    on = bias == thresholds(kind_next)[0]
    for theta in thresholds(kind_next)[1:]:
        on |= bias == theta
    return xp.flatnonzero(on)

"""Activation kinds: the Python home of their codes and facts.

The C++/CUDA home is cpp/include/fastmem/activations.hpp (``fastmem._core.activation_kinds()``
reports its table; tests/test_kernel_parity.py checks that the two agree), the Numba home
src/fastmem/_numba/activations.py. Convention at a kink (PyTorch autograd's): the slope is 0
at ``z = 0`` for relu, ``slope`` at ``z = 0`` for leaky_relu, 0 at both ends of a clamp
(hard-tanh: ``z = -1`` and ``z = +1``; relu6: ``z = 0`` and ``z = 6``), 0 everywhere for
threshold (tests/test_activations.py checks all homes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

RELU, LEAKY_RELU, HARDTANH, THRESHOLD, RELU6 = 0, 1, 2, 3, 4

#: Piecewise-linear hidden activations and their kernel codes.
ACTIVATIONS = {
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "hardtanh": HARDTANH,
    "threshold": THRESHOLD,
    "relu6": RELU6,
}

#: The clamps ``clip(z, low, high)`` among them: code -> (low, high).
CLAMPS = {HARDTANH: (-1.0, 1.0), RELU6: (0.0, 6.0)}


def bits_per_neuron(kind: int) -> int:
    """Pattern bits one neuron of activation code ``kind`` owns (a clamp: two states)."""
    return len(thresholds(kind))


def activation_slope(z: Any, kind: int, slope: float, xp: Any) -> Any:
    """The derivative of activation code ``kind`` at each entry of ``z`` (array of ``xp``).

    Same dtype as ``z``; at a kink the slope of PyTorch autograd (module docstring).
    """
    if kind == RELU:
        return (z > 0).astype(z.dtype)
    if kind == LEAKY_RELU:
        return xp.where(z > 0, 1.0, slope).astype(z.dtype)
    if kind in CLAMPS:
        low, high = CLAMPS[kind]
        return ((z > low) & (z < high)).astype(z.dtype)
    return xp.zeros_like(z)


def thresholds(kind: int) -> tuple[float, ...]:
    """Where activation code ``kind`` changes branch (its pattern bits change there),
    increasing: a clamp's two ends, else 0."""
    return CLAMPS.get(kind, (0.0,))


def activate(z: Any, kind: int, slope: float, xp: Any) -> Any:
    """Activation code ``kind`` applied to ``z`` (array of ``xp``; a new array, same dtype):
    the value the kernels' ``apply_activation`` gives, for tables and references."""
    if kind == RELU:
        return xp.where(z > 0, z, xp.zeros_like(z))
    if kind == LEAKY_RELU:
        return xp.where(z > 0, z, z * z.dtype.type(slope))
    if kind in CLAMPS:
        low, high = (z.dtype.type(c) for c in CLAMPS[kind])
        return xp.where(z < low, low, xp.where(z > high, high, z)).astype(z.dtype)
    return (z >= 0).astype(z.dtype)


def threshold_gap(z: Any, kind: int, xp: Any) -> Any:
    """``|z - theta|`` to the nearest threshold of activation code ``kind``, per entry."""
    gap = None
    for theta in thresholds(kind):
        g = xp.abs(z - theta)
        gap = g if gap is None else xp.minimum(gap, g)
    return gap


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


def carry_snap(bias: Any, w_abs: Any, slope: float, kind: int, xp: Any) -> tuple[Any, float, float]:
    """The snap arguments (``snap_to``, ``snap_unit``, ``snap_w``) of the
    ``next_preactivations`` kernels for a hidden layer with bias ``bias`` and row sums
    ``w_abs`` (``sum_j |W_kj|``) after an activation of code ``kind`` (``slope``: its
    negative slope); ``snap_to`` None where nothing is snapped (float32: the walks apply
    the layer at every vertex).

    The kernels compute the layer at a piece's breakpoints from its values at the piece's
    ends by rank-1 updates (``carry_to_breakpoints`` in cpp/include/fastmem/regions.hpp).
    An output whose inputs are all off along part of a piece (a bias-free convolution over
    dead neurons) is exactly its bias there, and the forward pass computes exactly that;
    the updates leave noise of either sign, so its state (a threshold at the bias, a tie in
    a pooling window, a residual sum) would differ from the forward pass's. So the kernels
    set a carried value to the output's bias where it and the value at a neighbouring
    vertex (the output is its bias on a whole child) both lie within the output's rounding
    band of it, after the sweep (a snapped value moves no later one).

    The band, per output ``k``: a carried value is the piece's left value plus ``dr`` times
    running slopes summed over the piece's ``n_bp`` breakpoints; each slope is ``znh - znl``
    less and then plus, once each, the rank-1 terms of the piece's flips (``n_flips``),
    ``|f W_kj| <= ds (|z_j(l)| + |z_j(r)|) |W_kj|`` (``ds``: the largest change of the
    activation's slope). With ``M_k = 3 (|znl_k| + |znh_k|) + 4 ds sum_f (|z_j(l)| +
    |z_j(r)|) |W_kj|`` the worst case is ``gamma_m M_k`` (``m = 2 n_flips + n_bp + 4``
    operations); the band is ``2 u 8 sqrt(m) M_k`` (``snap_unit = 2 u``), eight standard
    deviations of ``m`` independent roundings: the worst case was ~100 times the noise
    measured on structural zeros and, at values ~1e10 (a ResNet line over t in
    (-1e10, 1e10)), set real values to the bias and moved crossings. Measured: 1/100 of
    this band still catches every structural zero of ``tests/test_graph.py``'s bias-free
    CNNs. The kernels screen with a band for the whole piece, ``2 u 8 sqrt(m) (3 max_k
    (|znl_k| + |znh_k|) + snap_w P)`` (``P``: the largest ``|z_j|`` at the piece's ends over
    its candidates; ``snap_w = 16 ds max_k ||W_k||_1`` covers a neuron flipping twice), and
    compute an output's own band where the screen passes (:func:`carry_snap_reference`).
    Pieces whose values exceed ``fastmem._engine.LARGE_VALUES`` (1e8) are not snapped:
    there a band this wide would set real values to the bias, and the walks' results are
    checked against the forward pass instead.
    """
    if bias.dtype != np.float64 or bias.shape[0] == 0:
        return None, 0.0, 0.0
    ds = max(1.0, abs(1.0 - slope)) if kind == LEAKY_RELU else 1.0
    w = 16 * ds * float(w_abs.max())
    return xp.ascontiguousarray(bias), 2 * 2.0**-53, w


def carry_snap_reference(
    rows: Any, prev: Any, nxt: Any, flip_mag: Any, flip_w: Any, znl: Any, znh: Any,
    n_ops: int, snap_to: Any, unit: float, ds: float,
) -> None:  # fmt: skip
    """Plain NumPy statement of the kernels' snap of one piece's carried ``rows`` (in
    place; ``prev``, ``nxt``: the values at the vertices before and after each row): each
    output's own band (:func:`carry_snap`). ``flip_mag`` (f,): ``|z_j(l)| + |z_j(r)|`` of
    each flip's neuron; ``flip_w`` (width_next, f): ``|W_kj|`` of it; ``znl``, ``znh``:
    the layer at the piece's ends."""
    a = flip_w @ flip_mag
    own = unit * 8 * np.sqrt(n_ops) * (3 * (np.abs(znl) + np.abs(znh)) + 4 * ds * a)
    with np.errstate(invalid="ignore"):
        near = np.abs(rows - snap_to) <= own
        near &= (np.abs(prev - snap_to) <= own) | (np.abs(nxt - snap_to) <= own)
    rows[near] = np.broadcast_to(snap_to, rows.shape)[near]

"""Critical-sample kernels (see cpp/include/fastmem/critical.hpp): same names, arguments, bits.

Activation with its derivative (the backward mask), the adversarial step with
counter-based noise and projection, the class-change check, and the per-neuron
relaxations of interval bound propagation and CROWN.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._kinds import LEAKY_RELU, RELU, THRESHOLD
from .activations import _activate, _activation_slope, _clamp_high, _clamp_low, _is_clamp
from .patterns import _check_float_matrix, _check_kind, _mix64, _require

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xD1B54A32D192ED03)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_INV32 = 2.0**-32
_SQRT3 = 1.7320508075688772


@nb.njit(cache=True, error_model="numpy")
def _rand64(seed, sample, stream, counter):
    h = _mix64(seed + _GOLDEN * (sample + _ONE))
    h = _mix64(h ^ (stream * _C2 + _GOLDEN))
    return _mix64(h ^ (counter * _GOLDEN + _C2))


@nb.njit(cache=True, error_model="numpy")
def _uniform_pm1(seed, sample, stream, coord):
    # (k + 0.5) / 2**32 * 2 - 1: exact in double, never exactly +-1
    h = _rand64(seed, sample, stream, coord)
    k = np.float64(h >> _S32)
    return (k + 0.5) * _INV32 * 2.0 - 1.0


@nb.njit(cache=True, error_model="numpy")
def _normal(seed, sample, stream, coord):
    h1 = _rand64(seed, sample, stream, _TWO * coord)
    h2 = _rand64(seed, sample, stream, _TWO * coord + _ONE)
    s = np.float64(h1 >> _S32) + np.float64(h1 & _LOW32)
    s = s + np.float64(h2 >> _S32) + np.float64(h2 & _LOW32)
    # sum of four U(0,1): mean 2, variance 1/3 (Irwin-Hall), standardized
    return ((s + 2.0) * _INV32 - 2.0) * _SQRT3


@nb.njit(cache=True, error_model="numpy")
def _act_and_deriv(z, kind, slope):
    # value and derivative (activations.py: the kink convention is PyTorch autograd's)
    return _activate(z, kind, slope), _activation_slope(z, kind, slope)


@nb.njit(parallel=True, cache=True)
def _crit_activate(z, deriv, kind, slope):
    rows, width = z.shape
    for i in nb.prange(rows):
        for j in range(width):
            h, d = _act_and_deriv(z[i, j], kind, slope)
            z[i, j] = h
            deriv[i, j] = d


@nb.njit(parallel=True, cache=True)
def _crit_step(x, grad, lo, hi, ids, seed, stream, step_size, noise, use_noise):
    rows, d = x.shape
    for r in nb.prange(rows):
        s = ids[r]
        su = np.uint64(s)
        for j in range(d):
            g = grad[r, j]
            sg = step_size if g > 0 else (-step_size if g < 0 else step_size - step_size)
            v = x[r, j] + sg
            if use_noise:
                v = v + noise * x.dtype.type(_normal(seed, su, stream, np.uint64(j)))
            a = lo[s, j]
            b = hi[s, j]
            if v < a:
                v = a
            if v > b:
                v = b
            x[r, j] = v


@nb.njit(parallel=True, cache=True)
def _crit_random_start(x, lo, hi, ids, seed, stream):
    rows, d = x.shape
    for r in nb.prange(rows):
        s = ids[r]
        su = np.uint64(s)
        for j in range(d):
            a = lo[s, j]
            b = hi[s, j]
            u = _uniform_pm1(seed, su, stream, np.uint64(j))
            # centre + u * half-width, in double, then rounded once to the dtype
            c = 0.5 * (np.float64(a) + np.float64(b))
            w = 0.5 * (np.float64(b) - np.float64(a))
            v = x.dtype.type(c + u * w)
            if v < a:
                v = a
            if v > b:
                v = b
            x[r, j] = v


@nb.njit(parallel=True, cache=True)
def _crit_check(logits, labels, changed):
    rows, k = logits.shape
    for r in nb.prange(rows):
        best = 0
        bv = logits[r, 0]
        for j in range(1, k):
            if logits[r, j] > bv:
                bv = logits[r, j]
                best = j
        changed[r] = 1 if best != labels[r] else 0


@nb.njit(cache=True, error_model="numpy")
def _interval_one(lo, hi, kind, slope):
    if kind == LEAKY_RELU:
        fl = lo if lo > 0 else slope * lo
        fh = hi if hi > 0 else slope * hi
        a = fl if fl < fh else fh
        b = fh if fh > fl else fl
        if lo < 0 and hi > 0:  # the kink lies inside: f(0) = 0 may be an extreme
            if a > 0:
                a = 0.0
            if b < 0:
                b = 0.0
    elif kind == RELU:
        a = lo if lo > 0 else 0.0
        b = hi if hi > 0 else 0.0
    elif _is_clamp(kind):  # monotone: its ends' images
        c0, c1 = _clamp_low(kind), _clamp_high(kind)
        a = c0 if lo < c0 else (c1 if lo > c1 else lo)
        b = c0 if hi < c0 else (c1 if hi > c1 else hi)
    else:
        a = 1.0 if lo >= 0 else 0.0
        b = 1.0 if hi >= 0 else 0.0
    # a NaN bound (an overflow's inf - inf) bounds nothing: it stays NaN (as C++)
    return (a if lo == lo else lo), (b if hi == hi else hi)


@nb.njit(parallel=True, cache=True)
def _crit_interval(lo, hi, kind, slope):
    rows, width = lo.shape
    for i in nb.prange(rows):
        for j in range(width):
            a, b = _interval_one(lo[i, j], hi[i, j], kind, slope)
            lo[i, j] = a
            hi[i, j] = b


@nb.njit(cache=True, error_model="numpy")
def _relax_one(lw, u, kind, slope):
    # returns aL, bL, aU, bU with aL z + bL <= act(z) <= aU z + bU on [lw, u]
    # constants, as in C++ (lw * 0 was -0.0 for a negative lw, NaN for an infinite one)
    zero = np.float64(0.0)
    one = np.float64(1.0)
    if kind == THRESHOLD:
        lo = one if lw >= 0 else zero
        hi = one if u >= 0 else zero
        return zero, lo, zero, hi
    if kind == RELU or kind == LEAKY_RELU:
        s = slope if kind == LEAKY_RELU else zero
        if lw >= 0:
            return one, zero, one, zero
        if u <= 0:
            return s, zero, s, zero
        # chord through (lw, s lw) and (u, u); the other side is the steeper-area line
        a = (u - s * lw) / (u - lw)
        b = u - a * u
        tight = one if u > -lw else s
        if s <= 1:
            return tight, zero, a, b
        return a, b, tight, zero
    # a clamp clip(z, c0, c1) (hard-tanh: -1, 1)
    c0, c1 = _clamp_low(kind), _clamp_high(kind)
    if u <= c0:
        return zero, c0, zero, c0
    if lw >= c1:
        return zero, c1, zero, c1
    if lw >= c0 and u <= c1:
        return one, zero, one, zero
    if u <= c1:  # lw < c0 < u: max(z, c0), convex
        a = (u - c0) / (u - lw)
        b = u - a * u
        if u - c0 > c0 - lw:
            return one, zero, a, b
        return zero, c0, a, b
    if lw >= c0:  # lw < c1 < u: min(z, c1), concave
        a = (c1 - lw) / (u - lw)
        b = lw - a * lw
        if u - c1 < c1 - lw:
            return a, b, one, zero
        return a, b, zero, c1
    # lw < c0 and c1 < u: lines through (lw, c0) (upper) and (u, c1) (lower), or constants
    au = (c1 - c0) / (c1 - lw)
    bu = c0 - au * lw
    al = (c1 - c0) / (u - c0)
    bl = c1 - al * u
    mid = (lw + u) / 2
    if au * mid + bu >= c1:
        au = zero
        bu = c1
    if al * mid + bl <= c0:
        al = zero
        bl = c0
    return al, bl, au, bu


@nb.njit(parallel=True, cache=True)
def _crit_relax(lo, hi, kind, slope, aL, bL, aU, bU):
    rows, width = lo.shape
    for i in nb.prange(rows):
        for j in range(width):
            # in double on every backend, rounded once to the dtype on store
            a, b, c, e = _relax_one(np.float64(lo[i, j]), np.float64(hi[i, j]), kind, slope)
            aL[i, j] = a
            bL[i, j] = b
            aU[i, j] = c
            bU[i, j] = e


@nb.njit(parallel=True, cache=True)
def _crit_backward(lam, rows, aL, bL, aU, bU, const):
    n_rows, width = lam.shape
    for r in nb.prange(n_rows):
        s = rows[r]
        acc = const[r]
        for j in range(width):
            v = lam[r, j]
            if v >= 0:
                acc = acc + v * bL[s, j]
                lam[r, j] = v * aL[s, j]
            else:
                acc = acc + v * bU[s, j]
                lam[r, j] = v * aU[s, j]
        const[r] = acc


@nb.njit(cache=True, error_model="numpy")
def _bterm(lam, r, s, j, A, with_lin, acc, ea, el):
    # critical.hpp, crit_backward_err_lanes; A = (aL, bL, aU, bU, act, lin)
    aL, bL, aU, bU, act, lin = A
    v = lam[r, j]
    pos = v >= 0
    a = aL[s, j] if pos else aU[s, j]
    b = bL[s, j] if pos else bU[s, j]
    av = -v if v < 0 else v
    acc = acc + v * b
    ea = ea + av * act[s, j]
    nv = v * a
    lam[r, j] = nv
    if with_lin:
        el = el + (-nv if nv < 0 else nv) * lin[s, j]
    return acc, ea, el


@nb.njit(parallel=True, cache=True)
def _crit_backward_err(lam, rows, aL, bL, aU, bU, act, lin, with_lin, const, err, zero):
    # the C++ kernel's order (critical.hpp, crit_backward_err_row): three sums in 8 lanes
    # (j mod 8), each added pairwise; `zero` is 0 in lam's dtype
    n_rows, width = lam.shape
    full = width - width % 8
    A = (aL, bL, aU, bU, act, lin)
    for r in nb.prange(n_rows):
        s = rows[r]
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = zero
        e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = zero
        f0 = f1 = f2 = f3 = f4 = f5 = f6 = f7 = zero
        for j in range(0, full, 8):
            c0, e0, f0 = _bterm(lam, r, s, j, A, with_lin, c0, e0, f0)
            c1, e1, f1 = _bterm(lam, r, s, j + 1, A, with_lin, c1, e1, f1)
            c2, e2, f2 = _bterm(lam, r, s, j + 2, A, with_lin, c2, e2, f2)
            c3, e3, f3 = _bterm(lam, r, s, j + 3, A, with_lin, c3, e3, f3)
            c4, e4, f4 = _bterm(lam, r, s, j + 4, A, with_lin, c4, e4, f4)
            c5, e5, f5 = _bterm(lam, r, s, j + 5, A, with_lin, c5, e5, f5)
            c6, e6, f6 = _bterm(lam, r, s, j + 6, A, with_lin, c6, e6, f6)
            c7, e7, f7 = _bterm(lam, r, s, j + 7, A, with_lin, c7, e7, f7)
        for j in range(full, width):
            lane = j - full
            if lane == 0:
                c0, e0, f0 = _bterm(lam, r, s, j, A, with_lin, c0, e0, f0)
            elif lane == 1:
                c1, e1, f1 = _bterm(lam, r, s, j, A, with_lin, c1, e1, f1)
            elif lane == 2:
                c2, e2, f2 = _bterm(lam, r, s, j, A, with_lin, c2, e2, f2)
            elif lane == 3:
                c3, e3, f3 = _bterm(lam, r, s, j, A, with_lin, c3, e3, f3)
            elif lane == 4:
                c4, e4, f4 = _bterm(lam, r, s, j, A, with_lin, c4, e4, f4)
            elif lane == 5:
                c5, e5, f5 = _bterm(lam, r, s, j, A, with_lin, c5, e5, f5)
            else:
                c6, e6, f6 = _bterm(lam, r, s, j, A, with_lin, c6, e6, f6)
        const[r] = const[r] + (((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)))
        err[r] = (err[r] + (((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7)))) + (
            ((f0 + f1) + (f2 + f3)) + ((f4 + f5) + (f6 + f7))
        )


@nb.njit(cache=True, error_model="numpy")
def _concretize_term(v, lo, hi):
    return v * lo if v >= 0 else v * hi


@nb.njit(parallel=True, cache=True)
def _crit_concretize(lam, rows, lo, hi, const, zero):
    # the C++ kernel's order (critical.hpp, crit_concretize_row): 8 lanes (j mod 8), added
    # pairwise, then to const; `zero` is 0 in lam's dtype (float32 lanes stay float32).
    # Written out lane by lane: a tuple of lanes or a bounds-guarded term measured 7-10%
    # slower here (CROWN on the benchmark batch).
    n_rows, d = lam.shape
    full = d - d % 8
    for r in nb.prange(n_rows):
        s = rows[r]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        for j in range(0, full, 8):
            a0 = a0 + _concretize_term(lam[r, j], lo[s, j], hi[s, j])
            a1 = a1 + _concretize_term(lam[r, j + 1], lo[s, j + 1], hi[s, j + 1])
            a2 = a2 + _concretize_term(lam[r, j + 2], lo[s, j + 2], hi[s, j + 2])
            a3 = a3 + _concretize_term(lam[r, j + 3], lo[s, j + 3], hi[s, j + 3])
            a4 = a4 + _concretize_term(lam[r, j + 4], lo[s, j + 4], hi[s, j + 4])
            a5 = a5 + _concretize_term(lam[r, j + 5], lo[s, j + 5], hi[s, j + 5])
            a6 = a6 + _concretize_term(lam[r, j + 6], lo[s, j + 6], hi[s, j + 6])
            a7 = a7 + _concretize_term(lam[r, j + 7], lo[s, j + 7], hi[s, j + 7])
        for j in range(full, d):
            t = _concretize_term(lam[r, j], lo[s, j], hi[s, j])
            lane = j - full
            if lane == 0:
                a0 = a0 + t
            elif lane == 1:
                a1 = a1 + t
            elif lane == 2:
                a2 = a2 + t
            elif lane == 3:
                a3 = a3 + t
            elif lane == 4:
                a4 = a4 + t
            elif lane == 5:
                a5 = a5 + t
            else:
                a6 = a6 + t
        const[r] = const[r] + (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)))


def _check_same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    _require(a.shape == b.shape and a.dtype == b.dtype, f"{what} must match in shape and dtype")


def _check_index(ids: np.ndarray, name: str, n: int, upper: int) -> None:
    _require(
        isinstance(ids, np.ndarray) and ids.dtype == np.int64 and ids.ndim == 1,
        f"{name} must be a 1-D int64 ndarray",
    )
    _require(ids.flags.c_contiguous and ids.shape[0] == n, f"{name} must have {n} entries")
    if n:
        _require(int(ids.min()) >= 0 and int(ids.max()) < upper, f"{name} out of range")


def crit_activate(z: np.ndarray, deriv: np.ndarray, kind: int, slope: float) -> None:
    """Activate ``z`` in place and write the activation's derivative into ``deriv``."""
    _check_float_matrix(z, "z")
    _check_float_matrix(deriv, "deriv")
    _check_same(z, deriv, "z and deriv")
    _check_kind(kind)
    _crit_activate(z, deriv, int(kind), z.dtype.type(slope))


def crit_step(
    x: np.ndarray,
    grad: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    ids: np.ndarray,
    seed: int,
    stream: int,
    step_size: float,
    noise: float,
) -> None:
    """``x += step_size sign(grad) + noise N(0, 1)``, clipped to ``[lo[ids], hi[ids]]``."""
    for name, a in (("x", x), ("grad", grad), ("lo", lo), ("hi", hi)):
        _check_float_matrix(a, name)
    _check_same(x, grad, "x and grad")
    _check_same(lo, hi, "lo and hi")
    _require(x.dtype == lo.dtype and x.shape[1] == lo.shape[1], "x and lo must match")
    _check_index(ids, "ids", x.shape[0], lo.shape[0])
    t = x.dtype.type
    _crit_step(
        x,
        grad,
        lo,
        hi,
        ids,
        np.uint64(seed),
        np.uint64(stream),
        t(step_size),
        t(noise),
        noise != 0,
    )


def crit_random_start(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray, ids: np.ndarray, seed: int, stream: int
) -> None:
    """Uniform random point of ``[lo[ids], hi[ids]]`` for every row of ``x``."""
    for name, a in (("x", x), ("lo", lo), ("hi", hi)):
        _check_float_matrix(a, name)
    _check_same(lo, hi, "lo and hi")
    _require(x.dtype == lo.dtype and x.shape[1] == lo.shape[1], "x and lo must match")
    _check_index(ids, "ids", x.shape[0], lo.shape[0])
    _crit_random_start(x, lo, hi, ids, np.uint64(seed), np.uint64(stream))


def crit_check(logits: np.ndarray, labels: np.ndarray, changed: np.ndarray) -> None:
    """``changed[r] = argmax(logits[r]) != labels[r]`` (first maximum wins)."""
    _check_float_matrix(logits, "logits")
    _require(logits.shape[1] >= 1, "logits must have a column")
    _require(
        isinstance(labels, np.ndarray) and labels.dtype == np.int64 and labels.ndim == 1,
        "labels must be a 1-D int64 ndarray",
    )
    _require(
        isinstance(changed, np.ndarray) and changed.dtype == np.uint8 and changed.ndim == 1,
        "changed must be a 1-D uint8 ndarray",
    )
    _require(labels.shape[0] == logits.shape[0] == changed.shape[0], "row counts must match")
    _crit_check(logits, labels, changed)


def crit_interval(lo: np.ndarray, hi: np.ndarray, kind: int, slope: float) -> None:
    """Map pre-activation bounds ``[lo, hi]`` to post-activation bounds, in place."""
    _check_float_matrix(lo, "lo")
    _check_float_matrix(hi, "hi")
    _check_same(lo, hi, "lo and hi")
    _check_kind(kind)
    _crit_interval(lo, hi, int(kind), lo.dtype.type(slope))


def crit_relax(
    lo: np.ndarray,
    hi: np.ndarray,
    kind: int,
    slope: float,
    aL: np.ndarray,
    bL: np.ndarray,
    aU: np.ndarray,
    bU: np.ndarray,
) -> None:
    """Linear relaxation ``aL z + bL <= act(z) <= aU z + bU`` of every neuron on [lo, hi]."""
    for name, a in (("lo", lo), ("hi", hi), ("aL", aL), ("bL", bL), ("aU", aU), ("bU", bU)):
        _check_float_matrix(a, name)
        _check_same(lo, a, f"lo and {name}")
    _check_kind(kind)
    _crit_relax(lo, hi, int(kind), np.float64(lo.dtype.type(slope)), aL, bL, aU, bU)


def crit_backward(
    lam: np.ndarray,
    rows: np.ndarray,
    aL: np.ndarray,
    bL: np.ndarray,
    aU: np.ndarray,
    bU: np.ndarray,
    const: np.ndarray,
) -> None:
    """One backward CROWN step through an activation layer, in place on ``lam`` and ``const``."""
    for name, a in (("lam", lam), ("aL", aL), ("bL", bL), ("aU", aU), ("bU", bU)):
        _check_float_matrix(a, name)
    for name, a in (("bL", bL), ("aU", aU), ("bU", bU)):
        _check_same(aL, a, f"aL and {name}")
    _require(lam.dtype == aL.dtype and lam.shape[1] == aL.shape[1], "lam and aL must match")
    _check_index(rows, "rows", lam.shape[0], aL.shape[0])
    _require(
        isinstance(const, np.ndarray) and const.dtype == lam.dtype and const.ndim == 1,
        "const must be a 1-D array of lam's dtype",
    )
    _require(const.shape[0] == lam.shape[0] and const.flags.c_contiguous, "const shape")
    _crit_backward(lam, rows, aL, bL, aU, bU, const)


def crit_backward_err(
    lam: np.ndarray,
    rows: np.ndarray,
    aL: np.ndarray,
    bL: np.ndarray,
    aU: np.ndarray,
    bU: np.ndarray,
    act: np.ndarray,
    lin: np.ndarray,
    with_lin: bool,
    const: np.ndarray,
    err: np.ndarray,
) -> None:
    """:func:`crit_backward` and its rounding allowance: ``err[r] += sum_j |lam_j|
    act[s, j]`` (before the step) ``+ sum_j |lam'_j| lin[s, j]`` (after it, if
    ``with_lin``), s = rows[r]; in place on ``lam``, ``const`` and ``err``."""
    for name, a in (("lam", lam), ("aL", aL), ("bL", bL), ("aU", aU), ("bU", bU),
                    ("act", act), ("lin", lin)):  # fmt: skip
        _check_float_matrix(a, name)
    for name, a in (("bL", bL), ("aU", aU), ("bU", bU), ("act", act), ("lin", lin)):
        _check_same(aL, a, f"aL and {name}")
    _require(lam.dtype == aL.dtype and lam.shape[1] == aL.shape[1], "lam and aL must match")
    _check_index(rows, "rows", lam.shape[0], aL.shape[0])
    for name, a in (("const", const), ("err", err)):
        _require(
            isinstance(a, np.ndarray) and a.dtype == lam.dtype and a.ndim == 1,
            f"{name} must be a 1-D array of lam's dtype",
        )
        _require(a.shape[0] == lam.shape[0] and a.flags.c_contiguous, f"{name} shape")
    _crit_backward_err(
        lam, rows, aL, bL, aU, bU, act, lin, bool(with_lin), const, err, lam.dtype.type(0)
    )


def crit_concretize(
    lam: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, const: np.ndarray
) -> None:
    """``const[r] += min over the box [lo[rows[r]], hi[rows[r]]] of lam[r] . x``."""
    for name, a in (("lam", lam), ("lo", lo), ("hi", hi)):
        _check_float_matrix(a, name)
    _check_same(lo, hi, "lo and hi")
    _require(lam.dtype == lo.dtype and lam.shape[1] == lo.shape[1], "lam and lo must match")
    _check_index(rows, "rows", lam.shape[0], lo.shape[0])
    _require(
        isinstance(const, np.ndarray) and const.dtype == lam.dtype and const.ndim == 1,
        "const must be a 1-D array of lam's dtype",
    )
    _require(const.shape[0] == lam.shape[0] and const.flags.c_contiguous, "const shape")
    _crit_concretize(lam, rows, lo, hi, const, lam.dtype.type(0))


@nb.njit(parallel=True, cache=True)
def _crit_ball(x, r, per_row, b0, b1, lo, hi):
    n, d = x.shape
    for i in nb.prange(n):
        ri = r[i] if per_row else r[0]
        for j in range(d):
            a = x[i, j] - ri
            b = x[i, j] + ri
            lo[i, j] = a if a > b0 else b0
            hi[i, j] = b if b < b1 else b1


@nb.njit(parallel=True, cache=True)
def _crit_centre(lo, hi, up, thr, c, radius, rmax, cmax, low):
    # crit_centre_row (critical.hpp): the same roundings; a maximum is exact in any order
    n, d = lo.shape
    half = lo.dtype.type(0.5)
    for i in nb.prange(n):
        rm = radius.dtype.type(0)
        cm = radius.dtype.type(0)
        for j in range(d):
            cj = (lo[i, j] + hi[i, j]) * half
            p = hi[i, j] - cj
            q = cj - lo[i, j]
            rj = (p if p > q else q) * up
            radius[i, j] = rj
            c[i, j] = cj
            if rj > rm:
                rm = rj
            aj = -cj if cj < 0 else cj
            if aj > cm:
                cm = aj
        rmax[i] = rm
        cmax[i] = cm
        lim = rm * thr
        count = 0
        for j in range(d):
            if radius[i, j] < lim:
                count += 1
        low[i] = count


@nb.njit(parallel=True, cache=True)
def _crit_radius_share(radius, rmax, low, thr, absw, share):
    # crit_radius_share_row (critical.hpp): ascending j, (rmax - R_j) |W_kj| in double
    n, d = radius.shape
    w = absw.shape[1]
    for i in nb.prange(n):
        for k in range(w):
            share[i, k] = 0.0
        lim = rmax[i] * thr
        left = low[i]
        for j in range(d):
            if left <= 0:
                break
            if not radius[i, j] < lim:
                continue
            left -= 1
            s = np.float64(rmax[i]) - np.float64(radius[i, j])
            for k in range(w):
                share[i, k] = share[i, k] + s * absw[j, k]


def _check_rows(a: np.ndarray, name: str, n: int, dtype: object) -> None:
    _require(
        isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == 1 and a.shape[0] == n,
        f"{name}: one entry per row ({np.dtype(dtype).name})",
    )
    _require(a.flags.c_contiguous, f"{name} must be C-contiguous")


def crit_ball(
    x: np.ndarray, r: np.ndarray, box_lo: float, box_hi: float, lo: np.ndarray, hi: np.ndarray
) -> None:
    """``lo = max(x - r, box_lo)``, ``hi = min(x + r, box_hi)`` (r: one radius or one per
    row; the box's ends in x's dtype)."""
    for name, a in (("x", x), ("lo", lo), ("hi", hi)):
        _check_float_matrix(a, name)
    _check_same(x, lo, "x and lo")
    _check_same(x, hi, "x and hi")
    _require(
        isinstance(r, np.ndarray) and r.dtype == x.dtype and r.ndim == 1 and r.flags.c_contiguous,
        "r must be a 1-D C-contiguous array of x's dtype",
    )
    _require(r.shape[0] in (1, x.shape[0]), "r must be 1-D with one entry or one per row")
    t = x.dtype.type
    _crit_ball(x, r, r.shape[0] != 1, t(box_lo), t(box_hi), lo, hi)


def crit_centre(
    lo: np.ndarray,
    hi: np.ndarray,
    up: float,
    thr: float,
    c: np.ndarray,
    radius: np.ndarray,
    rmax: np.ndarray,
    cmax: np.ndarray,
    low: np.ndarray,
) -> None:
    """Centre form of the boxes [lo, hi]: ``c = (lo + hi) / 2`` (stored in float64),
    ``radius = max(hi - c, c - lo) * up``, each row's largest radius and |c|, and the
    count of its radii below ``rmax * thr``."""
    for name, a in (("lo", lo), ("hi", hi), ("radius", radius)):
        _check_float_matrix(a, name)
    _require(lo.shape[1] >= 1, "lo must be 2-D with a column")
    _check_same(lo, hi, "lo and hi")
    _check_same(lo, radius, "lo and radius")
    _check_float_matrix(c, "c")
    _require(c.dtype == np.float64 and c.shape == lo.shape, "lo and c must match in shape")
    n = lo.shape[0]
    _check_rows(rmax, "rmax", n, lo.dtype)
    _check_rows(cmax, "cmax", n, lo.dtype)
    _check_rows(low, "low", n, np.int64)
    t = lo.dtype.type
    _crit_centre(lo, hi, t(up), t(thr), c, radius, rmax, cmax, low)


def crit_radius_share(
    radius: np.ndarray,
    rmax: np.ndarray,
    low: np.ndarray,
    thr: float,
    absw: np.ndarray,
    share: np.ndarray,
) -> None:
    """Per row, ``sum over the radii below rmax * thr (low of them) of (rmax - R_j)
    absw[j]`` in float64 (absw: ``|W|^T``, one row per input)."""
    _check_float_matrix(radius, "radius")
    for name, a in (("absw", absw), ("share", share)):
        _check_float_matrix(a, name)
        _require(a.dtype == np.float64, f"{name} must be float64")
    n = radius.shape[0]
    _check_rows(rmax, "rmax", n, radius.dtype)
    _check_rows(low, "low", n, np.int64)
    _require(absw.shape[0] == radius.shape[1], "absw must have one row per input")
    _require(share.shape == (n, absw.shape[1]), "share shape")
    _crit_radius_share(radius, rmax, low, radius.dtype.type(thr), absw, share)

"""Memorize kernels (see cpp/include/fastmem/memorize.hpp): same names, arguments, bits."""

from __future__ import annotations

import numba as nb
import numpy as np

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1 = np.uint64(1)
_S2 = np.uint64(2)
_S4 = np.uint64(4)
_S56 = np.uint64(56)
_SIX = np.uint64(6)
_M63 = np.uint64(63)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_INT64_MAX = np.int64(9223372036854775807)


@nb.njit(inline="always", cache=True)
def _popcount(x):
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return np.int64((x * _H01) >> _S56)


@nb.njit(cache=True)
def _linear_recurrence(alpha, beta, out):
    n = out.shape[0]
    if n == 0:
        return
    s = beta[0]
    out[0] = s
    for i in range(1, n):
        s = alpha[i] * s + beta[i]
        out[i] = s


@nb.njit(inline="always", cache=True)
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@nb.njit(inline="always", cache=True)
def _split(a):
    t = 134217729.0 * a
    hi = t - (t - a)
    return hi, a - hi


@nb.njit(inline="always", cache=True)
def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, (((ah * bh - p) + ah * bl) + al * bh) + al * bl


@nb.njit(inline="always", cache=True)
def _dd_add_d(hi, lo, v):
    s, e = _two_sum(hi, v)
    e = e + lo
    return _two_sum(s, e)


@nb.njit(cache=True)
def _relu_sum_prefix(b, w, prefix):
    sh = 0.0
    sl = 0.0
    th = 0.0
    tl = 0.0
    prefix[0, 0] = 0.0
    prefix[0, 1] = 0.0
    prefix[0, 2] = 0.0
    prefix[0, 3] = 0.0
    for j in range(b.shape[0]):
        sh, sl = _dd_add_d(sh, sl, w[j])
        p, e = _two_prod(b[j], w[j])
        th, tl = _dd_add_d(th, tl, p)
        th, tl = _dd_add_d(th, tl, e)
        prefix[j + 1, 0] = sh
        prefix[j + 1, 1] = sl
        prefix[j + 1, 2] = th
        prefix[j + 1, 3] = tl


@nb.njit(parallel=True, cache=True)
def _relu_sum_at(t, b, prefix, out):
    n = b.shape[0]
    for i in nb.prange(t.shape[0]):
        ti = t[i]
        lo = 0
        hi = n
        while lo < hi:
            mid = lo + (hi - lo) // 2
            if b[mid] < ti:
                lo = mid + 1
            else:
                hi = mid
        p1, e1 = _two_prod(ti, prefix[lo, 0])
        p2, e2 = _two_prod(ti, prefix[lo, 1])
        h, low = _dd_add_d(p1, 0.0, e1)
        h, low = _dd_add_d(h, low, p2)
        h, low = _dd_add_d(h, low, e2)
        h, low = _dd_add_d(h, low, -prefix[lo, 2])
        h, low = _dd_add_d(h, low, -prefix[lo, 3])
        out[i] = h + low


@nb.njit(inline="always", cache=True)
def _separating(neg, r, pos, s, words):
    c = 0
    for w in range(words):
        c += _popcount((neg[r, w] ^ _ALL) & pos[s, w])
    return c


@nb.njit(parallel=True, cache=True)
def _cover_margins(neg, pos, m):
    words = neg.shape[1]
    for r in nb.prange(neg.shape[0]):
        best = _INT64_MAX
        for s in range(pos.shape[0]):
            c = _separating(neg, r, pos, s, words)
            if c < best:
                best = c
        m[r] = best


@nb.njit(parallel=True, cache=True)
def _cover_matrix(neg, m, cover):
    words = neg.shape[1]
    n_neg = neg.shape[0]
    for r in nb.prange(n_neg):
        for w in range(cover.shape[1]):
            cover[r, w] = 0
        for s in range(n_neg):
            if 2 * _separating(neg, r, neg, s, words) <= m[r]:
                g = np.uint64(s)
                cover[r, g >> _SIX] |= _ONE << (g & _M63)


@nb.njit(parallel=True, cache=True)
def _cover_gains(cover, uncovered, gains):
    for r in nb.prange(cover.shape[0]):
        g = 0
        for w in range(cover.shape[1]):
            g += _popcount(cover[r, w] & uncovered[w])
        gains[r] = g


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"fastmem._numba: {what}")


def _check(a: np.ndarray, name: str, dtype: type, ndim: int) -> None:
    _require(
        isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim,
        f"{name} must be a {ndim}-D {np.dtype(dtype).name} ndarray",
    )
    _require(a.flags.c_contiguous, f"{name} must be C-contiguous")


def linear_recurrence(alpha: np.ndarray, beta: np.ndarray, out: np.ndarray) -> None:
    """``out[0] = beta[0]``, ``out[i] = alpha[i] * out[i-1] + beta[i]``."""
    for a, name in ((alpha, "alpha"), (beta, "beta"), (out, "out")):
        _check(a, name, np.float64, 1)
    _require(
        alpha.shape[0] == beta.shape[0] == out.shape[0],
        "alpha, beta and out must have the same length",
    )
    _linear_recurrence(alpha, beta, out)


def relu_sum_eval(
    t: np.ndarray, b: np.ndarray, w: np.ndarray, prefix: np.ndarray, out: np.ndarray
) -> None:
    """``out[i] = sum_j w[j] relu(t[i] - b[j])`` for sorted ``b`` (double-double sums)."""
    for a, name in ((t, "t"), (b, "b"), (w, "w"), (out, "out")):
        _check(a, name, np.float64, 1)
    _check(prefix, "prefix", np.float64, 2)
    _require(b.shape[0] == w.shape[0], "b and w must have the same length")
    _require(t.shape[0] == out.shape[0], "t and out must have the same length")
    _require(prefix.shape == (b.shape[0] + 1, 4), "prefix must be (len(b) + 1, 4)")
    _relu_sum_prefix(b, w, prefix)
    _relu_sum_at(t, b, prefix, out)


def cover_margins(neg: np.ndarray, pos: np.ndarray, m: np.ndarray) -> None:
    """``m[r] = min_s popcount(~neg[r] & pos[s])``."""
    _check(neg, "neg", np.uint64, 2)
    _check(pos, "pos", np.uint64, 2)
    _check(m, "m", np.int64, 1)
    _require(neg.shape[1] == pos.shape[1], "neg and pos must have the same number of words")
    _require(m.shape[0] == neg.shape[0], "m must have one entry per row of neg")
    _require(pos.shape[0] >= 1, "pos must have at least one row")
    _cover_margins(neg, pos, m)


def cover_matrix(neg: np.ndarray, m: np.ndarray, cover: np.ndarray) -> None:
    """Bit ``s`` of ``cover[r]`` = ``2 popcount(~neg[r] & neg[s]) <= m[r]``."""
    _check(neg, "neg", np.uint64, 2)
    _check(m, "m", np.int64, 1)
    _check(cover, "cover", np.uint64, 2)
    _require(
        m.shape[0] == neg.shape[0] and cover.shape[0] == neg.shape[0],
        "m and cover must have one row per row of neg",
    )
    _require(cover.shape[1] == (neg.shape[0] + 63) // 64, "cover must have ceil(rows / 64) words")
    _cover_matrix(neg, m, cover)


def cover_gains(cover: np.ndarray, uncovered: np.ndarray, gains: np.ndarray) -> None:
    """``gains[r] = popcount(cover[r] & uncovered)``."""
    _check(cover, "cover", np.uint64, 2)
    _check(uncovered, "uncovered", np.uint64, 1)
    _check(gains, "gains", np.int64, 1)
    _require(uncovered.shape[0] == cover.shape[1], "uncovered must have one word per cover column")
    _require(gains.shape[0] == cover.shape[0], "gains must have one entry per row of cover")
    _cover_gains(cover, uncovered, gains)

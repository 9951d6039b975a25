"""Segment-engine splitting kernels (see cpp/include/fastmem/regions.hpp).

``count_crossings``, ``collect_crossings`` and ``emit_pieces``: the same passes,
arguments and results as the C++ and CUDA kernels. ``z`` and ``vt`` are per vertex;
piece ``i`` of segment ``pseg[i]`` spans vertices ``i + pseg[i]`` and ``i + pseg[i] + 1``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .patterns import HARDTANH, LEAKY_RELU, RELU, THRESHOLD, _activate, _require, _state

_ONE = np.uint64(1)
_SIX = np.uint64(6)
_M63 = np.uint64(63)


def _consts(dtype):
    # Constants in the kernels' dtype: a float64 literal would promote float32 arithmetic
    # and break bit-identity with the C++ kernels. [0]: 0, [1]: 1, [2]: 2, [3]: -1.
    return np.array([0, 1, 2, -1], dtype=dtype)


@nb.njit(inline="always", cache=True)
def _threshold(kind, i, k):
    if kind == HARDTANH:
        return k[3] if i == 0 else k[1]
    return k[0]


@nb.njit(inline="always", cache=True)
def _may_cross(zl, zh, c):
    # Superset test shared by the count and collect passes (see regions.hpp).
    return zl != zh and not ((zl > c and zh > c) or (zl < c and zh < c))


@nb.njit(parallel=True, cache=True)
def _count_crossings(z, pseg, kind, counts, k):
    nt = 2 if kind == HARDTANH else 1
    for i in nb.prange(pseg.shape[0]):
        v = i + pseg[i]
        c = 0
        for j in range(z.shape[1]):
            for q in range(nt):
                if _may_cross(z[v, j], z[v + 1, j], _threshold(kind, q, k)):
                    c += 1
        counts[i] = c


@nb.njit(cache=True)
def _shell_sort(v, n):
    # Knuth's gaps, as the C++ kernel (any correct sort gives the same result).
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap >= 1:
        for i in range(gap, n):
            x = v[i]
            q = i
            while q >= gap and v[q - gap] > x:
                v[q] = v[q - gap]
                q -= gap
            v[q] = x
        gap //= 3


@nb.njit(cache=True)
def _collect_row(zl, zh, tl, th, kind, tol, buf, k):
    nt = 2 if kind == HARDTANH else 1
    two = k[2]
    c = 0
    for j in range(zl.shape[0]):
        for q in range(nt):
            thr = _threshold(kind, q, k)
            if not _may_cross(zl[j], zh[j], thr):
                continue
            t = tl + (th - tl) * ((thr - zl[j]) / (zh[j] - zl[j]))
            if t > tl + tol and t < th - tol:
                buf[c] = t
                c += 1
    _shell_sort(buf, c)
    n = 0
    first = 0
    for i in range(1, c + 1):
        if i == c or buf[i] - buf[i - 1] > tol:
            buf[n] = (buf[first] + buf[i - 1]) / two
            n += 1
            first = i
    return n


@nb.njit(parallel=True, cache=True)
def _collect_crossings(z, vt, pseg, kind, tol, offsets, buf, n_distinct, k):
    for i in nb.prange(pseg.shape[0]):
        if offsets[i + 1] == offsets[i]:  # no candidate crossing
            n_distinct[i] = 0
            continue
        v = i + pseg[i]
        n_distinct[i] = _collect_row(
            z[v], z[v + 1], vt[v], vt[v + 1], kind, tol, buf[offsets[i] : offsets[i + 1]], k
        )


@nb.njit(parallel=True, cache=True)
def _emit_pieces(
    z, vt, pseg, codes, buf, offsets, child_offsets, kind, slope, bit_offset, write_values,
    out_vt, out_seg, out_codes, out_h, k,
):  # fmt: skip
    n = pseg.shape[0]
    width = z.shape[1]
    n_words = codes.shape[1]
    bpn = 2 if kind == HARDTANH else 1
    two = k[2]
    ones = out_h.shape[1] > width  # the bias column of the next layer's GEMM
    for i in nb.prange(n):
        s = pseg[i]
        v = i + s
        tl = vt[v]
        th = vt[v + 1]
        span = th - tl
        c0 = child_offsets[i]
        n_bp = child_offsets[i + 1] - c0 - 1
        v0 = c0 + s
        bp0 = offsets[i]
        for c in range(n_bp + 1):
            clo = tl if c == 0 else buf[bp0 + c - 1]
            chi = th if c == n_bp else buf[bp0 + c]
            r = ((clo + (chi - clo) / two) - tl) / span
            o = c0 + c
            out_seg[o] = s
            for w in range(n_words):
                out_codes[o, w] = codes[i, w]
            for j in range(width):
                state = _state(z[v, j] + r * (z[v + 1, j] - z[v, j]), kind)
                first = bit_offset + j * bpn
                for bb in range(bpn):
                    if (state >> np.uint64(bb)) & _ONE:
                        g = np.uint64(first + bb)
                        out_codes[o, g >> _SIX] |= _ONE << (g & _M63)
            out_vt[v0 + c] = clo
            if write_values:
                if ones:
                    out_h[v0 + c, width] = k[1]
                if c == 0:
                    for j in range(width):
                        out_h[v0, j] = _activate(z[v, j], kind, slope)
                else:
                    rv = (clo - tl) / span
                    for j in range(width):
                        out_h[v0 + c, j] = _activate(
                            z[v, j] + rv * (z[v + 1, j] - z[v, j]), kind, slope
                        )
        if i + 1 == n or pseg[i + 1] != s:
            out_vt[v0 + n_bp + 1] = th
            if write_values:
                if ones:
                    out_h[v0 + n_bp + 1, width] = k[1]
                for j in range(width):
                    out_h[v0 + n_bp + 1, j] = _activate(z[v + 1, j], kind, slope)


def _check_vertices(z, pseg):
    _require(
        isinstance(z, np.ndarray) and z.dtype in (np.float32, np.float64),
        "z must be a float32 or float64 ndarray",
    )
    _require(z.ndim == 2 and z.flags.c_contiguous, "z must be 2-D (vertices, width)")
    _require(
        isinstance(pseg, np.ndarray) and pseg.dtype == np.int64 and pseg.ndim == 1
        and pseg.flags.c_contiguous,
        "pseg must be 1-D int64",
    )  # fmt: skip
    n = pseg.shape[0]
    _require(n == 0 or z.shape[0] >= n + 1, "z must have more rows (vertices) than pieces")
    if n:
        _require(
            pseg[0] >= 0 and n - 1 + pseg[n - 1] + 1 < z.shape[0],
            "pseg does not match the vertices of z",
        )


def _check_1d(a, dtype, n, what):
    _require(
        isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == 1
        and (n is None or a.shape[0] == n) and a.flags.c_contiguous,
        what,
    )  # fmt: skip


def _check_kind(kind):
    _require(kind in (RELU, LEAKY_RELU, HARDTANH, THRESHOLD), "unknown activation kind")


def count_crossings(z, pseg, kind: int, counts) -> None:
    """Per piece, an upper bound on its threshold crossings (sizes the collect buffer)."""
    _check_vertices(z, pseg)
    _check_kind(kind)
    _check_1d(counts, np.int64, pseg.shape[0], "counts must have one entry per piece")
    _count_crossings(z, pseg, int(kind), counts, _consts(z.dtype))


def collect_crossings(z, vt, pseg, kind: int, tol: float, offsets, buf, n_distinct) -> None:
    """Write, sort and merge each piece's crossings into ``buf[offsets[i]:]``."""
    _check_vertices(z, pseg)
    _check_kind(kind)
    n = pseg.shape[0]
    _check_1d(vt, z.dtype, z.shape[0], "vt must have one entry per vertex")
    _check_1d(offsets, np.int64, n + 1, "offsets must have n + 1 entries")
    _check_1d(n_distinct, np.int64, n, "n_distinct must have one entry per piece")
    _check_1d(buf, z.dtype, None, "buf must be 1-D with z's dtype")
    _require(offsets[0] == 0 and offsets[n] <= buf.shape[0], "buf is smaller than offsets[-1]")
    _collect_crossings(
        z, vt, pseg, int(kind), z.dtype.type(tol), offsets, buf, n_distinct, _consts(z.dtype)
    )


def emit_pieces(
    z, vt, pseg, codes, buf, offsets, child_offsets, kind: int, slope: float, bit_offset: int,
    write_values: bool, out_vt, out_seg, out_codes, out_h,
) -> None:  # fmt: skip
    """Cut every piece at its merged crossings; write children and vertices (regions.hpp)."""
    _check_vertices(z, pseg)
    _check_kind(kind)
    n = pseg.shape[0]
    nv, width = z.shape
    _check_1d(vt, z.dtype, nv, "vt must have one entry per vertex")
    _require(
        isinstance(codes, np.ndarray) and codes.dtype == np.uint64 and codes.ndim == 2
        and codes.shape[0] == n and codes.flags.c_contiguous,
        "codes must be (pieces, words)",
    )  # fmt: skip
    n_words = codes.shape[1]
    _check_1d(offsets, np.int64, n + 1, "offsets must have n + 1 entries")
    _check_1d(child_offsets, np.int64, n + 1, "child_offsets must have n + 1 entries")
    _check_1d(buf, z.dtype, None, "buf must be 1-D with z's dtype")
    _require(offsets[n] <= buf.shape[0], "buf is smaller than offsets[-1]")
    nc = int(child_offsets[n])
    nv_out = nc + (nv - n)
    _check_1d(out_vt, z.dtype, nv_out, "out_vt must have child_offsets[-1] + segments entries")
    _check_1d(out_seg, np.int64, nc, "out_seg must have child_offsets[-1] entries")
    _require(
        isinstance(out_codes, np.ndarray) and out_codes.dtype == np.uint64
        and out_codes.shape == (nc, n_words) and out_codes.flags.c_contiguous,
        "out_codes must be (children, words)",
    )  # fmt: skip
    bpn = 2 if kind == HARDTANH else 1
    _require(
        bit_offset >= 0 and bit_offset + width * bpn <= 64 * n_words,
        "pattern bits exceed codes width",
    )
    if write_values:
        _require(
            isinstance(out_h, np.ndarray) and out_h.dtype == z.dtype
            and out_h.shape[0] == nv_out and out_h.shape[1] in (width, width + 1)
            and out_h.flags.c_contiguous,
            "out_h must be (new vertices, width) or (new vertices, width + 1)",
        )  # fmt: skip
    else:
        out_h = np.empty((0, width), dtype=z.dtype)
    _emit_pieces(
        z, vt, pseg, codes, buf, offsets, child_offsets, int(kind), z.dtype.type(slope),
        int(bit_offset), bool(write_values), out_vt, out_seg, out_codes, out_h, _consts(z.dtype),
    )  # fmt: skip

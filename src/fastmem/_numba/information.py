"""Binning keys and KDE tiles (see cpp/include/fastmem/information.hpp)."""

from __future__ import annotations

import sys

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic

from .patterns import _mix64

_KEY1_IV = np.uint64(0x243F6A8885A308D3)
_KEY2_IV = np.uint64(0x13198A2E03707344)
_KEY2_MUL = np.uint64(0x9E3779B97F4A7C15)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_LIMIT = 4611686018427387904.0  # 2^62


@nb.njit(inline="always", cache=True, error_model="numpy")
def _fmix64(k):
    k ^= k >> _S33
    k *= _F1
    k ^= k >> _S33
    k *= _F2
    k ^= k >> _S33
    return k


@nb.njit(inline="always", cache=True, error_model="numpy")
def _count_le(edges, v):
    # count_le of information.hpp: branch-free halving, the answer in [base, base + n]
    n = edges.shape[0]
    if n <= 0:
        return 0
    base = 0
    while n > 1:
        half = n >> 1
        base = base + half if edges[base + half] <= v else base
        n -= half
    return base + (1 if edges[base] <= v else 0)


@nb.njit(inline="always", cache=True, error_model="numpy")
def _code(a, kind, edges, lo, scale, scale_t, n_codes):
    if kind == 0:
        k = _count_le(edges, np.float64(a))
        return k - 1 if k > 0 else edges.shape[0] - 1
    if kind == 1:
        return _count_le(edges, np.float64(a))
    if kind == 2:
        t = np.floor((np.float64(a) - lo) * scale)
        top = np.float64(n_codes - 1)
        if t < 0.0:
            t = 0.0
        elif t > top:
            t = top
        return np.int64(t)
    q = np.floor(a / scale_t)  # in the activation's precision, as NumPy 2 does
    if q < -_LIMIT:
        q = -_LIMIT
    elif q > _LIMIT:
        q = _LIMIT
    return np.int64(q)


@nb.njit(cache=True)
def _bits(kind, n_codes):
    if kind == 3:
        return 64
    if n_codes <= 256:
        return 8
    if n_codes <= 65536:
        return 16
    return 32 if n_codes <= 4294967296 else 64


@nb.njit(parallel=True, cache=True)
def _bin_keys(a, kind, edges, lo, scale, scale_t, n_codes, rps, key1, key2, occ, use_occ):
    rows, width = a.shape
    bits = _bits(kind, n_codes)
    per_word = 64 // bits
    cells = width * n_codes
    bad = 0
    for i in nb.prange(rows):
        seg = i // rps
        h1 = _mix64(_KEY1_IV ^ np.uint64(seg))
        h2 = _fmix64(_KEY2_IV ^ np.uint64(seg))
        acc = np.uint64(0)
        filled = 0
        nb_bad = 0
        for j in range(width):
            v = a[i, j]
            c = np.uint64(0)
            if not ((v - v) == 0):
                nb_bad += 1
            else:
                c = np.uint64(_code(v, kind, edges, lo, scale, scale_t, n_codes))
            if use_occ:
                occ[seg * cells + j * n_codes + np.int64(c)] = 1
            if bits == 64:
                acc |= c
            else:
                acc |= c << np.uint64(filled * bits)
            filled += 1
            if filled == per_word:
                h1 = _mix64(h1 ^ acc)
                h2 = _fmix64((h2 ^ acc) * _KEY2_MUL)
                acc = np.uint64(0)
                filled = 0
        if filled:
            h1 = _mix64(h1 ^ acc)
            h2 = _fmix64((h2 ^ acc) * _KEY2_MUL)
        key1[i] = _mix64(h1 ^ np.uint64(width))
        key2[i] = _fmix64(h2 ^ np.uint64(width))
        bad += nb_bad
    return bad


_BLOCK = 256  # values coded at once (a multiple of 8: words never straddle blocks)


@nb.njit(cache=True)
def _byte_key_rows(a, lo, scale, top, rps, key1, key2, mask, use_occ, r0, r1, bads, ch):
    """Rows r0..r1 of _uniform_byte_keys (one chunk, its own occupancy masks)."""
    width = a.shape[1]
    one = np.uint64(1)
    buf = np.zeros(_BLOCK, dtype=np.uint8)
    words = buf.view(np.uint64)
    nbad = 0
    for i in range(r0, r1):
        seg = i // rps
        h1 = _mix64(_KEY1_IV ^ np.uint64(seg))
        h2 = _fmix64(_KEY2_IV ^ np.uint64(seg))
        for j0 in range(0, width, _BLOCK):
            m = min(_BLOCK, width - j0)
            x = a[i, j0 : j0 + m]
            nonfinite = 0
            for q in range(m):
                v = np.float64(x[q])
                nonfinite += 0 if v - v == 0.0 else 1
                # clamp, then truncate: equals floor-then-clamp, and NaN -> 0
                t = (v - lo) * scale
                t = t if t >= 0.0 else 0.0
                t = t if t <= top else top
                buf[q] = np.uint8(np.int32(t))
            if nonfinite:
                nbad += nonfinite
                for q in range(m):
                    v = np.float64(x[q])
                    if not (v - v == 0.0):
                        buf[q] = 0
            for q in range(m, (m + 7) & ~7):
                buf[q] = 0
            if use_occ:
                mk = mask[seg * width + j0 : seg * width + j0 + m]
                for q in range(m):
                    mk[q] |= one << np.uint64(buf[q])
            for w in range((m + 7) >> 3):
                word = words[w]
                h1 = _mix64(h1 ^ word)
                h2 = _fmix64((h2 ^ word) * _KEY2_MUL)
        key1[i] = _mix64(h1 ^ np.uint64(width))
        key2[i] = _fmix64(h2 ^ np.uint64(width))
    bads[ch] = nbad


@nb.njit(parallel=True, cache=True)
def _uniform_byte_keys(a, lo, scale, n_codes, rps, key1, key2, occ, use_occ, n_chunks):
    """bin_keys for uniform bins with byte codes (the stress case), as the C++ driver:
    codes of a block of the row by a branch-free loop into a byte buffer, folded eight
    bytes per word (the same keys as _bin_keys with 8-bit codes); occupancy as one bit
    mask per (segment, unit) and chunk of rows, OR-ed into ``occ`` at the end.

    Inner loops index 1-D slices: 2-D indexing a[i, j] keeps LLVM from vectorising."""
    rows, width = a.shape
    n_seg = rows // rps
    top = np.float64(n_codes - 1)
    cells = n_seg * width
    masks = np.zeros((n_chunks, cells if use_occ else 0), dtype=np.uint64)
    bads = np.zeros(n_chunks, dtype=np.int64)
    one = np.uint64(1)
    for ch in nb.prange(n_chunks):  # chunk size 1 (set by bin_keys): dynamic
        _byte_key_rows(
            a, lo, scale, top, rps, key1, key2, masks[ch], use_occ,
            ch * rows // n_chunks, (ch + 1) * rows // n_chunks, bads, ch,
        )  # fmt: skip
    if use_occ:
        for u in nb.prange(cells):
            m_all = np.uint64(0)
            for ch in range(n_chunks):
                m_all |= masks[ch, u]
            if m_all:
                for c in range(n_codes):
                    if (m_all >> np.uint64(c)) & one:
                        occ[u * n_codes + c] = 1
    return bads.sum()


@nb.njit(parallel=True, cache=True)
def _bin_rows_equal(a, kind, edges, lo, scale, scale_t, n_codes, rows_a, rows_b):
    differ = 0
    width = a.shape[1]
    for p in nb.prange(rows_a.shape[0]):
        ra = rows_a[p]
        rb = rows_b[p]
        d = 0
        for j in range(width):
            ca = _code(a[ra, j], kind, edges, lo, scale, scale_t, n_codes)
            cb = _code(a[rb, j], kind, edges, lo, scale, scale_t, n_codes)
            if ca != cb:
                d = 1
                break
        differ += d
    return differ


@nb.njit(parallel=True, cache=True)
def _bin_codes(a, kind, edges, lo, scale, scale_t, n_codes, out):
    rows, width = a.shape
    for i in nb.prange(rows):
        for j in range(width):
            out[i, j] = _code(a[i, j], kind, edges, lo, scale, scale_t, n_codes)


@nb.njit(parallel=True, cache=True)
def _kde_tile(tile, rn, cn, ry, cy, scale, row_offset, col_offset, ra, rc, ca, cc, columns):
    rows, cols = tile.shape
    for i in nb.prange(rows):
        s_all = 0.0
        s_cls = 0.0
        yi = ry[i]
        for j in range(cols):
            if row_offset + i == col_offset + j:
                e = 1.0
            else:
                d = rn[i] + cn[j] - 2.0 * tile[i, j]
                if not (d > 0.0):
                    d = 0.0
                e = np.exp(-d * scale)
            tile[i, j] = e
            s_all += e
            if cy[j] == yi:
                s_cls += e
        ra[i] += s_all
        rc[i] += s_cls
    if not columns:
        return
    block = 64
    n_blocks = (cols + block - 1) // block
    for b in nb.prange(n_blocks):
        j0 = b * block
        j1 = min(cols, j0 + block)
        acc_all = np.zeros(block)
        acc_cls = np.zeros(block)
        for i in range(rows):
            yi = ry[i]
            for j in range(j0, j1):
                acc_all[j - j0] += tile[i, j]
                if cy[j] == yi:
                    acc_cls[j - j0] += tile[i, j]
        for j in range(j0, j1):
            ca[j] += acc_all[j - j0]
            cc[j] += acc_cls[j - j0]


_KDE_NORM_SLACK = 1e-12  # kKdeNormSlack


@nb.njit(cache=True, error_model="numpy")
def _kde_far(g32, ni, nj, li, lj, err, cutoff):
    lower = (ni + nj) * (1.0 - _KDE_NORM_SLACK) - 2.0 * np.float64(g32) - 2.0 * err * li * lj
    return lower > cutoff


@nb.njit(cache=True)
def _kde_screen(tile, rn, cn, rl, cl, err, cutoff, row_offset, col_offset):
    # one thread on purpose, as in C++: BLAS workers still spin after the GEMM before
    rows, cols = tile.shape
    near = 0
    for i in range(rows):
        t = tile[i]  # 1-D slices vectorise, 2-D indexing does not
        ni = rn[i]
        li = rl[i]
        c = 0
        for j in range(cols):
            c += 0 if _kde_far(t[j], ni, cn[j], li, cl[j], err, cutoff) else 1
        # the global diagonal (d = 0) is always near and always computed as exactly 1
        jd = row_offset + i - col_offset
        if 0 <= jd < cols and not _kde_far(t[jd], ni, cn[jd], li, cl[jd], err, cutoff):
            c -= 1
        near += c
    return near


@nb.njit(cache=True, error_model="numpy")
def _dot_rows(x, z):
    # dot_rows: eight partial sums (k mod 8, the tail into the first), combined pairwise
    d = x.shape[0]
    d8 = d - d % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for k in range(0, d8, 8):
        s0 += x[k] * z[k]
        s1 += x[k + 1] * z[k + 1]
        s2 += x[k + 2] * z[k + 2]
        s3 += x[k + 3] * z[k + 3]
        s4 += x[k + 4] * z[k + 4]
        s5 += x[k + 5] * z[k + 5]
        s6 += x[k + 6] * z[k + 6]
        s7 += x[k + 7] * z[k + 7]
    tail = d - d8
    if tail > 0:
        s0 += x[d8] * z[d8]
    if tail > 1:
        s1 += x[d8 + 1] * z[d8 + 1]
    if tail > 2:
        s2 += x[d8 + 2] * z[d8 + 2]
    if tail > 3:
        s3 += x[d8 + 3] * z[d8 + 3]
    if tail > 4:
        s4 += x[d8 + 4] * z[d8 + 4]
    if tail > 5:
        s5 += x[d8 + 5] * z[d8 + 5]
    if tail > 6:
        s6 += x[d8 + 6] * z[d8 + 6]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@nb.njit(cache=True)
def _kde_sparse_tile(
    tile, a, b, rn, cn, rl, cl, ry, cy, err, cutoff, scale, row_offset, col_offset, ra, rc, ca,
    cc, columns,
):  # fmt: skip
    # one thread, sums in row-major order: as the C++ and CUDA kernels
    rows, cols = tile.shape
    c_all = np.zeros(cols if columns else 0)
    c_cls = np.zeros(cols if columns else 0)
    for i in range(rows):
        t = tile[i]
        ai = a[i]
        ni = rn[i]
        li = rl[i]
        yi = ry[i]
        s_all = 0.0
        s_cls = 0.0
        for j in range(cols):
            diagonal = row_offset + i == col_offset + j
            if not diagonal and _kde_far(t[j], ni, cn[j], li, cl[j], err, cutoff):
                continue
            if diagonal:
                e = 1.0
            else:
                d = ni + cn[j] - 2.0 * _dot_rows(ai, b[j])
                if not (d > 0.0):
                    d = 0.0
                e = np.exp(-d * scale)
            s_all += e
            if cy[j] == yi:
                s_cls += e
            if columns:
                c_all[j] += e
                if cy[j] == yi:
                    c_cls[j] += e
        ra[i] += s_all
        rc[i] += s_cls
    for j in range(c_all.shape[0]):
        ca[j] += c_all[j]
        cc[j] += c_cls[j]


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"fastmem._numba: {what}")


def _check(a, kind, edges, n_codes):
    _require(
        isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64),
        "a must be a float32 or float64 ndarray",
    )
    _require(a.ndim == 2 and a.flags.c_contiguous, "a must be 2-D and C-contiguous")
    _require(kind in (0, 1, 2, 3), "unknown bin kind")
    _require(
        isinstance(edges, np.ndarray) and edges.dtype == np.float64 and edges.ndim == 1,
        "edges must be a 1-D float64 ndarray",
    )
    _require(kind > 1 or edges.shape[0] >= 1, "edge kinds need at least one edge")
    _require(kind == 3 or n_codes >= 1, "n_codes must be positive")


def _vec(x, dtype, n, what):
    _require(
        isinstance(x, np.ndarray) and x.dtype == dtype and x.ndim == 1 and x.flags.c_contiguous,
        f"{what} must be a 1-D C-contiguous {np.dtype(dtype)} ndarray",
    )
    if n is not None:
        _require(x.shape[0] == n, f"{what}: wrong length")


def bin_keys(a, kind, edges, lo, scale, n_codes, rows_per_segment, key1, key2, occupancy, bad):
    """Two 64-bit keys per row of binned codes; non-finite count into ``bad[0]``."""
    _check(a, kind, edges, n_codes)
    rows, width = a.shape
    _require(
        rows_per_segment >= 1 and rows % rows_per_segment == 0,
        "rows must be a multiple of rows_per_segment",
    )
    _vec(key1, np.uint64, rows, "key1")
    _vec(key2, np.uint64, rows, "key2")
    _vec(bad, np.int64, 1, "bad")
    _vec(occupancy, np.uint8, None, "occupancy")
    cells = (rows // rows_per_segment) * width * n_codes
    _require(
        occupancy.shape[0] == 0 or (kind != 3 and occupancy.shape[0] == cells),
        "occupancy must be empty or hold segments * width * n_codes flags",
    )
    # Chunks of rows (several per thread, dynamically scheduled: a core taken by another
    # process delays one chunk, not a thread's whole share), each with private occupancy
    # masks, as long as those masks stay small next to the activations.
    threads = nb.get_num_threads()
    mask_bytes = 8 * (rows // rows_per_segment) * width if occupancy.shape[0] else 0
    n_chunks = max(1, min(rows, 8 * threads))
    if mask_bytes:
        n_chunks = min(n_chunks, max(64 << 20, a.nbytes // 4) // mask_bytes)
    if kind == 2 and n_codes <= 64 and sys.byteorder == "little" and n_chunks >= min(threads, rows):
        previous = nb.set_parallel_chunksize(1)
        try:
            bad[0] = _uniform_byte_keys(
                a, float(lo), float(scale), int(n_codes), int(rows_per_segment), key1, key2,
                occupancy, occupancy.shape[0] > 0, max(1, n_chunks),
            )  # fmt: skip
        finally:
            nb.set_parallel_chunksize(previous)
        return
    bad[0] = _bin_keys(
        a, int(kind), edges, float(lo), float(scale), a.dtype.type(scale), int(n_codes),
        int(rows_per_segment), key1, key2, occupancy, occupancy.shape[0] > 0,
    )  # fmt: skip


def bin_rows_equal(a, kind, edges, lo, scale, n_codes, rows_a, rows_b, differ):
    """Number of row pairs whose codes differ, into ``differ[0]``."""
    _check(a, kind, edges, n_codes)
    _vec(rows_a, np.int64, None, "rows_a")
    _vec(rows_b, np.int64, rows_a.shape[0], "rows_b")
    _vec(differ, np.int64, 1, "differ")
    n = a.shape[0]
    for r in (rows_a, rows_b):
        _require(r.size == 0 or (r.min() >= 0 and r.max() < n), "row index out of range")
    differ[0] = _bin_rows_equal(
        a, int(kind), edges, float(lo), float(scale), a.dtype.type(scale), int(n_codes),
        rows_a, rows_b,
    )  # fmt: skip


def bin_codes(a, kind, edges, lo, scale, n_codes, out):
    """The integer code of every value of ``a`` into ``out`` (int64, same shape)."""
    _check(a, kind, edges, n_codes)
    _require(
        isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == a.shape,
        "a and out must have the same shape (out int64)",
    )
    _require(out.flags.c_contiguous, "out must be C-contiguous")
    _bin_codes(a, int(kind), edges, float(lo), float(scale), a.dtype.type(scale), int(n_codes), out)


def kde_tile(
    tile, row_norms, col_norms, row_labels, col_labels, scale, row_offset, col_offset,
    row_all, row_cls, col_all, col_cls, columns,
):  # fmt: skip
    """Gaussian kernel values of a Gram tile (in place) and their row / column sums."""
    _require(
        isinstance(tile, np.ndarray) and tile.dtype == np.float64 and tile.ndim == 2,
        "tile must be a 2-D float64 ndarray",
    )
    _require(tile.flags.c_contiguous, "tile must be C-contiguous")
    rows, cols = tile.shape
    for v, n, w in (
        (row_norms, rows, "row_norms"), (row_all, rows, "row_all"), (row_cls, rows, "row_cls"),
        (col_norms, cols, "col_norms"), (col_all, cols, "col_all"), (col_cls, cols, "col_cls"),
    ):  # fmt: skip
        _vec(v, np.float64, n, w)
    _vec(row_labels, np.int64, rows, "row_labels")
    _vec(col_labels, np.int64, cols, "col_labels")
    _kde_tile(
        tile, row_norms, col_norms, row_labels, col_labels, float(scale), int(row_offset),
        int(col_offset), row_all, row_cls, col_all, col_cls, bool(columns),
    )  # fmt: skip


def kde_screen(
    tile, row_norms, col_norms, row_lengths, col_lengths, err, cutoff, row_offset, col_offset,
    count,
):  # fmt: skip
    """Entries of a float32 Gram tile whose distance the screening bound cannot prove
    above ``cutoff`` (the global diagonal excluded), into ``count[0]``."""
    _require(
        isinstance(tile, np.ndarray) and tile.dtype == np.float32 and tile.ndim == 2,
        "tile must be a 2-D float32 ndarray",
    )
    _require(tile.flags.c_contiguous, "tile must be C-contiguous")
    rows, cols = tile.shape
    for v, n, w in (
        (row_norms, rows, "row_norms"), (row_lengths, rows, "row_lengths"),
        (col_norms, cols, "col_norms"), (col_lengths, cols, "col_lengths"),
    ):  # fmt: skip
        _vec(v, np.float64, n, w)
    _vec(count, np.int64, 1, "count")
    count[0] = _kde_screen(
        tile, row_norms, col_norms, row_lengths, col_lengths, float(err), float(cutoff),
        int(row_offset), int(col_offset),
    )  # fmt: skip


def kde_sparse_tile(
    tile, a, b, row_norms, col_norms, row_lengths, col_lengths, row_labels, col_labels, err,
    cutoff, scale, row_offset, col_offset, row_all, row_cls, col_all, col_cls, columns,
):  # fmt: skip
    """Kernel values of the entries of a float32 Gram tile that the screening bound
    cannot prove far, from exact float64 dot products of ``a``'s and ``b``'s rows; their
    row (and, with ``columns``, column) sums."""
    _require(
        isinstance(tile, np.ndarray) and tile.dtype == np.float32 and tile.ndim == 2,
        "tile must be a 2-D float32 ndarray",
    )
    _require(tile.flags.c_contiguous, "tile must be C-contiguous")
    rows, cols = tile.shape
    for m, n in ((a, rows), (b, cols)):
        _require(
            isinstance(m, np.ndarray) and m.dtype == np.float64 and m.ndim == 2
            and m.flags.c_contiguous and m.shape[0] == n,
            "a must hold the tile's rows and b its columns (C-contiguous float64)",
        )  # fmt: skip
    _require(a.shape[1] == b.shape[1], "a and b must have the same width")
    for v, n, w in (
        (row_norms, rows, "row_norms"), (row_lengths, rows, "row_lengths"),
        (row_all, rows, "row_all"), (row_cls, rows, "row_cls"),
        (col_norms, cols, "col_norms"), (col_lengths, cols, "col_lengths"),
        (col_all, cols, "col_all"), (col_cls, cols, "col_cls"),
    ):  # fmt: skip
        _vec(v, np.float64, n, w)
    _vec(row_labels, np.int64, rows, "row_labels")
    _vec(col_labels, np.int64, cols, "col_labels")
    _kde_sparse_tile(
        tile, a, b, row_norms, col_norms, row_lengths, col_lengths, row_labels, col_labels,
        float(err), float(cutoff), float(scale), int(row_offset), int(col_offset), row_all,
        row_cls, col_all, col_cls, bool(columns),
    )  # fmt: skip


# ---------------------------------------------------------------- information plane


@nb.njit(cache=True, error_model="numpy")
def _plane_bits(kind, n_codes):
    if kind == 3:
        return 64
    bits = 1
    while bits < 63 and (1 << bits) < n_codes:
        bits += 1
    return bits


@nb.njit(cache=True)
def _plane_cap(n):
    c = 2
    while c < 2 * n:
        c <<= 1
    return c


@nb.njit(cache=True)
def _plane_hist_sum(hist, max_c, clog):
    s = 0.0
    for c in range(2, max_c + 1):
        if hist[c]:
            s += np.float64(hist[c]) * clog[c]
        hist[c] = 0
    hist[0] = 0
    if max_c >= 1:
        hist[1] = 0
    return s


@nb.njit(cache=True)
def _plane_pair_sum(gid, n, groups, other, n_other, clog, pkey, pcnt, hist, cap):
    max_c = 0
    if groups * n_other <= cap:
        m = groups * n_other
        for k in range(m):
            pcnt[k] = 0
        for i in range(n):
            pcnt[gid[i] * n_other + other[i]] += 1
        for k in range(m):
            c = pcnt[k]
            hist[c] += 1
            max_c = max(max_c, c)
    else:
        mask = cap - 1
        for k in range(cap):
            pkey[k] = -1
        for i in range(n):
            key = gid[i] * n_other + other[i]
            slot = np.int64(_mix64(np.uint64(key)) & np.uint64(mask))
            while pkey[slot] != -1 and pkey[slot] != key:
                slot = (slot + 1) & mask
            if pkey[slot] == -1:
                pkey[slot] = key
                pcnt[slot] = 0
            pcnt[slot] += 1
        for k in range(cap):
            if pkey[k] == -1:
                continue
            c = pcnt[k]
            hist[c] += 1
            max_c = max(max_c, c)
    return _plane_hist_sum(hist, max_c, clog)


@nb.njit(inline="always", cache=True, error_model="numpy")
def _plane_code(a, kind, edges, lo, scale, scale_t, n_codes, hint):
    """plane_code of information.hpp: a guessed edge index, confirmed, else _count_le."""
    if kind > 1 or hint <= 0.0:
        return _code(a, kind, edges, lo, scale, scale_t, n_codes)
    v = np.float64(a)
    n_edges = edges.shape[0]
    t = (v - edges[0]) * hint
    k = -1
    if t >= 0.0 and t < np.float64(n_edges):
        g = np.int64(t)
        if edges[g] <= v and (g + 1 == n_edges or v < edges[g + 1]):
            k = g + 1
    if k < 0:
        k = _count_le(edges, v)
    if kind == 1:
        return k
    return k - 1 if k > 0 else n_edges - 1


@nb.njit(cache=True)
def _plane_hint_scale(kind, edges):
    if kind > 1 or edges.shape[0] < 2:
        return 0.0
    span = edges[edges.shape[0] - 1] - edges[0]
    return np.float64(edges.shape[0] - 1) / span if span > 0.0 else 0.0


@intrinsic
def _rows_at(typingctx, addr, proto):
    """A pointer of ``proto``'s dtype at the address ``addr`` (a segment's data)."""
    ptr_t = types.CPointer(proto.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr_t))

    return ptr_t(types.int64, proto), codegen


@nb.njit(cache=True)
def _plane_segment(a, n, width, kind, edges, lo, scale, scale_t, n_codes, y, n_y, x, n_x, clog,
                   out):  # fmt: skip
    """plane_segment of information.hpp: one segment's entropy sums into out[0:3]."""
    bits = _plane_bits(kind, n_codes)
    per_word = 64 // bits
    nw = (width + per_word - 1) // per_word
    cap = _plane_cap(n)
    mask = cap - 1
    words = np.empty(n * nw, dtype=np.uint64)
    hsh = np.empty(n, dtype=np.uint64)
    gid = np.empty(n, dtype=np.int64)
    head = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    table = np.full(cap, -1, dtype=np.int64)
    thash = np.empty(cap, dtype=np.uint64)
    pkey = np.empty(cap, dtype=np.int64)
    pcnt = np.empty(cap, dtype=np.int64)
    hist = np.zeros(n + 1, dtype=np.int64)
    hint = _plane_hint_scale(kind, edges)
    bad = 0
    for i in range(n):
        r0 = i * width
        h = _KEY1_IV
        acc = np.uint64(0)
        filled = 0
        wi = 0
        for j in range(width):
            v = a[r0 + j]
            c = np.uint64(0)
            if not ((v - v) == 0):
                bad += 1
            else:
                c = np.uint64(_plane_code(v, kind, edges, lo, scale, scale_t, n_codes, hint))
            if bits == 64:
                acc |= c
            else:
                acc |= c << np.uint64(filled * bits)
            filled += 1
            if filled == per_word:
                words[i * nw + wi] = acc
                wi += 1
                h = _mix64(h ^ acc)
                acc = np.uint64(0)
                filled = 0
        if filled:
            words[i * nw + wi] = acc
            h = _mix64(h ^ acc)
        hsh[i] = h
    groups = 0
    for i in range(n):
        h = hsh[i]
        slot = np.int64(h & np.uint64(mask))
        while True:
            g = table[slot]
            if g < 0:
                table[slot] = groups
                thash[slot] = h
                head[groups] = i
                size[groups] = 1
                gid[i] = groups
                groups += 1
                break
            same = thash[slot] == h
            if same and nw > 1:
                r = head[g]
                q = 0
                while same and q < nw:
                    same = words[r * nw + q] == words[i * nw + q]
                    q += 1
            if same:
                size[g] += 1
                gid[i] = g
                break
            slot = (slot + 1) & mask
    max_c = 0
    for g in range(groups):
        c = size[g]
        hist[c] += 1
        max_c = max(max_c, c)
    out[0] = _plane_hist_sum(hist, max_c, clog)
    out[1] = _plane_pair_sum(gid, n, groups, y, n_y, clog, pkey, pcnt, hist, cap)
    if x.shape[0]:
        out[2] = _plane_pair_sum(gid, n, groups, x, n_x, clog, pkey, pcnt, hist, cap)
    else:
        out[2] = np.nan
    return bad


@nb.njit(parallel=True, cache=True)
def _bin_plane(addrs, widths, proto, n, kind, edges, n_edges, edge_offsets, lo, scale, scale_t,
               n_codes, y, n_y, x, n_x, clog, out):  # fmt: skip
    segments = addrs.shape[0]
    bads = np.zeros(segments, dtype=np.int64)
    for g in nb.prange(segments):
        e0 = edge_offsets[g]
        a = nb.carray(_rows_at(addrs[g], proto), n * widths[g])
        bads[g] = _plane_segment(
            a, n, widths[g], kind, edges[e0 : e0 + n_edges], lo[g], scale[g], scale_t, n_codes,
            y, n_y, x, n_x, clog, out[g],
        )  # fmt: skip
    return bads.sum()


def bin_plane(
    segments, kind, edges, n_edges, edge_offsets, lo, scale, n_codes, labels, n_labels, inputs,
    n_inputs, clog, scratch, out, bad,
):  # fmt: skip
    """Entropy sums of every segment (see bin_plane in information.hpp) into ``out``
    (segments, 3); the number of non-finite values into ``bad[0]``. ``segments``: a list
    of (rows, width) C-contiguous arrays of one dtype (float32 or float64)."""
    _require(isinstance(segments, list | tuple) and len(segments) >= 1, "segments: at least one")
    proto = segments[0]
    _require(
        isinstance(proto, np.ndarray) and proto.dtype in (np.float32, np.float64),
        "segments must be float32 or float64 ndarrays",
    )
    _vec(labels, np.int64, None, "labels")
    rows = labels.shape[0]
    _require(rows >= 1, "labels: one per row")
    for seg in segments:
        _require(
            isinstance(seg, np.ndarray) and seg.dtype == proto.dtype and seg.ndim == 2
            and seg.flags.c_contiguous and seg.shape[0] == rows and seg.shape[1] >= 1,
            "segments must all be C-contiguous 2-D arrays of the first one's dtype, with "
            "`rows` rows and at least one column",
        )  # fmt: skip
    count = len(segments)
    _require(0 <= kind <= 3, "unknown bin kind")
    _require(kind > 1 or n_edges >= 1, "edge kinds need at least one edge")
    _require(kind == 3 or n_codes >= 1, "n_codes must be positive")
    _require(n_edges >= 0, "n_edges must be non-negative")
    _vec(edge_offsets, np.int64, count, "edge_offsets")
    _vec(lo, np.float64, count, "lo")
    _vec(scale, np.float64, count, "scale")
    _vec(edges, np.float64, None, "edges")
    _vec(inputs, np.int64, None, "inputs")
    _require(inputs.shape[0] in (0, rows), "inputs: empty or one per row")
    _vec(clog, np.float64, rows + 1, "clog")
    _vec(scratch, np.int64, None, "scratch")
    _vec(bad, np.int64, 1, "bad")
    _require(
        isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (count, 3)
        and out.flags.c_contiguous,
        "out must be (segments, 3)",
    )  # fmt: skip
    _require(
        edge_offsets.min() >= 0 and bool(np.all(n_edges <= edges.shape[0] - edge_offsets)),
        "edge slice outside edges",
    )  # fmt: skip
    _require(n_labels >= 1 and labels.min() >= 0 and labels.max() < n_labels, "label out of range")
    if inputs.shape[0]:
        _require(
            n_inputs >= 1 and inputs.min() >= 0 and inputs.max() < n_inputs,
            "input id out of range",
        )  # fmt: skip
    addrs = np.array([seg.ctypes.data for seg in segments], dtype=np.int64)
    widths = np.array([seg.shape[1] for seg in segments], dtype=np.int64)
    # segments one at a time from a shared queue (chunk size 1): a core taken by another
    # process delays one segment, not a thread's whole share
    previous = nb.set_parallel_chunksize(1)
    try:
        bad[0] = _bin_plane_run(
            addrs, widths, proto, rows, kind, edges, n_edges, edge_offsets, lo, scale, n_codes,
            labels, n_labels, inputs, n_inputs, clog, out,
        )  # fmt: skip
    finally:
        nb.set_parallel_chunksize(previous)


def _bin_plane_run(addrs, widths, proto, rows, kind, edges, n_edges, edge_offsets, lo, scale,
                   n_codes, labels, n_labels, inputs, n_inputs, clog, out):  # fmt: skip
    return _bin_plane(
        addrs, widths, proto[:0].ravel(), int(rows), int(kind), edges, int(n_edges),
        edge_offsets, lo, scale, proto.dtype.type(scale[0]), int(n_codes), labels, int(n_labels),
        inputs, int(n_inputs), clog, out,
    )  # fmt: skip

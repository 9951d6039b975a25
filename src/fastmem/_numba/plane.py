"""2-D slice kernels (the Numba twin of cpp/include/fastmem/plane.hpp and cpu/plane_drivers.cpp).

Same names, arguments and results (bit for bit) as ``fastmem._core``: each parent polygon
is cut, independently, by the layer's threshold lines in the order (neuron, threshold);
see the C++ header for the rules.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .activations import (
    N_KINDS,
    _activate,
    _activation_slope,
    _bits_per_neuron,
    _n_thresholds,
    _state,
    _threshold,
)
from .patterns import _require


@nb.njit(cache=True, error_model="numpy")
def _side(f, tol):
    if f > tol:
        return 1
    if f < -tol:
        return -1
    return 0


@nb.njit(cache=True, error_model="numpy")
def _vertex_row(maps, p, s, t, z):
    for j in range(maps.shape[2]):
        z[j] = (maps[0, p, j] + s * maps[1, p, j]) + t * maps[2, p, j]


@nb.njit(cache=True)
def _grow1(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@nb.njit(cache=True)
def _grow2(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty((max(need, 2 * a.shape[0]), a.shape[1]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@nb.njit(cache=True)
def _value(v, j, m, Zc, row, z, s, t, A, GS, GT):
    """Vertex ``v``'s value of neuron ``j`` (see ``_cut_parent``)."""
    if v < m:
        return Zc[v, j]
    r = row[v - m]
    if r >= 0:
        return z[r, j]
    return (A[j] + s[v - m] * GS[j]) + t[v - m] * GT[j]


@nb.njit(cache=True)
def _straddles(ids, n, code, kind, tolz, m, Zc, row, z, s, t, A, GS, GT):
    j = code >> 1
    c = _threshold(kind, code & 1)
    tol = tolz[j]
    above = False
    below = False
    for q in range(n):
        sd = _side(_value(ids[q], j, m, Zc, row, z, s, t, A, GS, GT) - c, tol)
        above |= sd > 0
        below |= sd < 0
    return above and below


@nb.njit(cache=True)
def _cut_parent(S, T, maps, owner, corners, off, kind, tolz, p):
    """The cut of parent ``p`` (the BSP of cpu/plane_drivers.cpp's ``cut_parent``):
    (poly_off, n_poly, poly, n_corners, s, t, n_new). Local vertex ``v < m`` is the
    parent's corner ``v``; ``v >= m`` new vertex ``v - m``, with a row of values in ``z``
    when it lies on the parent's boundary, else read from the parent's maps."""
    c0 = off[p]
    m = off[p + 1] - c0
    width = maps.shape[2]
    A = maps[0, p]
    GS = maps[1, p]
    GT = maps[2, p]
    Zc = np.empty((m, width))
    for v in range(m):
        g = corners[c0 + v]
        _vertex_row(maps, owner[g], S[g], T[g], Zc[v])
    ns = 0
    s = np.empty(16)
    t = np.empty(16)
    row = np.empty(16, dtype=np.int64)
    nz = 0
    z = np.empty((4, width))
    nt = _n_thresholds(kind)
    lpool = np.empty(max(16, width * nt), dtype=np.int64)
    nl = 0
    for j in range(width):
        zmin = Zc[0, j]
        zmax = Zc[0, j]
        for v in range(1, m):
            x = Zc[v, j]
            zmin = x if x < zmin else zmin
            zmax = x if x > zmax else zmax
        for i in range(nt):
            c = _threshold(kind, i)
            if zmax - c > tolz[j] and zmin - c < -tolz[j]:
                lpool[nl] = 2 * j + i
                nl += 1
    cpool = np.empty(max(16, m), dtype=np.int64)
    bpool = np.empty(max(16, m), dtype=np.uint8)
    for v in range(m):
        cpool[v] = v
        bpool[v] = 1
    ncp = m
    stack = np.empty((16, 4), dtype=np.int64)
    stack[0, 0] = 0
    stack[0, 1] = m
    stack[0, 2] = 0
    stack[0, 3] = nl
    nst = 1
    poly = np.empty(16, dtype=np.int64)
    n_corners = 0
    poly_off = np.empty(16, dtype=np.int64)
    poly_off[0] = 0
    n_poly = 0
    while nst > 0:
        nst -= 1
        nc0, nnc, nl0, nnl = stack[nst, 0], stack[nst, 1], stack[nst, 2], stack[nst, 3]
        cur = cpool[nc0 : nc0 + nnc].copy()
        bcur = bpool[nc0 : nc0 + nnc].copy()
        if nnl == 0:  # no line crosses it: a final polygon
            poly = _grow1(poly, n_corners + nnc)
            poly[n_corners : n_corners + nnc] = cur
            n_corners += nnc
            poly_off = _grow1(poly_off, n_poly + 2)
            n_poly += 1
            poly_off[n_poly] = n_corners
            ncp = nc0
            nl = nl0
            continue
        code = lpool[nl0]
        j = code >> 1
        c = _threshold(kind, code & 1)
        tol = tolz[j]
        n = nnc
        side = np.empty(n, dtype=np.int64)
        for k in range(n):
            side[k] = _side(_value(cur[k], j, m, Zc, row, z, s, t, A, GS, GT) - c, tol)
        cross = np.full(n, -1, dtype=np.int64)
        for k in range(n):
            k2 = 0 if k + 1 == n else k + 1
            if side[k] * side[k2] >= 0:
                continue
            a = cur[k]
            b = cur[k2]
            sa = S[corners[c0 + a]] if a < m else s[a - m]
            ta = T[corners[c0 + a]] if a < m else t[a - m]
            sb = S[corners[c0 + b]] if b < m else s[b - m]
            tb = T[corners[c0 + b]] if b < m else t[b - m]
            if sa > sb or (sa == sb and ta > tb):  # canonical order of the ends
                a, b = b, a
                sa, sb = sb, sa
                ta, tb = tb, ta
            s = _grow1(s, ns + 1)
            t = _grow1(t, ns + 1)
            row = _grow1(row, ns + 1)
            if bcur[k]:  # on the parent's boundary: a row, as the neighbour makes it
                z = _grow2(z, nz + 1)
                za = Zc[a] if a < m else z[row[a - m]]
                zb = Zc[b] if b < m else z[row[b - m]]
                fa = za[j] - c
                fb = zb[j] - c
                r = fa / (fa - fb)
                for kk in range(width):
                    z[nz, kk] = za[kk] + r * (zb[kk] - za[kk])
                row[ns] = nz
                nz += 1
            else:  # inside: coordinates only
                fa = _value(a, j, m, Zc, row, z, s, t, A, GS, GT) - c
                fb = _value(b, j, m, Zc, row, z, s, t, A, GS, GT) - c
                r = fa / (fa - fb)
                row[ns] = -1
            s[ns] = sa + r * (sb - sa)
            t[ns] = ta + r * (tb - ta)
            cross[k] = m + ns
            ns += 1
        ncp = nc0
        nl = nl0
        # both children first (child 0: the side >= 0), then pushed child 1 below child 0
        chs = np.empty((2, 2 * n), dtype=np.int64)
        bch = np.empty((2, 2 * n), dtype=np.uint8)
        keys = np.empty(2 * n, dtype=np.int64)
        nch = np.zeros(2, dtype=np.int64)
        lines = np.empty((2, nnl), dtype=np.int64)
        nli = np.zeros(2, dtype=np.int64)
        for h in range(2):
            sgn = 1 if h == 0 else -1
            q = 0
            for k in range(n):
                if side[k] * sgn >= 0:
                    chs[h, q] = cur[k]
                    keys[q] = 2 * k
                    q += 1
                if cross[k] >= 0:
                    chs[h, q] = cross[k]
                    keys[q] = 2 * k + 1
                    q += 1
            nch[h] = q
            for qq in range(q):
                k = keys[qq] >> 1
                nk = keys[0 if qq + 1 == q else qq + 1]
                k1 = 0 if k + 1 == n else k + 1
                same = nk == 2 * k + 1 or nk == 2 * k1
                bch[h, qq] = 1 if (same and bcur[k]) else 0
            cnt = 0
            for qq in range(nl0 + 1, nl0 + nnl):
                if _straddles(chs[h], q, lpool[qq], kind, tolz, m, Zc, row, z, s, t, A, GS, GT):
                    lines[h, cnt] = lpool[qq]
                    cnt += 1
            nli[h] = cnt
        for h in (1, 0):  # child 0 on top: cut (and emitted) first
            stack = _grow2(stack, nst + 1)
            stack[nst, 0] = ncp
            stack[nst, 1] = nch[h]
            stack[nst, 2] = nl
            stack[nst, 3] = nli[h]
            nst += 1
            cpool = _grow1(cpool, ncp + nch[h])
            bpool = _grow1(bpool, ncp + nch[h])
            cpool[ncp : ncp + nch[h]] = chs[h, : nch[h]]
            bpool[ncp : ncp + nch[h]] = bch[h, : nch[h]]
            ncp += nch[h]
            lpool = _grow1(lpool, nl + nli[h])
            lpool[nl : nl + nli[h]] = lines[h, : nli[h]]
            nl += nli[h]
    return poly_off, n_poly, poly, n_corners, s, t, ns


@nb.njit(parallel=True, cache=True)
def _plane_cut_count(S, T, maps, owner, corners, off, kind, tolz, lo, counts):
    # parents lo .. lo + counts.shape[0] - 1, row i for parent lo + i
    for i in nb.prange(counts.shape[0]):
        _, n_poly, _, n_corners, _, _, ns = _cut_parent(
            S, T, maps, owner, corners, off, kind, tolz, lo + i
        )
        counts[i, 0] = n_poly
        counts[i, 1] = n_corners
        counts[i, 2] = ns


@nb.njit(parallel=True, cache=True)
def _plane_cut_emit(
    S, T, maps, owner, corners, off, kind, tolz, lo, offsets, out_sizes, out_corners,
    out_parent, out_st,
):  # fmt: skip
    # parents lo .. lo + offsets.shape[0] - 2, offsets row r for parent lo + r
    nv = S.shape[0]
    for r in nb.prange(offsets.shape[0] - 1):
        p = lo + r
        poly_off, n_poly, poly, n_corners, s, t, ns = _cut_parent(
            S, T, maps, owner, corners, off, kind, tolz, p
        )
        m = off[p + 1] - off[p]
        q0, k0, v0 = offsets[r, 0], offsets[r, 1], offsets[r, 2]
        for q in range(n_poly):
            out_sizes[q0 + q] = poly_off[q + 1] - poly_off[q]
            out_parent[q0 + q] = p
        for k in range(n_corners):
            v = poly[k]
            out_corners[k0 + k] = corners[off[p] + v] if v < m else nv + v0 + (v - m)
        for i in range(ns):
            out_st[v0 + i, 0] = s[i]
            out_st[v0 + i, 1] = t[i]


def _check_mesh(S, T, maps, owner, corners, off, kind, tolz) -> None:
    def f64(a, nd):
        return isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == nd

    def i64(a, nd):
        return isinstance(a, np.ndarray) and a.dtype == np.int64 and a.ndim == nd

    _require(f64(S, 1) and f64(T, 1) and S.shape == T.shape, "S, T must be 1-D, equal")
    _require(i64(corners, 1) and i64(off, 1) and off.shape[0] >= 1, "corners, off: 1-D")
    n = off.shape[0] - 1
    _require(
        f64(maps, 3) and maps.shape[0] == 3 and maps.shape[1] == n,
        "maps must be (3, parents, width)",
    )
    _require(i64(owner, 1) and owner.shape == S.shape, "owner must have one per vertex")
    _require(f64(tolz, 1) and tolz.shape[0] == maps.shape[2], "tolz must have width entries")
    _require(0 <= kind < N_KINDS, "unknown activation kind")
    for a in (S, T, maps, owner, corners, off, tolz):
        _require(a.flags.c_contiguous, "arrays must be C-contiguous")
    _require(off[0] == 0 and off[-1] == corners.shape[0], "off must span corners")
    _require(bool((np.diff(off) >= 3).all()), "polygons need 3 corners")
    if corners.size:
        _require(
            int(corners.min()) >= 0 and int(corners.max()) < S.shape[0],
            "corner index out of range",
        )
    if owner.size:
        _require(int(owner.min()) >= 0 and int(owner.max()) < n, "owner index out of range")


def plane_cut_count(S, T, maps, owner, corners, off, kind, tolz, counts) -> None:
    """Per parent polygon: (polygons, corners, new vertices) of its cut (see the C++ header)."""
    _check_mesh(S, T, maps, owner, corners, off, kind, tolz)
    _require(
        isinstance(counts, np.ndarray)
        and counts.dtype == np.int64
        and counts.shape == (off.shape[0] - 1, 3)
        and counts.flags.c_contiguous,
        "counts must be (parents, 3)",
    )
    _plane_cut_count(S, T, maps, owner, corners, off, int(kind), tolz, 0, counts)


def plane_cut_emit(
    S, T, maps, owner, corners, off, kind, tolz, offsets, out_sizes, out_corners, out_parent,
    out_st,
) -> None:  # fmt: skip
    """Write the cut mesh at the parents' ``offsets`` (see the C++ header)."""
    _check_mesh(S, T, maps, owner, corners, off, kind, tolz)
    n = off.shape[0] - 1
    _require(
        isinstance(offsets, np.ndarray)
        and offsets.dtype == np.int64
        and offsets.shape == (n + 1, 3),
        "offsets must be (parents + 1, 3)",
    )
    last = offsets[-1]
    _require(
        out_sizes.shape == (last[0],) and out_parent.shape == (last[0],),
        "out_sizes, out_parent must have offsets[-1, 0] entries",
    )
    _require(out_corners.shape == (last[1],), "out_corners must have offsets[-1, 1] entries")
    _require(out_st.shape == (last[2], 2), "out_st must be (offsets[-1, 2], 2)")
    _plane_cut_emit(
        S, T, maps, owner, corners, off, int(kind), tolz, 0, offsets, out_sizes, out_corners,
        out_parent, out_st,
    )  # fmt: skip


@nb.njit(parallel=True, cache=True)
def _plane_children(maps, parent, st, kind, slope, codes, bit_offset, h, write_h):
    width = maps.shape[2]
    bpn = _bits_per_neuron(kind)
    for i in nb.prange(parent.shape[0]):
        p = parent[i]
        s = st[i, 0]
        t = st[i, 1]
        for j in range(width):
            z = (maps[0, p, j] + s * maps[1, p, j]) + t * maps[2, p, j]
            if write_h:
                d = _activation_slope(z, kind, slope)
                c = _activate(z, kind, slope) - d * z  # 0 but for saturated branches
                h[0, i, j] = d * maps[0, p, j] + c
                h[1, i, j] = d * maps[1, p, j]
                h[2, i, j] = d * maps[2, p, j]
            state = _state(z, kind)
            first = bit_offset + j * bpn
            for b in range(bpn):
                if (state >> np.uint64(b)) & np.uint64(1):
                    g = first + b
                    codes[i, g >> 6] |= np.uint64(1) << np.uint64(g & 63)


def plane_children(maps, parent, st, kind, slope, codes, bit_offset, h) -> None:
    """Per child (``parent[i]``, interior point ``st[i]``): the layer's bits into ``codes``
    and, unless ``h`` is empty, the post-activation maps (see the C++ header)."""
    _require(
        isinstance(maps, np.ndarray) and maps.dtype == np.float64 and maps.ndim == 3
        and maps.shape[0] == 3 and maps.flags.c_contiguous,
        "maps must be (3, parents, width)",
    )  # fmt: skip
    n = parent.shape[0]
    _require(parent.dtype == np.int64 and parent.ndim == 1, "parent must be 1-D")
    _require(st.dtype == np.float64 and st.shape == (n, 2), "st must be (children, 2)")
    _require(
        codes.dtype == np.uint64 and codes.ndim == 2 and codes.shape[0] == n,
        "codes must be (children, words)",
    )
    _require(0 <= kind < N_KINDS, "unknown activation kind")
    width = maps.shape[2]
    bpn = _bits_per_neuron(kind)
    _require(
        bit_offset >= 0 and bit_offset + width * bpn <= 64 * codes.shape[1],
        "pattern bits exceed codes width",
    )
    write_h = h.size > 0
    _require(
        not write_h or (h.dtype == np.float64 and h.shape == (3, n, width)),
        "h must be (3, children, width) or empty",
    )
    if n:
        _require(
            int(parent.min()) >= 0 and int(parent.max()) < maps.shape[1], "parent out of range"
        )
    for a in (parent, st, codes, h):
        _require(a.flags.c_contiguous, "arrays must be C-contiguous")
    _plane_children(maps, parent, st, int(kind), float(slope), codes, int(bit_offset), h, write_h)


def plane_cut(S, T, maps, owner, corners, off, kind, tolz, lo=0, hi=None) -> tuple:
    """The cut in one pass: ``(sizes, corners, parent, st)`` as ``plane_cut_emit`` writes
    them (here the count, then the emit; ``fastmem._core`` cuts each parent once), of the
    parents ``lo .. hi - 1`` (``hi`` None: to the last), whose new vertices are numbered
    from ``S.shape[0]``."""
    _check_mesh(S, T, maps, owner, corners, off, kind, tolz)
    n_all = off.shape[0] - 1
    hi = n_all if hi is None else int(hi)
    lo = int(lo)
    _require(0 <= lo <= hi <= n_all, "lo, hi must be a range of parents")
    n = hi - lo
    counts = np.zeros((n, 3), dtype=np.int64)
    if n:
        _plane_cut_count(S, T, maps, owner, corners, off, int(kind), tolz, lo, counts)
    offsets = np.zeros((n + 1, 3), dtype=np.int64)
    np.cumsum(counts, axis=0, out=offsets[1:])
    n_poly, n_corners, n_new = (int(x) for x in offsets[-1])
    sizes = np.empty(n_poly, dtype=np.int64)
    out_corners = np.empty(n_corners, dtype=np.int64)
    parent = np.empty(n_poly, dtype=np.int64)
    st = np.empty((n_new, 2))
    if n:
        _plane_cut_emit(
            S, T, maps, owner, corners, off, int(kind), tolz, lo, offsets, sizes, out_corners,
            parent, st,
        )  # fmt: skip
    return sizes, out_corners, parent, st


@nb.njit(parallel=True, cache=True)
def _plane_decide(L, S, T, corners, off, st, tol, top, flags):
    n_classes = L.shape[2]
    for i in nb.prange(L.shape[0]):
        s = st[i, 0]
        t = st[i, 1]
        best_c = 0
        best = (L[i, 0, 0] + s * L[i, 1, 0]) + t * L[i, 2, 0]
        for c in range(1, n_classes):
            v = (L[i, 0, c] + s * L[i, 1, c]) + t * L[i, 2, c]
            if v > best:
                best = v
                best_c = c
        constant = True
        tied_corners = 0
        for k in range(off[i], off[i + 1]):
            cs = S[corners[k]]
            ct = T[corners[k]]
            tie = False
            for c in range(n_classes):
                d0 = L[i, 0, best_c] - L[i, 0, c]
                d1 = L[i, 1, best_c] - L[i, 1, c]
                d2 = L[i, 2, best_c] - L[i, 2, c]
                g = (d0 + cs * d1) + ct * d2
                a1 = -d1 if d1 < 0 else d1
                a2 = -d2 if d2 < 0 else d2
                ag = -g if g < 0 else g
                if not (g >= 0) or (c != best_c and not tie and ag <= tol * (2 * max(a1, a2))):
                    tg = tol * math.hypot(d1, d2)
                    if not (g >= -tg):
                        constant = False
                    if c != best_c and ag <= tg:
                        tie = True
            if tie:
                tied_corners += 1
        top[i] = best_c
        flags[i] = (1 if constant else 0) | (2 if tied_corners >= 2 else 0)


def plane_decide(L, S, T, corners, off, st, tol, top, flags) -> None:
    """Per region: the top class at ``st`` and flags (bit 0: constant on the region, bit 1:
    two corners tie with another class); see ``plane_decide_region`` in the C++ header."""
    f64 = np.float64
    _require(
        isinstance(L, np.ndarray) and L.dtype == f64 and L.ndim == 3 and L.shape[1] == 3
        and L.shape[2] >= 1,
        "L must be (regions, 3, classes)",
    )  # fmt: skip
    n = L.shape[0]
    _require(
        S.dtype == f64 and T.dtype == f64 and S.ndim == 1 and S.shape == T.shape,
        "S, T must be 1-D, equal",
    )
    _require(corners.dtype == np.int64 and corners.ndim == 1, "corners must be 1-D")
    _require(off.dtype == np.int64 and off.shape == (n + 1,), "off must have regions + 1 entries")
    _require(st.dtype == f64 and st.shape == (n, 2), "st must be (regions, 2)")
    _require(
        top.dtype == np.int64 and top.shape == (n,) and flags.dtype == np.uint8
        and flags.shape == (n,),
        "top, flags must have one entry per region",
    )  # fmt: skip
    for a in (L, S, T, corners, off, st, top, flags):
        _require(a.flags.c_contiguous, "arrays must be C-contiguous")
    if n == 0:
        return
    _require(int(off[0]) >= 0 and int(off[-1]) <= corners.shape[0], "off must lie in corners")
    _require(bool((np.diff(off) >= 1).all()), "regions need corners")
    used = corners[off[0] : off[-1]]
    if used.size:
        _require(int(used.min()) >= 0 and int(used.max()) < S.shape[0], "corner index out of range")
    _plane_decide(L, S, T, corners, off, st, float(tol), top, flags)

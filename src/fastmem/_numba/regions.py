"""Segment-engine splitting kernels (see cpp/include/fastmem/regions.hpp).

``count_crossings``, ``collect_crossings``, ``emit_pieces`` and ``next_preactivations``:
the same passes, arguments and results as the C++ and CUDA kernels. ``z`` and ``vt`` are per vertex;
piece ``i`` of segment ``pseg[i]`` spans vertices ``i + pseg[i]`` and ``i + pseg[i] + 1``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .activations import (
    LEAKY_RELU,
    N_KINDS,
    THRESHOLD,
    _activate,
    _activate_k,
    _bits_per_neuron,
    _consts,
    _is_clamp,
    _n_thresholds,
    _state,
)
from .activations import _activation_slope_k as _activation_slope
from .activations import _threshold_k as _threshold
from .patterns import _require
from .search import _lower_bound

_ONE = np.uint64(1)
_SNAP_LARGEST = 1e8  # kSnapLargest of regions.hpp (fastmem._engine.LARGE_VALUES)
_SIX = np.uint64(6)
_M63 = np.uint64(63)
_SIXTY_FOUR = np.uint64(64)


@nb.njit(cache=True, error_model="numpy")
def _may_cross(zl, zh, c):
    # Superset test shared by the count and collect passes (see regions.hpp); bitwise & and
    # | (no short circuit: no branches, the loops vectorise), equal for numbers.
    return (zl != zh) & ((zl <= c) | (zh <= c)) & ((zl >= c) | (zh >= c))


@nb.njit(parallel=True, cache=True)
def _count_crossings(z, pseg, kind, counts, k):
    nt = _n_thresholds(kind)
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
    nt = _n_thresholds(kind)
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


@nb.njit(cache=True, error_model="numpy")
def _child_midpoint(buf, bp0, n_bp, c, tl, th, two):
    clo = tl if c == 0 else buf[bp0 + c - 1]
    chi = th if c == n_bp else buf[bp0 + c]
    return ((clo + (chi - clo) / two) - tl) / (th - tl)


@nb.njit(cache=True, error_model="numpy")
def _piece_index(pseg, child_offsets, i):
    # PieceIndex of regions.hpp: segment, left vertex, first child, breakpoints, whether
    # the piece ends its segment
    s = pseg[i]
    c0 = child_offsets[i]
    last = i + 1 == pseg.shape[0] or pseg[i + 1] != s
    return s, i + s, c0, child_offsets[i + 1] - c0 - 1, last


@nb.njit(cache=True, error_model="numpy")
def _list_candidates(z, v, kind, k, scratch, cand0):
    # list_candidates of regions.hpp: the neurons that may cross inside the piece
    nt = _n_thresholds(kind)
    n_cand = 0
    for j in range(z.shape[1]):
        crosses = False
        for q in range(nt):
            if _may_cross(z[v, j], z[v + 1, j], _threshold(kind, q, k)):
                crosses = True
        if crosses:
            scratch[cand0 + n_cand] = j
            n_cand += 1
    return n_cand


@nb.njit(parallel=True, cache=True)
def _emit_pieces(
    z, vt, pseg, codes, buf, offsets, child_offsets, kind, slope, bit_offset, write_values,
    out_vt, out_seg, out_codes, out_h, scratch, k,
):  # fmt: skip
    # emit_children_kind of regions.hpp: child 0 evaluates every neuron, later children
    # only the neurons that may cross (kept in scratch at 2 * offsets[i]).
    n = pseg.shape[0]
    width = z.shape[1]
    n_words = codes.shape[1]
    bpn = _bits_per_neuron(kind)
    two = k[2]
    ones = out_h.shape[1] > width  # the bias column of the next layer's GEMM
    for i in nb.prange(n):
        s, v, c0, n_bp, last = _piece_index(pseg, child_offsets, i)
        tl = vt[v]
        th = vt[v + 1]
        v0 = c0 + s
        bp0 = offsets[i]
        r = _child_midpoint(buf, bp0, n_bp, 0, tl, th, two)
        out_seg[c0] = s
        out_vt[v0] = tl
        for w in range(n_words):
            out_codes[c0, w] = codes[i, w]
        if bpn == 1:
            # 64 neurons at a time into one word (a register), ORed in at its bit offset
            # (straddling two words when the layer does not start one), as regions.hpp
            for j0 in range(0, width, 64):
                acc = np.uint64(0)
                for jj in range(min(64, width - j0)):
                    j = j0 + jj
                    zz = z[v, j] + r * (z[v + 1, j] - z[v, j])
                    acc |= _state(zz, kind) << np.uint64(jj)
                g = np.uint64(bit_offset + j0)
                sh = g & _M63
                out_codes[c0, g >> _SIX] |= acc << sh
                if sh != 0 and (acc >> (_SIXTY_FOUR - sh)) != 0:
                    out_codes[c0, (g >> _SIX) + _ONE] |= acc >> (_SIXTY_FOUR - sh)
        else:
            for j in range(width):
                state = _state(z[v, j] + r * (z[v + 1, j] - z[v, j]), kind)
                first = bit_offset + j * bpn
                for bb in range(bpn):
                    if (state >> np.uint64(bb)) & _ONE:
                        g = np.uint64(first + bb)
                        out_codes[c0, g >> _SIX] |= _ONE << (g & _M63)
        if n_bp > 0:
            # emit_children_kind's changes: each candidate's bits switch at one child at
            # most (_state_bit_switch); children copy their left neighbour's words and
            # re-evaluate only the neurons listed for them
            cand0 = 2 * bp0
            n_cand = _list_candidates(z, v, kind, k, scratch, cand0)
            ch0 = cand0 + n_cand
            n_changes = 0
            for p in range(n_cand):
                j = scratch[cand0 + p]
                zl = z[v, j]
                dz = z[v + 1, j] - zl
                at0 = _state_bit_switch(zl, dz, buf, bp0, n_bp, tl, th, kind, 0, two)
                if at0 != 0:
                    scratch[ch0 + n_changes] = at0 * width + j
                    n_changes += 1
                if bpn == 2:
                    at1 = _state_bit_switch(zl, dz, buf, bp0, n_bp, tl, th, kind, 1, two)
                    if at1 != 0 and at1 != at0:
                        scratch[ch0 + n_changes] = at1 * width + j
                        n_changes += 1
            _sort_int(scratch, ch0, n_changes)
            nxt = 0
            for c in range(1, n_bp + 1):
                o = c0 + c
                out_seg[o] = s
                out_vt[v0 + c] = buf[bp0 + c - 1]
                for w in range(n_words):
                    out_codes[o, w] = out_codes[o - 1, w]
                if nxt == n_changes or scratch[ch0 + nxt] // width != c:
                    continue
                r = _child_midpoint(buf, bp0, n_bp, c, tl, th, two)
                while nxt < n_changes and scratch[ch0 + nxt] // width == c:
                    j = scratch[ch0 + nxt] % width
                    nxt += 1
                    state = _state(z[v, j] + r * (z[v + 1, j] - z[v, j]), kind)
                    for bb in range(bpn):
                        g = np.uint64(bit_offset + j * bpn + bb)
                        word = g >> _SIX
                        bit = _ONE << (g & _M63)
                        if (state >> np.uint64(bb)) & _ONE:
                            out_codes[o, word] |= bit
                        else:
                            out_codes[o, word] &= ~bit
        if last:
            out_vt[v0 + n_bp + 1] = th
        if write_values:  # the piece's own (old) vertices, for the next layer's GEMM
            if ones:
                out_h[v, width] = k[1]
            for j in range(width):
                out_h[v, j] = _activate(z[v, j], kind, slope)
            if last:
                if ones:
                    out_h[v + 1, width] = k[1]
                for j in range(width):
                    out_h[v + 1, j] = _activate(z[v + 1, j], kind, slope)


@nb.njit(cache=True, error_model="numpy")
def _state_bit_at_child(zl, dz, buf, bp0, n_bp, c, tl, th, kind, b, two):
    z = zl + _child_midpoint(buf, bp0, n_bp, c, tl, th, two) * dz
    return (_state(z, kind) >> np.uint64(b)) & np.uint64(1)


@nb.njit(cache=True, error_model="numpy")
def _state_bit_switch(zl, dz, buf, bp0, n_bp, tl, th, kind, b, two):
    # state_bit_switch of regions.hpp
    first = _state_bit_at_child(zl, dz, buf, bp0, n_bp, 0, tl, th, kind, b, two)
    if _state_bit_at_child(zl, dz, buf, bp0, n_bp, n_bp, tl, th, kind, b, two) == first:
        return 0
    lo = 1
    hi = n_bp
    while lo < hi:
        c = lo + (hi - lo) // 2
        if _state_bit_at_child(zl, dz, buf, bp0, n_bp, c, tl, th, kind, b, two) == first:
            lo = c + 1
        else:
            hi = c
    return lo


@nb.njit(cache=True, error_model="numpy")
def _side_at_child(zl, dz, buf, bp0, n_bp, c, tl, th, thr, upper, two):
    z = zl + _child_midpoint(buf, bp0, n_bp, c, tl, th, two) * dz
    return z < thr if upper else z > thr


@nb.njit(cache=True, error_model="numpy")
def _side_switch(zl, dz, buf, bp0, n_bp, tl, th, thr, upper, two):
    first = _side_at_child(zl, dz, buf, bp0, n_bp, 0, tl, th, thr, upper, two)
    if _side_at_child(zl, dz, buf, bp0, n_bp, n_bp, tl, th, thr, upper, two) == first:
        return 0
    lo = 1
    hi = n_bp
    while lo < hi:
        c = lo + (hi - lo) // 2
        if _side_at_child(zl, dz, buf, bp0, n_bp, c, tl, th, thr, upper, two) == first:
            lo = c + 1
        else:
            hi = c
    return lo


@nb.njit(cache=True, error_model="numpy")
def _slope_step(zl, dz, buf, bp0, n_bp, c, tl, th, kind, slope, k):
    two = k[2]
    now = _activation_slope(zl + _child_midpoint(buf, bp0, n_bp, c, tl, th, two) * dz, kind,
                            slope, k)  # fmt: skip
    before = _activation_slope(
        zl + _child_midpoint(buf, bp0, n_bp, c - 1, tl, th, two) * dz, kind, slope, k
    )
    return (now - before) * dz


@nb.njit(cache=True)
def _sort_int(v, lo, n):
    # shell sort of v[lo:lo + n], the C++ kernel's gaps
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap >= 1:
        for i in range(gap, n):
            x = v[lo + i]
            q = i
            while q >= gap and v[lo + q - gap] > x:
                v[lo + q] = v[lo + q - gap]
                q -= gap
            v[lo + q] = x
        gap //= 3


@nb.njit(parallel=True, cache=True)
def _next_preactivations(
    z, vt, pseg, buf, offsets, child_offsets, kind, slope, wt, ptr, idx, val, bias, zn, scratch,
    out, kind_next, next_counts, snap_to, snap_unit, snap_w, k,
):  # fmt: skip
    # The same recurrence, in the same order, as next_preactivations_row in regions.hpp.
    n = pseg.shape[0]
    width_next = zn.shape[1]
    for i in nb.prange(n):
        s, v, c0, n_bp, last = _piece_index(pseg, child_offsets, i)
        tl = vt[v]
        th = vt[v + 1]
        v0 = c0 + s
        bp0 = offsets[i]
        for q in range(width_next):
            out[v0, q] = zn[v, q]
        if last:
            for q in range(width_next):
                out[v0 + n_bp + 1, q] = zn[v + 1, q]
        if n_bp > 0:
            _carry_to_breakpoints(
                z, v, tl, th, buf, bp0, n_bp, kind, slope, wt, ptr, idx, val, bias, zn, scratch,
                out, v0, snap_to, snap_unit, snap_w, k,
            )  # fmt: skip
        if kind_next >= 0:
            for c in range(n_bp + 1):
                next_counts[c0 + c] = _count_rows(out, v0 + c, zn, v + 1, c < n_bp, kind_next, k)


@nb.njit(cache=True, error_model="numpy")
def _count_rows(out, lo, zn, hi_old, hi_in_out, kind, k):
    # count_crossings_row between out[lo] and out[lo + 1] (or zn[hi_old])
    nt = _n_thresholds(kind)
    c = 0
    for j in range(out.shape[1]):
        zl = out[lo, j]
        zh = out[lo + 1, j] if hi_in_out else zn[hi_old, j]
        for q in range(nt):
            if _may_cross(zl, zh, _threshold(kind, q, k)):
                c += 1
    return c


@nb.njit(cache=True, error_model="numpy")
def _live_elsewhere(z, v, cand, cand0, n_cand, kind, slope, k):
    """live_elsewhere of regions.hpp: a neuron that cannot flip (not among the sorted
    candidates cand[cand0:cand0 + n_cand]) has d_j dz_j != 0 along the piece."""
    q = 0
    for j in range(z.shape[1]):
        if q < n_cand and cand[cand0 + q] == j:
            q += 1
            continue
        if _activation_slope(z[v, j], kind, slope, k) * (z[v + 1, j] - z[v, j]) != k[0]:
            return True
    return False


@nb.njit(cache=True, error_model="numpy")
def _neuron_flips(zl, zh, buf, bp0, n_bp, tl, th, kind, slope, k):
    """neuron_flips of regions.hpp: (count, child 0, step 0, child 1, step 1)."""
    two = k[2]
    dz = zh - zl
    at0 = 0
    thr = _threshold(kind, 0, k)
    if _may_cross(zl, zh, thr):
        at0 = _side_switch(zl, dz, buf, bp0, n_bp, tl, th, thr, False, two)
    at1 = 0
    if _is_clamp(kind):
        thr = _threshold(kind, 1, k)
        if _may_cross(zl, zh, thr):
            at1 = _side_switch(zl, dz, buf, bp0, n_bp, tl, th, thr, True, two)
    n, c0, s0, c1, s1 = 0, 0, k[0], 0, k[0]
    if at0 != 0:
        st = _slope_step(zl, dz, buf, bp0, n_bp, at0, tl, th, kind, slope, k)
        if st != k[0]:
            n, c0, s0 = 1, at0, st
    if at1 != 0 and at1 != at0:
        st = _slope_step(zl, dz, buf, bp0, n_bp, at1, tl, th, kind, slope, k)
        if st != k[0]:
            if n == 0:
                n, c0, s0 = 1, at1, st
            else:
                n, c1, s1 = 2, at1, st
    return n, c0, s0, c1, s1


@nb.njit(cache=True, error_model="numpy")
def _carry_band(z, v, scratch, cand0, n_cand, zn, nu, snap_w, k):
    # carry_band of regions.hpp
    pz = k[0]
    pn = k[0]
    for p in range(n_cand):
        j = scratch[cand0 + p]
        a = -z[v, j] if z[v, j] < k[0] else z[v, j]
        b = -z[v + 1, j] if z[v + 1, j] < k[0] else z[v + 1, j]
        m = a if a > b else b
        pz = m if m > pz else pz
    for q in range(zn.shape[1]):
        lo = -zn[v, q] if zn[v, q] < k[0] else zn[v, q]
        hi = -zn[v + 1, q] if zn[v + 1, q] < k[0] else zn[v + 1, q]
        m = lo + hi
        pn = m if m > pn else pn
    if not (pn <= _SNAP_LARGEST and pz <= _SNAP_LARGEST):
        return k[3]
    band = nu * (3.0 * pn + snap_w * pz)
    return band if band - band == k[0] else k[3]


@nb.njit(cache=True, error_model="numpy")
def _abs_weight(wt, ptr, idx, val, j, q):
    # Columns::abs_weight of regions.hpp
    w = 0.0
    if ptr.shape[0] > 0:
        lo = _lower_bound(idx, ptr[j], ptr[j + 1], q)
        if lo < ptr[j + 1] and idx[lo] == q:
            w = val[lo]
    else:
        w = wt[j, q]
    return -w if w < 0.0 else w


@nb.njit(cache=True, error_model="numpy")
def _snap_row(out, r, nxt, zn, z, v, scratch, flip0, n_flips, nu, ds, wt, ptr, idx, val, snap_to,
              band):  # fmt: skip
    # snap_row of regions.hpp (float64 only): prev = row r - 1, next = row nxt, or (nxt < 0)
    # zn's right vertex
    width = z.shape[1]
    for q in range(zn.shape[1]):
        d = out[r, q] - snap_to[q]
        if not (d <= band and -d <= band):
            continue
        a = 0.0
        for f in range(n_flips):
            j = scratch[flip0 + f] % width
            m = (-z[v, j] if z[v, j] < 0.0 else z[v, j]) + (
                -z[v + 1, j] if z[v + 1, j] < 0.0 else z[v + 1, j]
            )
            a += m * _abs_weight(wt, ptr, idx, val, j, q)
        e = (-zn[v, q] if zn[v, q] < 0.0 else zn[v, q]) + (
            -zn[v + 1, q] if zn[v + 1, q] < 0.0 else zn[v + 1, q]
        )
        own = nu * (3.0 * e + 4.0 * ds * a)
        if not (d <= own and -d <= own):
            continue
        dp = out[r - 1, q] - snap_to[q]
        dn = (out[nxt, q] if nxt >= 0 else zn[v + 1, q]) - snap_to[q]
        if (dp <= own and -dp <= own) or (dn <= own and -dn <= own):
            out[r, q] = snap_to[q]


@nb.njit(cache=True)
def _carry_to_breakpoints(
    z, v, tl, th, buf, bp0, n_bp, kind, slope, wt, ptr, idx, val, bias, zn, scratch, out, v0,
    snap_to, snap_unit, snap_w, k,
):  # fmt: skip
    # carry_to_breakpoints of regions.hpp: out rows v0 + 1 .. v0 + n_bp; the next layer's
    # columns dense (wt) or, with ptr not empty, sparse (regions.hpp's Columns)
    width = z.shape[1]
    width_next = zn.shape[1]
    sparse = ptr.shape[0] > 0
    two = k[2]
    span = th - tl
    cand0 = 2 * bp0
    n_cand = _list_candidates(z, v, kind, k, scratch, cand0)
    live_elsewhere = _live_elsewhere(z, v, scratch, cand0, n_cand, kind, slope, k)
    flip0 = cand0 + n_cand
    n_flips = 0
    gr = v0 + n_bp  # the running slope lives in the last breakpoint's row
    for q in range(width_next):
        out[gr, q] = zn[v + 1, q] - zn[v, q]
    for p in range(n_cand):
        j = scratch[cand0 + p]
        # only thresholds counted by the count pass: at most that many flips fit scratch
        nf, ca, sa, cb, sb = _neuron_flips(
            z[v, j], z[v + 1, j], buf, bp0, n_bp, tl, th, kind, slope, k
        )
        for e in range(nf):
            c = ca if e == 0 else cb
            step = sa if e == 0 else sb
            scratch[flip0 + n_flips] = c * width + j
            n_flips += 1
            f = (k[1] - (buf[bp0 + c - 1] - tl) / span) * step
            if sparse:
                for e2 in range(ptr[j], ptr[j + 1]):
                    out[gr, idx[e2]] -= f * val[e2]
            else:
                for q in range(width_next):
                    out[gr, q] -= f * wt[j, q]
    _sort_int(scratch, flip0, n_flips)
    # the snap of row c - 1 once row c is computed from it (regions.hpp)
    band = k[3]
    nu = k[0]
    ds = k[1]
    if snap_to.shape[0] > 0:
        nu = snap_unit * 8.0 * math.sqrt(2 * n_flips + n_bp + 4)
        band = _carry_band(z, v, scratch, cand0, n_cand, zn, nu, snap_w, k)
        if kind == LEAKY_RELU:
            ds = 1.0 - slope if 1.0 - slope > 1.0 else (slope - 1.0 if slope - 1.0 > 1.0 else 1.0)
    r_prev = k[0]
    nf = 0
    near_prev = False
    for c in range(1, n_bp + 1):
        r = (buf[bp0 + c - 1] - tl) / span
        dr = r - r_prev
        near = False  # the screen of row c, in the same pass
        if band >= k[0]:
            for q in range(width_next):
                out[v0 + c, q] = out[v0 + c - 1, q] + dr * out[gr, q]
                d = out[v0 + c, q] - snap_to[q]
                near |= (d <= band) & (-d <= band)
        else:
            for q in range(width_next):
                out[v0 + c, q] = out[v0 + c - 1, q] + dr * out[gr, q]
        if near_prev:
            _snap_row(out, v0 + c - 1, v0 + c, zn, z, v, scratch, flip0, n_flips, nu, ds, wt,
                      ptr, idx, val, snap_to, band)  # fmt: skip
        near_prev = near
        r_prev = r
        if c == n_bp:
            break
        while nf < n_flips and scratch[flip0 + nf] // width == c:
            j = scratch[flip0 + nf] % width
            zl = z[v, j]
            f = _slope_step(zl, z[v + 1, j] - zl, buf, bp0, n_bp, c, tl, th, kind, slope, k)
            if sparse:
                for e2 in range(ptr[j], ptr[j + 1]):
                    out[gr, idx[e2]] += f * val[e2]
            else:
                for q in range(width_next):
                    out[gr, q] += f * wt[j, q]
            nf += 1
    if near_prev:  # the last breakpoint: its next vertex is the piece's right one
        _snap_row(out, v0 + n_bp, -1, zn, z, v, scratch, flip0, n_flips, nu, ds, wt, ptr, idx,
                  val, snap_to, band)  # fmt: skip
    if live_elsewhere:
        return
    for c in range(n_bp + 1):
        mid = _child_midpoint(buf, bp0, n_bp, c, tl, th, two)
        flat = True
        for p in range(n_cand):
            j = scratch[cand0 + p]
            dz = z[v + 1, j] - z[v, j]
            if _activation_slope(z[v, j] + mid * dz, kind, slope, k) * dz != k[0]:
                flat = False
                break
        if not flat:
            continue
        if c == 0:
            for q in range(width_next):
                out[v0 + 1, q] = zn[v, q]
        elif c == n_bp:
            for q in range(width_next):
                out[v0 + c, q] = zn[v + 1, q]
        else:
            for q in range(width_next):
                out[v0 + c, q] = bias[q] if sparse else wt[width, q]
            for j in range(width):
                h = _activate_k(z[v, j] + mid * (z[v + 1, j] - z[v, j]), kind, slope, k)
                if h == k[0]:
                    continue
                if sparse:
                    for e2 in range(ptr[j], ptr[j + 1]):
                        out[v0 + c, idx[e2]] += h * val[e2]
                else:
                    for q in range(width_next):
                        out[v0 + c, q] += h * wt[j, q]
            for q in range(width_next):
                out[v0 + c + 1, q] = out[v0 + c, q]


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
    _require(0 <= kind < N_KINDS, "unknown activation kind")


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
    write_values: bool, out_vt, out_seg, out_codes, out_h, scratch,
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
    bpn = _bits_per_neuron(kind)
    _require(
        bit_offset >= 0 and bit_offset + width * bpn <= 64 * n_words,
        "pattern bits exceed codes width",
    )
    if write_values:
        _require(
            isinstance(out_h, np.ndarray) and out_h.dtype == z.dtype
            and out_h.shape[0] == nv and out_h.shape[1] in (width, width + 1)
            and out_h.flags.c_contiguous,
            "out_h must be (vertices, width) or (vertices, width + 1)",
        )  # fmt: skip
    else:
        out_h = np.empty((0, width), dtype=z.dtype)
    _check_1d(scratch, np.int64, None, "scratch must be 1-D int64")
    _require(2 * offsets[n] <= scratch.shape[0], "scratch is smaller than 2 * offsets[-1]")
    _emit_pieces(
        z, vt, pseg, codes, buf, offsets, child_offsets, int(kind), z.dtype.type(slope),
        int(bit_offset), bool(write_values), out_vt, out_seg, out_codes, out_h, scratch,
        _consts(z.dtype),
    )  # fmt: skip


def _check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind, scratch):
    """The checks of the passes over a layer's pieces and their breakpoints; (n, nv)."""
    _check_vertices(z, pseg)
    _check_kind(kind)
    n = pseg.shape[0]
    nv = z.shape[0]
    _check_1d(vt, z.dtype, nv, "vt must have one entry per vertex")
    _check_1d(offsets, np.int64, n + 1, "offsets must have n + 1 entries")
    _check_1d(child_offsets, np.int64, n + 1, "child_offsets must have n + 1 entries")
    _check_1d(buf, z.dtype, None, "buf must be 1-D with z's dtype")
    _require(offsets[n] <= buf.shape[0], "buf is smaller than offsets[-1]")
    if scratch is not None:
        _check_1d(scratch, np.int64, None, "scratch must be 1-D int64")
        _require(2 * offsets[n] <= scratch.shape[0], "scratch is smaller than 2 * offsets[-1]")
    return n, nv


def _check_next(z, vt, pseg, buf, offsets, child_offsets, kind, width_next, zn, scratch, out,
                kind_next, next_counts):  # fmt: skip
    """The checks the dense and the sparse next_preactivations share; next_counts back."""
    n, nv = _check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind, scratch)
    _matrix(z, zn, nv, width_next, "zn must be (vertices, width_next)")
    nv_out = int(child_offsets[n]) + (nv - n)
    _matrix(z, out, nv_out, width_next, "out must be (child_offsets[-1] + segments, width_next)")
    _require(-1 <= kind_next < N_KINDS, "unknown kind_next")
    if kind_next >= 0:
        _check_1d(next_counts, np.int64, int(child_offsets[n]), "next_counts: one per child")
        return next_counts
    return np.empty(0, dtype=np.int64)


def _matrix(z, a, rows, cols, what):
    _require(
        isinstance(a, np.ndarray) and a.dtype == z.dtype and a.ndim == 2
        and (rows is None or a.shape[0] == rows) and (cols is None or a.shape[1] == cols)
        and a.flags.c_contiguous,
        what,
    )  # fmt: skip


def _snap_args(z, snap_to, width_next, snap_unit, snap_w):
    """The checked snap arguments of next_preactivations(_sparse) (regions.hpp's Columns):
    snap_to (width_next,) or None (an empty array), snap_unit and snap_w in z's dtype."""
    _require(
        math.isfinite(snap_unit) and snap_unit >= 0 and math.isfinite(snap_w) and snap_w >= 0,
        "snap_unit and snap_w must be finite and >= 0",
    )
    if snap_to is None:
        snap_to = np.empty(0, dtype=z.dtype)
    else:
        _require(z.dtype == np.float64, "snap_to: float64 only")
        _check_1d(snap_to, z.dtype, width_next, "snap_to must be 1-D (width_next,)")
    return snap_to, z.dtype.type(snap_unit), z.dtype.type(snap_w)


def next_preactivations(
    z, vt, pseg, buf, offsets, child_offsets, kind: int, slope: float, wt, zn, scratch, out,
    kind_next: int, next_counts, snap_to=None, snap_unit: float = 0.0, snap_w: float = 0.0,
) -> None:  # fmt: skip
    """The next layer's pre-activations at the new vertices, from those at the old
    (regions.hpp); snap_to, snap_unit, snap_w: the snap of the carried values (Columns)."""
    _check_vertices(z, pseg)
    _matrix(z, wt, z.shape[1] + 1, None, "wt must be (width + 1, width_next)")
    next_counts = _check_next(
        z, vt, pseg, buf, offsets, child_offsets, kind, wt.shape[1], zn, scratch, out,
        kind_next, next_counts,
    )  # fmt: skip
    snap = _snap_args(z, snap_to, wt.shape[1], snap_unit, snap_w)
    none = np.empty(0, dtype=np.int64)
    _next_preactivations(
        z, vt, pseg, buf, offsets, child_offsets, int(kind), z.dtype.type(slope), wt, none,
        none, np.empty(0, dtype=z.dtype), np.empty(0, dtype=z.dtype), zn, scratch, out,
        int(kind_next), next_counts, *snap, _consts(z.dtype),
    )  # fmt: skip


def next_preactivations_sparse(
    z, vt, pseg, buf, offsets, child_offsets, kind: int, slope: float, col_ptr, col_idx,
    col_val, bias, zn, scratch, out, kind_next: int, next_counts, snap_to=None,
    snap_unit: float = 0.0, snap_w: float = 0.0,
) -> None:  # fmt: skip
    """next_preactivations with the next layer's linear part sparse by columns (column j's
    nonzeros at col_idx[col_ptr[j]:col_ptr[j + 1]], distinct, values col_val), its bias
    apart (regions.hpp's Columns)."""
    _check_vertices(z, pseg)
    width = z.shape[1]
    _check_1d(col_ptr, np.int64, width + 1, "col_ptr must have width + 1 entries")
    _check_1d(bias, z.dtype, None, "bias must be 1-D (width_next,)")
    width_next = bias.shape[0]
    _check_1d(col_idx, np.int64, None, "col_idx and col_val must be 1-D of one length")
    _check_1d(col_val, z.dtype, col_idx.shape[0], "col_idx and col_val must be 1-D of one length")
    _require(
        col_ptr[0] == 0 and col_ptr[width] <= col_idx.shape[0],
        "col_ptr must start at 0 and end within col_idx",
    )
    _require(bool((np.diff(col_ptr) >= 0).all()), "col_ptr must not decrease")
    used = col_idx[: col_ptr[width]]
    _require(
        used.shape[0] == 0 or (int(used.min()) >= 0 and int(used.max()) < width_next),
        "col_idx must lie in [0, width_next)",
    )
    next_counts = _check_next(
        z, vt, pseg, buf, offsets, child_offsets, kind, width_next, zn, scratch, out,
        kind_next, next_counts,
    )  # fmt: skip
    snap = _snap_args(z, snap_to, width_next, snap_unit, snap_w)
    _next_preactivations(
        z, vt, pseg, buf, offsets, child_offsets, int(kind), z.dtype.type(slope),
        np.empty((0, 0), dtype=z.dtype), col_ptr, col_idx, col_val, bias, zn, scratch, out,
        int(kind_next), next_counts, *snap, _consts(z.dtype),
    )  # fmt: skip


# ---------------------------------------------------------------- the chained pass
# breakpoint_causes_row / chain_segment of regions.hpp: the same operations in the same
# order (bit for bit the C++ kernels' values).


@nb.njit(cache=True, error_model="numpy")
def _causes_piece(z, v, tl, th, buf, bp0, n_bp, kind, slope, scratch, cand0, out, out_val, o0, k):
    for c in range(n_bp):
        out[o0 + c] = -2
        out_val[o0 + c] = k[0]
    if n_bp == 0:
        return
    n_cand = _list_candidates(z, v, kind, k, scratch, cand0)
    for p in range(n_cand):
        j = scratch[cand0 + p]
        nf, ca, sa, cb, sb = _neuron_flips(
            z[v, j], z[v + 1, j], buf, bp0, n_bp, tl, th, kind, slope, k
        )
        for e in range(nf):
            c = ca if e == 0 else cb
            step = sa if e == 0 else sb
            out[o0 + c - 1] = j if out[o0 + c - 1] == -2 else -1
            out_val[o0 + c - 1] = step / (th - tl)


@nb.njit(parallel=True, cache=True)
def _breakpoint_causes(z, vt, pseg, buf, offsets, child_offsets, kind, slope, scratch, out,
                       out_val, k):  # fmt: skip
    for i in nb.prange(pseg.shape[0]):
        s, v, c0, n_bp, last = _piece_index(pseg, child_offsets, i)
        v0 = c0 + s
        out[v0] = -1
        out_val[v0] = k[0]
        if last:
            out[v0 + n_bp + 1] = -1
            out_val[v0 + n_bp + 1] = k[0]
        _causes_piece(
            z, v, vt[v], vt[v + 1], buf, offsets[i], n_bp, kind, slope, scratch, 2 * offsets[i],
            out, out_val, v0 + 1, k,
        )  # fmt: skip


@nb.njit(cache=True, error_model="numpy")
def _chain_direct_value(z, v, kind, slope, wt, zn, k):
    width = z.shape[1]
    for q in range(zn.shape[1]):
        zn[v, q] = wt[width, q]
    for j in range(width):
        h = _activate_k(z[v, j], kind, slope, k)
        if h != k[0]:
            for q in range(zn.shape[1]):
                zn[v, q] += h * wt[j, q]


@nb.njit(cache=True, error_model="numpy")
def _chain_direct_slope(z, v, tl, th, buf, bp0, n_bp, kind, slope, wt, gu, k):
    mid = _child_midpoint(buf, bp0, n_bp, 0, tl, th, k[2])
    for q in range(gu.shape[0]):
        gu[q] = k[0]
    for j in range(z.shape[1]):
        dz = z[v + 1, j] - z[v, j]
        f = _activation_slope(z[v, j] + mid * dz, kind, slope, k) * dz
        if f != k[0]:
            for q in range(gu.shape[0]):
                gu[q] += f * wt[j, q]
    span = th - tl
    for q in range(gu.shape[0]):
        gu[q] /= span


@nb.njit(cache=True, error_model="numpy")
def _chain_segment(
    z, vt, s, i0, i1, buf, offsets, child_offsets, kind, slope, wt, cause, cause_val, rf_ptr,
    rf_idx, rf_val, period, cand, mark, gu, zn, k,
):  # fmt: skip
    width = z.shape[1]
    wn = zn.shape[1]
    zero, one, two = k[0], k[1], k[2]
    _chain_direct_value(z, i0 + s, kind, slope, wt, zn, k)
    direct = True
    cur0, nxt0 = 0, width  # this piece's candidates in cand, and the next one's
    n_cached = -1
    amp, acc = zero, zero
    for i in range(i0, i1):
        v = i + s
        tl = vt[v]
        th = vt[v + 1]
        span = th - tl
        bp0 = offsets[i]
        n_bp = child_offsets[i + 1] - child_offsets[i] - 1
        if direct:
            _chain_direct_slope(z, v, tl, th, buf, bp0, n_bp, kind, slope, wt, gu, k)
            amp = one / span
            acc = zero
        for q in range(wn):
            g0 = gu[q] * span
            zn[v + 1, q] = zn[v, q] + g0
            gu[q] = g0
        n_cand = n_cached if n_cached >= 0 else _list_candidates(z, v, kind, k, cand, cur0)
        n_cached = -1
        live_elsewhere = _live_elsewhere(z, v, cand, cur0, n_cand, kind, slope, k)
        if n_bp > 0:
            for p in range(n_cand):
                j = cand[cur0 + p]
                nf, ca, sa, cb, sb = _neuron_flips(
                    z[v, j], z[v + 1, j], buf, bp0, n_bp, tl, th, kind, slope, k
                )
                for e in range(nf):
                    c = ca if e == 0 else cb
                    step = sa if e == 0 else sb
                    f = (one - (buf[bp0 + c - 1] - tl) / span) * step
                    for q in range(wn):
                        zn[v + 1, q] += f * wt[j, q]
                    for q in range(wn):
                        gu[q] += step * wt[j, q]
                    amp += one / span
        for q in range(wn):
            gu[q] /= span
        acc += amp * span
        if i + 1 == i1:
            break
        cv = cause[v + 1]
        direct = (not live_elsewhere) or cv == -1 or acc > period
        if direct:
            _chain_direct_value(z, v + 1, kind, slope, wt, zn, k)
            continue
        th2 = vt[v + 2]
        span2 = th2 - th
        bp02 = offsets[i + 1]
        n_bp2 = child_offsets[i + 2] - child_offsets[i + 1] - 1
        mid_l = _child_midpoint(buf, bp0, n_bp, n_bp, tl, th, two)
        mid_r = _child_midpoint(buf, bp02, n_bp2, 0, th, th2, two)
        n_cand2 = _list_candidates(z, v + 1, kind, k, cand, nxt0)
        r0 = rf_ptr[cv] if cv >= 0 else 0
        r1 = rf_ptr[cv + 1] if cv >= 0 else 0
        step = cause_val[v + 1]
        left_longer = span >= span2
        for q in range(r0, r1):
            j = rf_idx[q]
            mark[j] = 1
            dz = z[v + 1, j] - z[v, j]
            dz2 = z[v + 2, j] - z[v + 1, j]
            a_l = _activation_slope(z[v, j] + mid_l * dz, kind, slope, k)
            a_r = _activation_slope(z[v + 1, j] + mid_r * dz2, kind, slope, k)
            d = a_l * (rf_val[q] * step)
            if a_l != a_r:
                change = rf_val[q] * step
                s_l = dz / span if left_longer else dz2 / span2 - change
                s_r = dz / span + change if left_longer else dz2 / span2
                d = a_r * s_r - a_l * s_l
                amp += one / (span if left_longer else span2)
            if d != zero:
                for qq in range(wn):
                    gu[qq] += d * wt[j, qq]
        for q in range(n_cand + n_cand2):
            j = cand[cur0 + q] if q < n_cand else cand[nxt0 + q - n_cand]
            if mark[j]:
                continue
            mark[j] = 1
            dz = z[v + 1, j] - z[v, j]
            dz2 = z[v + 2, j] - z[v + 1, j]
            a_l = _activation_slope(z[v, j] + mid_l * dz, kind, slope, k)
            a_r = _activation_slope(z[v + 1, j] + mid_r * dz2, kind, slope, k)
            if a_l == a_r:
                continue
            d = (a_r - a_l) * (dz / span if left_longer else dz2 / span2)
            amp += one / (span if left_longer else span2)
            if d != zero:
                for qq in range(wn):
                    gu[qq] += d * wt[j, qq]
        for q in range(r0, r1):
            mark[rf_idx[q]] = 0
        for q in range(n_cand):
            mark[cand[cur0 + q]] = 0
        for q in range(n_cand2):
            mark[cand[nxt0 + q]] = 0
        cur0, nxt0 = nxt0, cur0
        n_cached = n_cand2


@nb.njit(parallel=True, cache=True)
def _chain_values(z, vt, pseg, seg_pieces, buf, offsets, child_offsets, kind, slope, wt, cause,
                  cause_val, rf_ptr, rf_idx, rf_val, period, zn, k):  # fmt: skip
    width = z.shape[1]
    for g in nb.prange(seg_pieces.shape[0] - 1):
        cand = np.empty(2 * width, dtype=np.int64)
        mark = np.zeros(width, dtype=np.uint8)
        gu = np.empty(zn.shape[1], dtype=z.dtype)
        i0 = seg_pieces[g]
        _chain_segment(
            z, vt, pseg[i0], i0, seg_pieces[g + 1], buf, offsets, child_offsets, kind, slope, wt,
            cause, cause_val, rf_ptr, rf_idx, rf_val, period, cand, mark, gu, zn, k,
        )  # fmt: skip


def breakpoint_causes(z, vt, pseg, buf, offsets, child_offsets, kind: int, slope: float, scratch,
                      out, out_val) -> None:  # fmt: skip
    """Per vertex of the new layout: -1 at the old vertices; at a breakpoint the one
    neuron whose slope changes there (-2: none, -1: several) and into ``out_val`` that
    slope's change per unit t (regions.hpp's breakpoint_causes_row)."""
    n, nv = _check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind, scratch)
    nv_out = int(child_offsets[n]) + (nv - n)
    _check_1d(out, np.int64, nv_out, "out must have child_offsets[-1] + segments entries")
    _check_1d(out_val, z.dtype, nv_out, "out_val must have one entry per entry of out")
    _breakpoint_causes(
        z, vt, pseg, buf, offsets, child_offsets, int(kind), z.dtype.type(slope), scratch, out,
        out_val, _consts(z.dtype),
    )  # fmt: skip


def chain_values(
    z, vt, pseg, seg_pieces, buf, offsets, child_offsets, kind: int, slope: float, wt, cause,
    cause_val, rf_ptr, rf_idx, rf_val, period: int, zn,
) -> None:  # fmt: skip
    """The dense layer after the activation at every old vertex, one segment at a time
    along its vertices (regions.hpp's chain_segment)."""
    n, nv = _check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind, None)
    _require(kind != THRESHOLD, "the chained pass needs a piecewise linear activation")
    width = z.shape[1]
    _matrix(z, wt, width + 1, None, "wt must be (width + 1, width_next)")
    _matrix(z, zn, nv, wt.shape[1], "zn must be (vertices, width_next)")
    _check_1d(cause, np.int64, nv, "cause must have one entry per vertex")
    _check_1d(cause_val, z.dtype, nv, "cause_val must have one entry per vertex")
    _require(int(period) >= 1, "period must be positive")
    n_seg = nv - n
    _check_1d(seg_pieces, np.int64, n_seg + 1, "seg_pieces must have segments + 1 entries")
    _require(seg_pieces[0] == 0 and seg_pieces[n_seg] == n, "seg_pieces must run from 0 to n")
    _require(bool((np.diff(seg_pieces) > 0).all()), "seg_pieces must increase")
    _require(
        bool((pseg[seg_pieces[:-1]] == np.arange(n_seg)).all())
        and bool((pseg[seg_pieces[1:] - 1] == np.arange(n_seg)).all()),
        "seg_pieces does not match pseg",
    )
    _check_1d(rf_ptr, np.int64, None, "rf_ptr must be 1-D int64")
    _check_1d(rf_idx, np.int64, None, "rf_ptr, rf_idx and rf_val must be 1-D")
    _check_1d(rf_val, z.dtype, rf_idx.shape[0], "rf_idx and rf_val must have one length")
    n_rf = rf_ptr.shape[0] - 1
    _require(n_rf >= 0 and rf_ptr[0] == 0 and rf_ptr[n_rf] <= rf_idx.shape[0],
             "rf_ptr must start at 0, end in rf_idx")  # fmt: skip
    _require(bool((np.diff(rf_ptr) >= 0).all()), "rf_ptr must not decrease")
    used = rf_idx[: rf_ptr[n_rf]]
    _require(used.shape[0] == 0 or (int(used.min()) >= 0 and int(used.max()) < width),
             "rf_idx must lie in [0, width)")  # fmt: skip
    _require(cause.shape[0] == 0 or (int(cause.min()) >= -2 and int(cause.max()) < n_rf),
             "cause must lie in [-2, len(rf_ptr) - 1)")  # fmt: skip
    _chain_values(
        z, vt, pseg, seg_pieces, buf, offsets, child_offsets, int(kind), z.dtype.type(slope), wt,
        cause, cause_val, rf_ptr, rf_idx, rf_val, z.dtype.type(period), zn, _consts(z.dtype),
    )  # fmt: skip

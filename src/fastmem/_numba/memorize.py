"""Memorize kernels (see cpp/include/fastmem/memorize.hpp): same names, arguments, bits."""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic

from .search import _lower_bound

_SIX = np.uint64(6)
_M63 = np.uint64(63)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_INT64_MAX = np.int64(9223372036854775807)


@intrinsic
def _ctpop(typingctx, x):
    """LLVM's ctpop on a uint64: the popcnt instruction on the host CPU."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@nb.njit(cache=True, error_model="numpy")
def _popcount(x):
    # The SWAR version ((x * 0x0101...) >> 56) ran at ~200 ns per word inside
    # _threshold_votes (1000 x 5 x 8 words: 8 ms against 11 us with ctpop, 2026-11-23).
    return np.int64(_ctpop(x))


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


@nb.njit(cache=True, error_model="numpy")
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@nb.njit(cache=True, error_model="numpy")
def _split(a):
    t = 134217729.0 * a
    hi = t - (t - a)
    return hi, a - hi


@nb.njit(cache=True, error_model="numpy")
def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, (((ah * bh - p) + ah * bl) + al * bh) + al * bl


@nb.njit(cache=True, error_model="numpy")
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
        lo = _lower_bound(b, 0, n, ti)
        p1, e1 = _two_prod(ti, prefix[lo, 0])
        p2, e2 = _two_prod(ti, prefix[lo, 1])
        h, low = _dd_add_d(p1, 0.0, e1)
        h, low = _dd_add_d(h, low, p2)
        h, low = _dd_add_d(h, low, e2)
        h, low = _dd_add_d(h, low, -prefix[lo, 2])
        h, low = _dd_add_d(h, low, -prefix[lo, 3])
        out[i] = h + low


@nb.njit(cache=True, error_model="numpy")
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
    # messages are formatted only on failure: the checks run once per draw of the
    # randomized layer, where formatting them cost ~15 us a call
    if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim):
        _require(False, f"{name} must be a {ndim}-D {np.dtype(dtype).name} ndarray")
    if not a.flags.c_contiguous:
        _require(False, f"{name} must be C-contiguous")


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


# ------------------------------------------------- randomized second layer
RULE_CODE = 0
RULE_HALF = 1


@nb.njit(cache=True, error_model="numpy")
def _covers(count, m, rule):
    return count < m if rule == 0 else 2 * count <= m


# Sequential below 2^20 words / per GEMM block, as the C++ drivers (a parallel region per
# call costs more than it saves on a loaded machine).
_PARALLEL_WORDS = 1 << 20


@nb.njit(cache=True, nogil=True)  # nogil: random_threshold packs row blocks on threads
def _threshold_pack(z, b, codes):
    rows, width = z.shape
    words = codes.shape[1]
    full = width // 64
    for r in range(rows):
        # full words: a fixed 64-step branch-free loop that LLVM vectorises (10x the
        # per-bit `if` version, 2026-11-23)
        for w in range(full):
            lo = w * 64
            word = np.uint64(0)
            for jj in range(64):
                word |= np.uint64(z[r, lo + jj] + b[lo + jj] >= 0.0) << np.uint64(jj)
            codes[r, w] = word
        if full < words:
            lo = full * 64
            word = np.uint64(0)
            for j in range(lo, width):
                word |= np.uint64(z[r, j] + b[j] >= 0.0) << np.uint64(j - lo)
            codes[r, full] = word


def _margin_impl(neg, row, pos):
    words = neg.shape[1]
    n_pos = pos.shape[0]
    n_chunks = min(n_pos, 64)
    best = np.full(n_chunks, _INT64_MAX)
    for c in nb.prange(n_chunks):
        lo = c * n_pos // n_chunks
        hi = (c + 1) * n_pos // n_chunks
        m = _INT64_MAX
        for s in range(lo, hi):
            v = _separating(neg, row, pos, s, words)
            if v < m:
                m = v
        best[c] = m
    return best.min()


def _cover_counts_impl(neg, row, alive, n, counts):
    words = neg.shape[1]
    for j in nb.prange(n):
        counts[j] = _separating(neg, row, neg, alive[j], words)


@nb.njit(cache=True)
def _cover_step_seq(neg, row, pos, rule, alive, n, counts, state):
    """The whole step on one thread, in one call (small problems: per-call cost)."""
    words = neg.shape[1]
    m = _INT64_MAX
    for s in range(pos.shape[0]):
        v = _separating(neg, row, pos, s, words)
        if v < m:
            m = v
    state[1] = m
    if m <= 0:
        return
    kept = 0
    for j in range(n):
        c = _separating(neg, row, neg, alive[j], words)
        counts[j] = c
        if not _covers(c, m, rule):
            alive[kept] = alive[j]
            kept += 1
    state[0] = kept


_margin_par = nb.njit(parallel=True, cache=True)(_margin_impl)
_margin_seq = nb.njit(cache=True)(_margin_impl)
_cover_counts_par = nb.njit(parallel=True, cache=True)(_cover_counts_impl)
_cover_counts_seq = nb.njit(cache=True)(_cover_counts_impl)


@nb.njit(cache=True)
def _compact(alive, n, counts, m, rule):
    kept = 0
    for j in range(n):
        if not _covers(counts[j], m, rule):
            alive[kept] = alive[j]
            kept += 1
    return kept


@nb.njit(cache=True, error_model="numpy")
def _separating_prefix(neg, i, pos, s, width):
    full = width // 64
    c = 0
    for w in range(full):
        c += _popcount((neg[i, w] ^ _ALL) & pos[s, w])
    rest = width - 64 * full
    if rest:
        mask = (_ONE << np.uint64(rest)) - _ONE
        c += _popcount((neg[i, full] ^ _ALL) & pos[s, full] & mask)
    return c


@nb.njit(parallel=True, cache=True)
def _cover_walks(codes, n_neg, sets, widths, orders, rule, flags, uncovered):
    n_pos = codes.shape[1] - n_neg
    for c in nb.prange(widths.shape[0]):
        neg = codes[sets[c], :n_neg]
        pos = codes[sets[c], n_neg:]
        width = widths[c]
        state = flags[c]
        for i in range(n_neg):
            state[i] = 0
        covered = 0
        hint = 0
        for t in range(n_neg):
            if covered >= n_neg:
                break
            i = orders[c, t]
            if i < 0 or i >= n_neg or state[i] != 0:
                continue
            state[i] = 1
            # the positive point that last gave m = 0 first (as the C++ header)
            m = _separating_prefix(neg, i, pos, hint, width)
            for s in range(n_pos):
                if m <= 0:
                    break
                v = _separating_prefix(neg, i, pos, s, width)
                if v < m:
                    m = v
                if v == 0:
                    hint = s
            if m <= 0:
                continue
            for j in range(n_neg):
                if state[j] == 2:
                    continue
                if _covers(_separating_prefix(neg, i, neg, j, width), m, rule):
                    state[j] = 2
                    covered += 1
        uncovered[c] = n_neg - covered


def _threshold_votes_impl(codes, units, bias, owner, votes):
    rows, words = codes.shape
    k = units.shape[0]
    for r in nb.prange(rows):
        for c in range(votes.shape[1]):
            votes[r, c] = 0
        for q in range(k):
            cnt = 0
            for w in range(words):
                cnt += _popcount(codes[r, w] & units[q, w])
            if bias[q] - float(cnt) >= 0.0:
                votes[r, owner[q]] += 1


_threshold_votes_par = nb.njit(parallel=True, cache=True)(_threshold_votes_impl)
_threshold_votes_seq = nb.njit(cache=True)(_threshold_votes_impl)


def threshold_pack(z: np.ndarray, b: np.ndarray, codes: np.ndarray) -> None:
    """Bit ``j`` of ``codes[r]`` (word ``j // 64``) = ``z[r, j] + b[j] >= 0``; padding bits 0."""
    _check(z, "z", np.float64, 2)
    _check(b, "b", np.float64, 1)
    _check(codes, "codes", np.uint64, 2)
    _require(b.shape[0] == z.shape[1], "b must have one entry per column of z")
    _require(codes.shape[0] == z.shape[0], "z and codes must have the same number of rows")
    _require(codes.shape[1] == (z.shape[1] + 63) // 64, "codes must have ceil(width / 64) words")
    _threshold_pack(z, b, codes)


def cover_step(
    neg: np.ndarray,
    pos: np.ndarray,
    row: int,
    rule: int,
    alive: np.ndarray,
    counts: np.ndarray,
    state: np.ndarray,
) -> None:
    """One draw of the randomized layer: ``state[1] = m = min_s popcount(~neg[row] & pos[s])``;
    if ``m > 0``, ``counts[j] = popcount(~neg[row] & neg[alive[j]])`` for ``j < state[0]`` and
    the covered entries leave ``alive[:state[0]]`` (order kept, ``state[0]`` updated)."""
    _check(neg, "neg", np.uint64, 2)
    _check(pos, "pos", np.uint64, 2)
    for a, name in ((alive, "alive"), (counts, "counts"), (state, "state")):
        _check(a, name, np.int64, 1)
    _require(neg.shape[1] == pos.shape[1], "neg and pos must have the same number of words")
    _require(pos.shape[0] >= 1, "pos must have at least one row")
    _require(0 <= row < neg.shape[0], "row must index a row of neg")
    _require(rule in (RULE_CODE, RULE_HALF), "rule must be 0 (code) or 1 (half)")
    _require(
        alive.shape[0] == neg.shape[0] and counts.shape[0] == neg.shape[0],
        "alive and counts must have one entry per row of neg",
    )
    _require(state.shape[0] == 2, "state must have 2 entries")
    n = int(state[0])
    _require(0 <= n <= neg.shape[0], "state[0] must be in [0, rows of neg]")
    if n:
        live = alive[:n]
        _require(
            int(live.min()) >= 0 and int(live.max()) < neg.shape[0],
            "alive must hold row indices of neg",
        )
    words = neg.shape[1]
    if max(pos.shape[0], n) * words <= _PARALLEL_WORDS:
        _cover_step_seq(neg, int(row), pos, int(rule), alive, n, counts, state)
        return
    margin = _margin_par if pos.shape[0] * words > _PARALLEL_WORDS else _margin_seq
    m = margin(neg, int(row), pos)
    state[1] = m
    if m <= 0:
        return
    count = _cover_counts_par if n * words > _PARALLEL_WORDS else _cover_counts_seq
    count(neg, int(row), alive, n, counts)
    state[0] = _compact(alive, n, counts, m, int(rule))


def cover_walks(
    codes: np.ndarray,
    n_neg: int,
    sets: np.ndarray,
    widths: np.ndarray,
    orders: np.ndarray,
    rule: int,
    flags: np.ndarray,
    uncovered: np.ndarray,
) -> None:
    """Whole randomized constructions, one per cell ``c``: on the code set ``codes[sets[c]]``
    (rows ``< n_neg`` negative, the rest positive), the walk over ``orders[c]`` on the first
    ``widths[c]`` bits; ``flags[c, i]`` 0 untried, 1 tried and uncovered, 2 covered;
    ``uncovered[c]`` the negative points left uncovered."""
    _check(codes, "codes", np.uint64, 3)
    _check(sets, "sets", np.int64, 1)
    _check(widths, "widths", np.int64, 1)
    _check(orders, "orders", np.int64, 2)
    _check(flags, "flags", np.uint8, 2)
    _check(uncovered, "uncovered", np.int64, 1)
    n_sets, n_rows, words = codes.shape
    _require(0 <= n_neg < n_rows, "n_neg must leave at least one positive row of codes")
    _require(rule in (RULE_CODE, RULE_HALF), "rule must be 0 (code) or 1 (half)")
    cells = widths.shape[0]
    _require(
        sets.shape[0] == cells and uncovered.shape[0] == cells,
        "sets and uncovered must have one entry per width",
    )
    _require(orders.shape == (cells, n_neg), "orders must be (len(widths), n_neg)")
    _require(flags.shape == (cells, n_neg), "flags must be (len(widths), n_neg)")
    _require(
        cells == 0 or (int(widths.min()) >= 1 and int(widths.max()) <= 64 * words),
        "widths must be in [1, 64 * words]",
    )
    _require(
        cells == 0 or (int(sets.min()) >= 0 and int(sets.max()) < n_sets),
        "sets must index the first axis of codes",
    )
    _cover_walks(codes, int(n_neg), sets, widths, orders, int(rule), flags, uncovered)


def threshold_votes(
    codes: np.ndarray, units: np.ndarray, bias: np.ndarray, owner: np.ndarray, votes: np.ndarray
) -> None:
    """``votes[r, c]`` = number of ``q`` with ``owner[q] = c`` and
    ``bias[q] - popcount(codes[r] & units[q]) >= 0``."""
    _check(codes, "codes", np.uint64, 2)
    _check(units, "units", np.uint64, 2)
    _check(bias, "bias", np.float64, 1)
    _check(owner, "owner", np.int64, 1)
    _check(votes, "votes", np.int64, 2)
    _require(units.shape[1] == codes.shape[1], "codes and units must have the same number of words")
    _require(
        bias.shape[0] == units.shape[0] and owner.shape[0] == units.shape[0],
        "bias and owner must have one entry per row of units",
    )
    _require(votes.shape[0] == codes.shape[0], "votes must have one row per row of codes")
    if owner.shape[0]:
        _require(
            int(owner.min()) >= 0 and int(owner.max()) < votes.shape[1],
            "owner must index a column of votes",
        )
    work = codes.shape[0] * units.shape[0] * codes.shape[1]
    (_threshold_votes_par if work > _PARALLEL_WORDS else _threshold_votes_seq)(
        codes, units, bias, owner, votes
    )

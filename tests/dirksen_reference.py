"""Plain-NumPy references of the randomized threshold construction's kernels.

Written without fastmem: dense 0/1 features or NumPy popcounts, Python loops where they make
the definition obvious. ``random_cover`` and ``grid`` are the NumPy implementation fastmem used
before its kernels (same generator calls), kept to check the kernels and to time against.
"""

from __future__ import annotations

import numpy as np


def pack(bits: np.ndarray) -> np.ndarray:
    """(rows, width) bool -> (rows, ceil(width / 64)) uint64, bit j of word j // 64."""
    rows, width = bits.shape
    words = -(-width // 64)
    out = np.zeros((rows, words), dtype=np.uint64)
    for j in range(width):  # sum of distinct powers of two = OR
        out[:, j // 64] |= bits[:, j].astype(np.uint64) << np.uint64(j % 64)
    return out


def unpack(codes: np.ndarray, width: int) -> np.ndarray:
    j = np.arange(width)
    return ((codes[:, j // 64] >> (j % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)


def popcount_rows(codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.bitwise_count(codes & mask).sum(axis=1, dtype=np.int64)


def covers(counts, m, rule: str):
    return counts < m if rule == "code" else 2 * counts <= m


def threshold_pack(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    return pack(z + b >= 0)


def cover_step(neg, pos, row, rule, alive):
    """(m, counts over alive or None, alive after the step) with dense 0/1 vectors."""
    width = 64 * neg.shape[1]
    U = ~unpack(neg[row : row + 1], width)[0]
    m = int((unpack(pos, width) & U).sum(axis=1).min())
    if m <= 0:
        return m, None, list(alive)
    counts = (unpack(neg[np.asarray(alive, dtype=np.int64)], width) & U).sum(axis=1)
    return m, counts, [a for a, c in zip(alive, counts, strict=True) if not covers(c, m, rule)]


def walk(neg, pos, width, order, rule):
    """The randomized construction as a walk over ``order`` on the first ``width`` bits:
    (flags 0 untried / 1 tried uncovered / 2 covered, number left uncovered)."""
    zn = unpack(neg, 64 * neg.shape[1])[:, :width]
    zp = unpack(pos, 64 * pos.shape[1])[:, :width]
    flags = np.zeros(neg.shape[0], dtype=np.uint8)
    for i in order:
        if (flags == 2).all():
            break
        if flags[i] != 0:
            continue
        flags[i] = 1
        U = ~zn[i]
        m = int((zp & U).sum(axis=1).min())
        if m > 0:
            hit = covers((zn & U).sum(axis=1), m, rule) & (flags != 2)
            flags[hit] = 2
    return flags, int((flags != 2).sum())


def votes(codes, units, bias, owner, n_classes):
    out = np.zeros((codes.shape[0], n_classes), dtype=np.int64)
    for q in range(units.shape[0]):
        fires = bias[q] - popcount_rows(codes, units[q]) >= 0
        out[:, owner[q]] += fires
    return out


def random_cover(neg, pos, rule, gen):
    """The randomized second layer on packed codes by NumPy popcounts, one draw per loop:
    (chosen rows, their m, draws, points left uncovered)."""
    n_neg = neg.shape[0]
    cand = np.ones(n_neg, dtype=bool)
    universe = np.ones(n_neg, dtype=bool)
    chosen, ms, tried = [], [], 0
    while True:
        idx = np.flatnonzero(cand)
        if idx.shape[0] == 0 or not universe.any():
            break
        i = int(gen.choice(idx))
        tried += 1
        cand[i] = False
        u = ~neg[i]
        m = int(popcount_rows(pos, u).min())
        if m > 0:
            keep = ~covers(popcount_rows(neg, u), m, rule)
            cand &= keep
            universe &= keep
            chosen.append(i)
            ms.append(m)
    return chosen, ms, tried, int(universe.sum())


def grid(X, labels, widths, max_biases, restarts, rule="code", seed=0):
    """The interpolation-probability grid in NumPy: per restart one Gaussian matrix of the
    largest width and biases U[-1, 1] (scaled per lambda), per cell one permutation walk
    with a Python loop over the draws (fastmem's implementation before its kernels)."""
    gen = np.random.default_rng(seed)
    neg_rows, pos_rows = np.flatnonzero(labels == 0), np.flatnonzero(labels != 0)
    widths = np.asarray(widths)
    n_max = int(widths.max())
    hits = np.zeros((widths.size, len(max_biases)), dtype=np.int64)
    for _ in range(restarts):
        W = gen.standard_normal((n_max, X.shape[1]))
        b0 = gen.uniform(-1.0, 1.0, size=n_max)
        P = X @ W.T
        for j, lam in enumerate(max_biases):
            z = P + lam * b0 >= 0
            for i, width in enumerate(widths):
                neg = _pack_fast(z[neg_rows, :width])
                pos = _pack_fast(z[pos_rows, :width])
                hits[i, j] += _walk_popcount(neg, pos, rule, gen) == 0
    return hits / restarts


def _pack_fast(bits):
    rows, width = bits.shape
    words = -(-width // 64)
    padded = np.zeros((rows, words * 64), dtype=bool)
    padded[:, :width] = bits
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64).reshape(rows, words)


def _walk_popcount(neg, pos, rule, gen):
    n_neg = neg.shape[0]
    alive = np.ones(n_neg, dtype=bool)
    covered = np.zeros(n_neg, dtype=bool)
    for i in gen.permutation(n_neg).tolist():
        if not alive[i]:
            continue
        alive[i] = False
        u = ~neg[i]
        m = int(popcount_rows(pos, u).min())
        if m > 0:
            cov = covers(popcount_rows(neg, u), m, rule)
            covered |= cov
            alive &= ~cov
            if covered.all():
                break
    return int((~covered).sum())

"""Generalization intervals and the directions they are measured along.

Salman & Liu, "Towards quantifying intrinsic generalization of deep ReLU networks"
(arXiv:2002.04162): for a point ``x0`` and a direction ``d``, the *generalization
interval* is the largest interval ``[lower, upper]`` of ``t`` around 0 on which the
predicted class of ``x0 + t d`` equals the class of ``x0``, limited to a range
(``[-1, 2]`` for pairwise lines ``d = x_j - x_i`` between samples of one class, so that
``t = 0`` and ``t = 1`` are the two samples; ``[-2.5, 2.5]`` for triangle midlines).

fastmem computes the intervals exactly: the segment engine (``fastmem._engine``, shared
with :mod:`fastmem.regions`) cuts each line into the pieces on which the network is
affine, after the output layer each piece carries its logits as an affine function of
``t``, and on a piece the set where one class wins is a single interval (an intersection
of half-lines), found in closed form. No sampling, so no class change is missed however narrow.

Ties follow ``argmax`` (the first maximum wins), as :meth:`Network.predict`: with one
output the class is ``logit > 0``, so on a piece where the logit is identically 0 (all
ReLUs dead) the class is 0; isolated equal-logit points end an interval either way.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _engine, _graph
from ._backend import Backend, to_device
from ._json import jsonable
from ._validate import as_bool, as_float_array, check_allocation
from ._validate import as_generator as _rng
from ._validate import to_host as _host
from .errors import InputError
from .network import Network

__all__ = [
    "MIDLINE_RANGE",
    "PAIRWISE_RANGE",
    "Intervals",
    "generalization_intervals",
    "normal",
    "pairwise",
    "principal",
    "random_directions",
    "triangle_midlines",
]

#: The t-range Salman & Liu use for pairwise lines (the two samples at t = 0 and t = 1).
PAIRWISE_RANGE = (-1.0, 2.0)
#: The t-range Salman & Liu use for triangle midlines (range 5, centred on the anchor).
MIDLINE_RANGE = (-2.5, 2.5)


@dataclass(frozen=True)
class Intervals:
    """Generalization intervals (see :func:`generalization_intervals`).

    Attributes
    ----------
    lower, upper : array (n,)
        Interval ends in units of ``t`` (``lower <= 0 <= upper``), clipped to ``t_range``.
    length : array (n,)
        ``upper - lower`` (in units of ``t``; multiply by ``||d||`` for input units).
    predicted_class : array (n,) of int64
        Class of each anchor (``t = 0``).
    backend : str
    t_range : tuple of float
    """

    lower: Any
    upper: Any
    length: Any
    predicted_class: Any
    backend: str
    t_range: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable(
            {
                "lower": _host(self.lower),
                "upper": _host(self.upper),
                "length": _host(self.length),
                "predicted_class": _host(self.predicted_class),
                "backend": self.backend,
                "t_range": list(self.t_range),
            }
        )


def generalization_intervals(
    net: Network,
    anchors: Any,
    directions: Any,
    *,
    t_range: tuple[float, float] = PAIRWISE_RANGE,
    chunk_size: int | None = None,
    backend: str | None = None,
) -> Intervals:
    """Exact generalization intervals of ``net`` at ``anchors`` along ``directions``.

    Parameters
    ----------
    net : Network
    anchors, directions : array_like (n, input_dim)
        Line ``i`` is ``anchors[i] + t * directions[i]``; see :func:`pairwise`,
        :func:`triangle_midlines`, :func:`principal`, :func:`normal` and
        :func:`random_directions` for the directions of Salman & Liu.
    t_range : (float, float)
        ``t0 <= 0 <= t1``, ``t0 < t1``; ``(-1, 2)`` for pairwise lines,
        :data:`MIDLINE_RANGE` for triangle midlines.
    chunk_size : int, optional
        Lines processed at once (bounds memory; see :mod:`fastmem.regions`).
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    Intervals

    Raises
    ------
    InputError
        Bad shapes, NaN/Inf, mismatched devices, a direction of zero length, a
        ``t_range`` that does not contain 0; a layer whose pre-activations overflow
        (named; see :func:`fastmem.regions.along_segments`); lines so long (huge
        directions or ``t_range``) that the walk's resolution in t cannot isolate the
        anchor's region, seen as a class at t = 0 other than the anchor's; where the
        values along the lines are large (above 1e8, as in
        :func:`fastmem.regions.along_segments`), an interval the forward pass disagrees
        with inside it or just past its ends (the walk lost its precision).

    Examples
    --------
    Two classes split at x = 0.25; from x0 = 0 along d = 1 the class holds until t = 0.25:

    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[1.0]]), np.array([[1.0]])],
    ...                                   [np.array([-0.25]), np.zeros(1)])
    >>> iv = fastmem.intervals.generalization_intervals(net, np.zeros((1, 1)), np.ones((1, 1)))
    >>> float(iv.lower[0]), float(iv.upper[0]), int(iv.predicted_class[0])
    (-1.0, 0.25, 0)
    """
    t0, t1 = _engine.check_t_range(t_range)
    if not t0 <= 0.0 <= t1:
        raise InputError(f"t_range: must contain 0 (the anchor), got {t_range!r}")
    if chunk_size is not None:
        chunk_size = _engine.check_positive_int(chunk_size, "chunk_size")
    lines = _engine.prepare_lines(
        net, anchors, directions, ("anchors", "directions"), backend, second_is="direction"
    )
    net.require_piecewise_linear("generalization_intervals")
    be, xp = lines.be, lines.be.xp
    zero = ~(lines.second != 0).any(axis=1)
    if bool(zero.any()):
        rows = _host(xp.flatnonzero(zero))[:5].tolist()
        raise InputError(
            f"directions: {int(zero.sum())} direction(s) of zero length (rows {rows}...); "
            "a generalization interval needs a direction"
        )
    tol = _engine.tolerance(net.dtype, t0, t1)
    lows, ups, classes = [], [], []

    def visit(lo: int, hi: int, p: _engine.Pieces) -> None:
        lower, upper, cls = _intervals_of_pieces(p, hi - lo, t0, t1, tol, be)
        lows.append(lower)
        ups.append(upper)
        classes.append(cls)

    if net.layer_graph is not None:
        walk = _graph.exact_segments(
            net.layer_graph, lines.first, lines.second, t0, t1, be, tol,
            net.n_pattern_words, chunk_size, direction=True,
        )  # fmt: skip
        for lo, hi, seg, ta, tb, codes, logits_lo, logits_hi in walk:
            dt = net.dtype
            p = _engine.Pieces(seg, ta.astype(dt), tb.astype(dt), codes, logits_lo, logits_hi)
            visit(lo, hi, p)
    else:
        _engine.run(lines, t0, t1, visit, chunk_size=chunk_size, logits=True)
    lower, upper = xp.concatenate(lows), xp.concatenate(ups)
    _check_anchor_classes(lines, xp.concatenate(classes), tol, (t0, t1), be)
    if net.dtype == np.float64 and _engine.large_values(lines, t0, t1):
        _check_inside(lines, lower, upper, xp.concatenate(classes), tol, (t0, t1), be)
    device = lines.device
    return Intervals(
        lower=to_device(lower, device),
        upper=to_device(upper, device),
        length=to_device(upper - lower, device),
        predicted_class=to_device(xp.concatenate(classes), device),
        backend=be.name,
        t_range=(t0, t1),
    )


def _check_inside(
    lines: Any, lower: Any, upper: Any, cls: Any, tol: float, t_range: Any, be: Backend
) -> None:
    """Where the values along the lines are large (:func:`fastmem._engine.large_values`):
    the forward pass must predict each line's class at three points inside its interval
    (at 1/8, 1/2 and 7/8 of it, where it is wider than 64 tolerances) and another class
    64 tolerances past each end inside ``t_range``; else the walk lost its precision (see
    ``regions._check_pieces``): refused, naming the lines."""
    xp = be.xp
    t0, t1 = t_range
    step = 64 * tol
    wide = xp.flatnonzero((upper - lower) > step)
    if wide.shape[0] == 0:
        return
    lo, up = lower[wide], upper[wide]
    frac = xp.asarray([0.125, 0.5, 0.875])
    inside = lo[:, None] + frac[None, :] * (up - lo)[:, None]
    past = xp.stack([lo - step, up + step], axis=1)
    t = xp.concatenate([inside, past], axis=1)
    X = lines.first[wide, None, :] + t[:, :, None] * lines.second[wide, None, :]
    got = lines.net.predict(X.reshape(-1, X.shape[-1]), backend=be.name).reshape(-1, 5)
    own = cls[wide, None]
    wrong = (got[:, :3] != own).any(axis=1)
    wrong |= (got[:, 3] == own[:, 0]) & (lo > t0 + step)
    wrong |= (got[:, 4] == own[:, 0]) & (up < t1 - step)
    bad = xp.flatnonzero(wrong)
    if bad.shape[0]:
        i = int(wide[bad[0]])
        raise InputError(
            f"directions, t_range: the exact walk lost its precision on {int(bad.shape[0])} "
            f"line(s) (first: row {i}): the forward pass disagrees with the interval it "
            f"found for class {int(cls[i])} (inside it or just past its ends). The values "
            "along the lines are too large for float64 crossings at the walk's resolution "
            f"in t ({tol:.3g} over t_range={t_range}), from lines this long or weights this "
            "large; shorten those directions or narrow t_range"
        )


def _check_anchor_classes(lines: Any, cls: Any, tol: float, t_range: Any, be: Backend) -> None:
    """The class the walk finds at t = 0 must be the anchor's own (the forward pass's) up
    to a tie. Where the range is so long that the walk's resolution in t (``tol``) merges
    the anchor's region with its neighbours, the piece at t = 0 is no longer one affine
    map and its interpolated class can be another: refuse, naming the lines."""
    xp = be.xp
    logits = lines.net.forward(lines.first, backend=be.name)
    if logits.shape[1] == 1:
        logits = xp.concatenate([xp.zeros_like(logits), logits], axis=1)
    rows = xp.arange(logits.shape[0])
    own = logits.argmax(axis=1)
    gap = logits[rows, own] - logits[rows, cls]
    scale = xp.abs(logits).max(axis=1) + 1.0
    bad = xp.flatnonzero(gap > 1e-8 * scale)  # not a tie: another class
    if bad.shape[0]:
        i = int(bad[0])
        raise InputError(
            f"directions, t_range: on {int(bad.shape[0])} line(s) (first: row {i}) the "
            f"anchor's class is {int(own[i])}, but the exact walk over t_range={t_range} "
            f"sees class {int(cls[i])} at t = 0: its resolution in t ({tol:.3g}) is too "
            "coarse for the anchor's region on lines this long; shorten those directions "
            "or narrow t_range"
        )


def _intervals_of_pieces(
    p: Any, m: int, t0: float, t1: float, tol: float, be: Backend
) -> tuple[Any, Any, Any]:
    """Per line: the maximal run of pieces around t = 0 where the anchor's class wins."""
    xp = be.xp
    Ll, Lh = p.logits_lo, p.logits_hi
    if Ll.shape[1] == 1:  # one logit: class = logit > 0, i.e. argmax of (0, logit)
        Ll = xp.concatenate([xp.zeros_like(Ll), Ll], axis=1)
        Lh = xp.concatenate([xp.zeros_like(Lh), Lh], axis=1)
    seg, t_lo, t_hi = p.seg, p.t_lo, p.t_hi
    n = seg.shape[0]
    counts = xp.bincount(seg, minlength=m)
    first = xp.cumsum(counts) - counts
    below = xp.bincount(seg[t_hi <= 0], minlength=m)
    p0 = first + xp.minimum(below, counts - 1)  # the piece holding t = 0
    r0 = (0 - t_lo[p0]) / (t_hi[p0] - t_lo[p0])
    cls = (Ll[p0] + r0[:, None] * (Lh[p0] - Ll[p0])).argmax(axis=1)
    c = cls[seg]
    rows = xp.arange(n)
    # margins of the anchor's class over every class at the piece's two ends
    dl = Ll[rows, c][:, None] - Ll
    dh = Lh[rows, c][:, None] - Lh
    with np.errstate(divide="ignore", invalid="ignore"):
        root = t_lo[:, None] + (t_hi - t_lo)[:, None] * (dl / (dl - dh))
    falls = (dl >= 0) & (dh < 0)  # the margin ends inside: an upper bound
    rises = (dl < 0) & (dh >= 0)  # the margin starts inside: a lower bound
    # argmax takes the first maximum: a margin identically 0 on the piece loses to every
    # class with a smaller index (e.g. a dead ReLU region with one logit: class 0)
    tie_loses = (dl == 0) & (dh == 0) & (xp.arange(Ll.shape[1])[None, :] < c[:, None])
    never = ((dl < 0) & (dh < 0)) | tie_loses
    lo_p = xp.maximum(xp.where(rises, root, -np.inf).max(axis=1), t_lo)
    hi_p = xp.minimum(xp.where(falls, root, np.inf).min(axis=1), t_hi)
    empty = never.any(axis=1) | (lo_p > hi_p)
    left_ok = ~empty & (lo_p <= t_lo + tol)
    right_ok = ~empty & (hi_p >= t_hi - tol)
    full = left_ok & right_ok
    # first non-full piece after p0 and last one before it, within the same line
    nf = xp.flatnonzero(~full)
    pad = xp.concatenate([xp.asarray([-1]), nf, xp.asarray([n])])
    seg_pad = xp.concatenate([xp.asarray([-1]), seg, xp.asarray([-1])])
    line = xp.arange(m)
    q_up = pad[xp.searchsorted(nf, p0, side="right") + 1]
    q_dn = pad[xp.searchsorted(nf, p0, side="left")]
    has_up = seg_pad[q_up + 1] == line
    has_dn = seg_pad[q_dn + 1] == line
    q_up = xp.clip(q_up, 0, n - 1)
    q_dn = xp.clip(q_dn, 0, n - 1)
    up_far = xp.where(has_up, xp.where(left_ok[q_up], hi_p[q_up], t_lo[q_up]), t1)
    dn_far = xp.where(has_dn, xp.where(right_ok[q_dn], lo_p[q_dn], t_hi[q_dn]), t0)
    upper = xp.where(right_ok[p0], up_far, hi_p[p0])
    lower = xp.where(left_ok[p0], dn_far, lo_p[p0])
    # the anchor itself is inside by definition (guards rounding at t = 0)
    return xp.minimum(lower, 0.0), xp.maximum(upper, 0.0), cls.astype(np.int64)


# ------------------------------------------------------------------ directions


def _data(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = as_float_array(X, "X", ndim=2, dtype=np.dtype(np.float64))
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(f"y: expected {X.shape[0]} labels (one per row of X), got shape {y.shape}")
    if y.dtype.kind not in "biu":
        raise InputError(f"y: labels must be integers, got dtype {y.dtype}")
    return X, y.astype(np.int64)


def _optional_count(value: Any, name: str) -> int | None:
    return None if value is None else _engine.check_positive_int(value, name)


def _check_lines(
    k: int, total: int, d: int, width: int, argument: str, what: str, *, sampled: bool = False
) -> None:
    """`InputError` naming ``argument`` before ``k`` of ``total`` index tuples of
    ``width`` rows (pairs, triangles) and their lines in ``d`` dimensions are made.

    Per line: the anchors, the directions and their temporaries (six ``d``-vectors),
    the index tuples and their sorted / rotated copies, the chosen indices; the draw
    of ``k`` of ``total`` without replacement (``Generator.choice``) holds an
    arange of ``total`` when ``k > total / 50``; triangles drawn one by one sit in a
    Python set (~250 bytes each), and each triangle gives three midlines.
    """
    lines = k * (3 if width == 3 else 1)
    need = lines * (48 * d + 48 * width + 32)
    if sampled:
        need += 250 * k
    if width == 2 and k < total and k > total // 50:
        need += 8 * total
    source = f"all {total}" if k == total else f"{k} of {total}"
    check_allocation(need, f"{lines} lines from {source} {what}", argument)


def _pick(total: int, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices 0..total-1, or a sorted random subset of k of them."""
    if k is None or k >= total:
        return np.arange(total, dtype=np.int64)
    return np.sort(rng.choice(total, size=k, replace=False)).astype(np.int64)


def pairwise(
    X: Any, y: Any, *, same_class: bool = True, max_pairs: int | None = None, rng: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise lines between samples: anchor ``x_i``, direction ``x_j - x_i`` (``i < j``).

    Salman & Liu's pairwise generalization intervals use ``same_class=True`` (lines
    approximating tangent directions of the class manifold) and ``t_range=(-1, 2)``.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,) of int
    same_class : bool
        True: pairs with ``y_i == y_j``; False: pairs with ``y_i != y_j``.
    max_pairs : int, optional
        Keep a random subset of this many pairs (without replacement).
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    anchors, directions : ndarray (p, d)
    pairs : ndarray (p, 2) of int64
        ``(i, j)`` per line, in lexicographic order.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> X = np.arange(8.0).reshape(4, 2); y = np.array([0, 1, 0, 0])
    >>> fastmem.intervals.pairwise(X, y)[2].tolist()
    [[0, 2], [0, 3], [2, 3]]
    """
    X, y = _data(X, y)
    same_class = as_bool(same_class, "same_class")
    max_pairs = _optional_count(max_pairs, "max_pairs")
    gen = _rng(rng)
    classes = np.unique(y)
    members = [np.flatnonzero(y == c) for c in classes]
    blocks: list[tuple[np.ndarray, np.ndarray | None]] = []  # (rows, cols) or (rows, None)
    sizes = []
    if same_class:
        for idx in members:
            blocks.append((idx, None))
            sizes.append(idx.size * (idx.size - 1) // 2)
    else:
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                blocks.append((members[a], members[b]))
                sizes.append(members[a].size * members[b].size)
    n_all = sum(sizes)  # Python ints: exact however many
    _check_lines(
        min(n_all, max_pairs or n_all), n_all, X.shape[1], 2, "max_pairs",
        f"{'same' if same_class else 'different'}-class pairs of rows",
    )  # fmt: skip
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    chosen = _pick(int(starts[-1]), max_pairs, gen)
    block = np.searchsorted(starts, chosen, side="right") - 1
    pairs = np.empty((chosen.size, 2), dtype=np.int64)
    for bi in np.unique(block):
        rows, cols = blocks[bi]
        local = chosen[block == bi] - starts[bi]
        if cols is None:  # upper triangle of rows x rows, row-major
            nr = rows.size
            row_start = np.arange(nr) * nr - np.arange(nr) * (np.arange(nr) + 1) // 2
            r = np.searchsorted(row_start, local, side="right") - 1
            cidx = local - row_start[r] + r + 1
            got = np.stack([rows[r], rows[cidx]], axis=1)
        else:
            got = np.stack([rows[local // cols.size], cols[local % cols.size]], axis=1)
        pairs[block == bi] = np.sort(got, axis=1)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    with np.errstate(over="ignore", invalid="ignore"):
        directions = X[pairs[:, 1]] - X[pairs[:, 0]]
    bad = ~np.isfinite(directions).all(axis=1)
    if bad.any():
        i, j = (int(v) for v in pairs[np.flatnonzero(bad)[0]])
        raise InputError(
            f"X: the direction x_j - x_i of pair ({i}, {j}) overflows (values near the "
            "float range); rescale X"
        )
    _refuse_equal_rows(directions, pairs[:, 0], pairs[:, 1])
    return X[pairs[:, 0]], directions, pairs


def _refuse_equal_rows(directions: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
    """A line between two equal rows of X has no direction: refused, naming the rows
    (``generalization_intervals`` would refuse its zero-length direction anyway)."""
    zero = np.flatnonzero(~directions.any(axis=1))
    if zero.size:
        a, b = int(i[zero[0]]), int(j[zero[0]])
        raise InputError(
            f"X: rows {a} and {b} are equal (and {zero.size - 1} more such lines; or closer "
            "than the float resolution): a line between them has no direction; drop "
            "duplicate samples first, e.g. np.unique(X, axis=0, return_index=True)"
        )


def triangle_midlines(
    X: Any, y: Any, *, max_triangles: int | None = None, rng: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Midlines of same-class triangles (Salman & Liu; use ``t_range=MIDLINE_RANGE``).

    For a triangle ``(x_i, x_j, x_k)`` of one class, a midline joins the midpoints of
    two sides: anchor ``(x_i + x_j) / 2``, direction ``(x_i + x_k) / 2 - (x_i + x_j) / 2
    = (x_k - x_j) / 2`` (parallel to the third side). Each triangle gives its three
    midlines, as rows ``(i, j, k)``, ``(j, k, i)`` and ``(k, i, j)``.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,) of int
    max_triangles : int, optional
        Keep a random subset of this many triangles (without replacement).
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    anchors, directions : ndarray (3 t, d)
    triangles : ndarray (3 t, 3) of int64
        ``(i, j, k)`` per midline: from the midpoint of ``(i, j)`` to that of ``(i, k)``.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]); y = np.zeros(3, dtype=int)
    >>> a, d, tri = fastmem.intervals.triangle_midlines(X, y)
    >>> a[0].tolist(), d[0].tolist(), tri[0].tolist()
    ([1.0, 0.0], [-1.0, 1.0], [0, 1, 2])
    """
    X, y = _data(X, y)
    max_triangles = _optional_count(max_triangles, "max_triangles")
    gen = _rng(rng)
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    sizes = [math.comb(idx.size, 3) for idx in members]
    total = sum(sizes)
    _check_lines(
        min(total, max_triangles or total), total, X.shape[1], 3, "max_triangles",
        "same-class triangles", sampled=max_triangles is not None and max_triangles < total,
    )  # fmt: skip
    if max_triangles is None or max_triangles >= total:
        tris = []
        for idx in members:
            if idx.size >= 3:
                tris.append(idx[_all_triples(idx.size)])
        tri = np.concatenate(tris) if tris else np.zeros((0, 3), dtype=np.int64)
    else:
        # sample classes by their triangle counts, then distinct triples; reject duplicates
        probs = np.array(sizes, dtype=np.float64) / total
        seen: set[tuple[int, int, int]] = set()
        while len(seen) < max_triangles:
            need = max_triangles - len(seen)
            cls = gen.choice(len(members), size=2 * need, p=probs)
            for ci in cls:
                idx = members[ci]
                t = tuple(sorted(int(v) for v in gen.choice(idx, size=3, replace=False)))
                seen.add(t)  # type: ignore[arg-type]
                if len(seen) == max_triangles:
                    break
        tri = np.array(sorted(seen), dtype=np.int64).reshape(-1, 3)
    rot = np.concatenate([tri, tri[:, [1, 2, 0]], tri[:, [2, 0, 1]]], axis=1).reshape(-1, 3)
    i, j, k = rot[:, 0], rot[:, 1], rot[:, 2]
    with np.errstate(over="ignore", invalid="ignore"):
        anchors = (X[i] + X[j]) / 2
        directions = (X[i] + X[k]) / 2 - anchors
    bad = np.flatnonzero(~(np.isfinite(anchors).all(axis=1) & np.isfinite(directions).all(axis=1)))
    if bad.size:
        # sums that overflow (values near the float range): halve first (exact for
        # normal numbers; a midpoint and a half difference always fit)
        ib, jb, kb = i[bad], j[bad], k[bad]
        anchors[bad] = X[ib] / 2 + X[jb] / 2
        directions[bad] = X[kb] / 2 - X[jb] / 2
    _refuse_equal_rows(directions, j, k)
    return anchors, directions, rot


def _all_triples(n: int) -> np.ndarray:
    """All (a, b, c) with a < b < c < n, lexicographic, as an (C(n, 3), 3) array."""
    flat = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n), 3)),
        dtype=np.int64,
        count=3 * math.comb(n, 3),
    )
    return flat.reshape(-1, 3)


def _scaled(X: np.ndarray) -> tuple[np.ndarray, int]:
    """``X * 2**-e`` with its largest magnitude in [0.5, 1), and ``e`` (an exact scaling
    for normal numbers): means, differences and squares of the scaled rows neither
    overflow (data near 1e308) nor underflow (data near 1e-200)."""
    top = float(np.abs(X).max()) if X.size else 0.0
    e = math.frexp(top)[1] if top > 0 else 0
    return np.ldexp(X, -e), e


def _rms_radius(centred: np.ndarray, e: int) -> float:
    """``sqrt(mean ||x - mean||^2)`` of the scaled centred rows, scaled back by 2**e."""
    radius = math.ldexp(float(np.sqrt(np.mean(np.sum(centred**2, axis=1)))), e)
    if not math.isfinite(radius):
        raise InputError("X: the data's RMS radius overflows (values near the float range)")
    return radius


def _components(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Principal axes (rows, sign-fixed), their variances, and the class's RMS radius.

    Computed on the rows scaled by a power of two (:func:`_scaled`): exact data near the
    float range would otherwise give Inf / NaN (and LAPACK's SVD may not return on NaN).
    """
    Xs, e = _scaled(Xc)
    centred = Xs - Xs.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    # a deterministic sign: the largest-magnitude coordinate of each axis is positive
    flip = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    vt = vt * flip[:, None]
    radius = _rms_radius(centred, e)
    with np.errstate(over="ignore"):
        variances = np.ldexp(s**2 / max(Xc.shape[0] - 1, 1), 2 * e)
    return vt, variances, radius


def _class_rows(X: np.ndarray, y: np.ndarray, cls: Any, name: str) -> np.ndarray:
    if not isinstance(cls, numbers.Integral) or isinstance(cls, bool):
        raise InputError(f"{name}: must be an integer class label, got {cls!r}")
    idx = np.flatnonzero(y == cls)
    if idx.size < 2:
        raise InputError(f"{name}: class {cls} has {idx.size} sample(s); at least 2 are needed")
    return idx


def principal(X: Any, y: Any, cls: int, k: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines through the samples of class ``cls`` along its ``k``-th principal axis.

    Salman & Liu compare the network's output along a class's first principal component
    (a tangent direction of the class manifold) with minor components (``k`` large).
    Every direction has the length of the class's RMS radius
    ``sqrt(mean ||x - mean||^2)``, so ``t`` is measured in class radii whatever ``k``.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,) of int
    cls : int
        Class label.
    k : int
        Principal axis (0 = largest variance).

    Returns
    -------
    anchors, directions : ndarray (n_cls, d)
    index : ndarray (n_cls,) of int64
        Row of ``X`` of each anchor.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> X = np.array([[-2.0, 0.0], [0.0, 0.1], [0.0, -0.1], [2.0, 0.0]])
    >>> y = np.zeros(4, dtype=int)
    >>> a, d, idx = fastmem.intervals.principal(X, y, 0)
    >>> (d[0] / np.linalg.norm(d[0])).tolist()
    [1.0, 0.0]
    """
    X, y = _data(X, y)
    idx = _class_rows(X, y, cls, "cls")
    vt, _, radius = _components(X[idx])
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 0 <= k < vt.shape[0]:
        raise InputError(f"k: must be an integer in [0, {vt.shape[0]}), got {k!r}")
    if radius == 0:
        raise InputError(f"cls: the samples of class {cls} are all equal (no principal axis)")
    d = vt[int(k)] * radius
    return X[idx], np.broadcast_to(d, (idx.size, X.shape[1])).copy(), idx


def normal(X: Any, y: Any, cls_from: int, cls_to: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines through the samples of ``cls_from`` along a normal direction.

    The direction from the mean of ``cls_from`` to the mean of ``cls_to``, made
    orthogonal to the first principal axis of ``cls_from`` (Salman & Liu, Fig. 2: a
    normal direction of the class manifold). It keeps its length, so ``t = 1`` moves by
    the orthogonalised mean difference.

    Returns
    -------
    anchors, directions : ndarray (n_from, d)
    index : ndarray (n_from,) of int64

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 3.0], [1.0, 3.0]]); y = np.array([0, 0, 1, 1])
    >>> fastmem.intervals.normal(X, y, 0, 1)[1][0].tolist()
    [0.0, 3.0]
    """
    X, y = _data(X, y)
    idx = _class_rows(X, y, cls_from, "cls_from")
    to = _class_rows(X, y, cls_to, "cls_to")
    vt, _, _ = _components(X[idx])
    Xs, e = _scaled(X)
    diff = Xs[to].mean(axis=0) - Xs[idx].mean(axis=0)
    d = diff - (diff @ vt[0]) * vt[0]
    # relative to the mean difference only: the test is the same at every data scale
    if not np.linalg.norm(d) > 1e-12 * float(np.linalg.norm(diff)):
        raise InputError(
            "cls_to: the class-mean difference is parallel to the first principal axis"
        )
    with np.errstate(over="ignore"):
        d = np.ldexp(d, e)
    if not np.isfinite(d).all():
        raise InputError("X: the normal direction overflows (values near the float range)")
    return X[idx], np.broadcast_to(d, (idx.size, X.shape[1])).copy(), idx


def random_directions(X: Any, n: int, rng: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random lines: anchors drawn from the rows of X, isotropic Gaussian directions.

    Each direction has the length of the data's RMS radius ``sqrt(mean ||x - mean||^2)``
    (the baseline against which Salman & Liu compare tangent and normal directions).

    Returns
    -------
    anchors, directions : ndarray (n, d)
    index : ndarray (n,) of int64
        Row of ``X`` of each anchor (drawn with replacement).

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> X = np.random.default_rng(0).normal(size=(10, 3))
    >>> a, d, idx = fastmem.intervals.random_directions(X, 4, rng=0)
    >>> a.shape, d.shape, idx.shape
    ((4, 3), (4, 3), (4,))
    """
    X = as_float_array(X, "X", ndim=2, dtype=np.dtype(np.float64))
    n = _engine.check_positive_int(n, "n")
    gen = _rng(rng)
    # anchors, directions, the Gaussian draw and its norms, the indices
    check_allocation(n * (32 * X.shape[1] + 24), f"{n} random lines in {X.shape[1]} dims", "n")
    Xs, e = _scaled(X)
    radius = _rms_radius(Xs - Xs.mean(axis=0), e)
    if radius == 0:
        raise InputError("X: all rows are equal (no scale for the directions)")
    idx = gen.integers(0, X.shape[0], size=n).astype(np.int64)
    d = gen.standard_normal((n, X.shape[1]))
    d *= radius / np.linalg.norm(d, axis=1, keepdims=True)
    return X[idx], d, idx

"""Linear regions along line segments, distinct activation patterns, boundary distances.

The segment engine (``fastmem._engine``; docs/DESIGN.md, "The segment engine") follows every
segment ``x(t) = a + t (b - a)``, ``t in [t0, t1]``, through the network exactly: a
*piece* is a sub-interval of one segment on which every hidden neuron stays on one
linear branch, so each layer's pre-activations are affine in ``t`` on it. Pieces are
stored by their ends (*vertices*, shared by neighbouring pieces: the network is
continuous), so one GEMM per layer over all vertices of a chunk (``Z = [H | 1] [W | b]^T``
by the array module's BLAS) gives the pre-activations at both ends of every piece. The
kernel module (C++, CUDA or Numba: identical results) then cuts every piece where a
neuron meets an activation threshold (0 for ReLU-type and threshold units, -1 and +1 for
hard-tanh), sets the pattern bits of each sub-piece from its midpoint and writes the
activations at the new vertices (``cpp/include/fastmem/regions.hpp``). A ``threshold``
layer makes everything after it constant on each piece (and the network discontinuous):
the engine cuts at its crossings, then reads the rest of the pattern at the midpoints.

Reproduces the region counts along lines of Hanin & Rolnick, "Complexity of linear
regions in deep networks" (ICML 2019) and the sawtooth construction of Telgarsky,
"Benefits of depth in neural networks" (COLT 2016); see also Montufar, Pascanu, Cho &
Bengio, "On the number of linear regions of deep neural networks" (NeurIPS 2014).

Ties and degenerate cases (exact mode)
    Let ``tol = u * eps(dtype) * max(|t0|, |t1|, t1 - t0)`` with ``u = 128`` for float64
    (about ``2.8e-14`` on ``[0, 1]``) and ``u = 8`` for float32 (about ``1e-6``; float32
    counts are approximate: crossings closer than that cannot be told apart).

    * Several neurons crossing at one ``t`` (also within ``tol`` of each other, chained)
      give ONE breakpoint (the midpoint of the cluster); the two pieces around it differ
      in several pattern bits.
    * A neuron constant along a piece (its slope in ``t`` is exactly 0) never splits it;
      its state is its value's (a ReLU neuron constant at exactly 0 is off, as in
      :meth:`Network.activation_patterns`).
    * Crossings within ``tol`` of a piece's ends (e.g. at the segment's ends ``t0``,
      ``t1``, or where a deeper neuron crosses exactly where an earlier one did) add no
      breakpoint.
    * A zero-length segment (``start == end``) is one piece (count 1, no breakpoints).
    * Adjacent pieces of one segment with identical activation patterns are merged, so
      ``counts`` is one more than the number of pattern changes along the segment (the
      quantity ``method="sampled"`` estimates).

    Each piece's pattern is evaluated at the piece's midpoint, never at a breakpoint, so
    a piece's hash equals ``net.pattern_hashes(x)`` at points ``x`` inside the piece
    (same packed-bit layout and hash, :mod:`fastmem.network`).

    * A float64 pre-activation of a hidden layer after the first that rounding cannot
      tell from a threshold, ``|z - theta|
      <= gamma_{n+1} (||w_j||_1 max_i |h_i| + |b_j|)`` (Higham's bound for a dot product
      of the ``n`` inputs ``h`` and the bias), is read as on it, at the engine's vertices
      and in the forward pass alike (``fastmem._kinds.snap_to_thresholds``). A neuron
      whose exact pre-activation sits on a threshold while its inputs vary (weights that
      cancel, e.g. ``w . (x, x, x, x)`` with ``sum(w) = 0``) is then one state along the
      line, in ``net.pattern_hashes`` and ``method="sampled"`` as in the engine, instead of
      flickering with the sign of the rounding (issue 25). float32 values are read as
      computed (their bound is too wide to serve as a tie rule).
    * Where the values along the lines are large (inputs, pre-activations or logits
      above ``1e8`` in magnitude at the lines' ends), float64 rounding of the values the
      walk interpolates can move crossings by more than ``tol``: up to 256 pieces, evenly
      spaced over all, are then checked against ``net.pattern_hashes`` at their
      midpoints, and a walk that lost its precision (lines ~1e12 times longer than the
      pieces near the data, a hard-tanh band narrower than ``tol`` at weights ~1e14) is
      refused with an ``InputError`` instead of returned.

Memory
    Segments are processed ``chunk_size`` at a time, in a workspace reused by all chunks
    of a call. Per piece alive at the widest layer it holds the current and the next
    layer's values at the piece's vertex, the GEMM's input and output (``4 * itemsize *
    max_width`` bytes), two generations of pattern words, ``t``, segment index and
    crossing scratch: about ``1.25 * (4 * itemsize * max_width + 8 * (2 * n_pattern_words
    + 5)) * P`` bytes for ``P`` pieces (1.25: each buffer's slack for the next chunk). With
    ``chunk_size=None`` the chunk size adapts: the first chunk has 64 segments, each next
    one is sized from the pieces per segment seen so far so that this stays near 64 MiB
    (a 784-128-128-128-10 ReLU network: about 70 segments of ~190 pieces; a small
    budget keeps the workspace in cache and the first call of a process cheap: every
    fresh page of a larger one costs a fault on first touch). Memory is then
    bounded independently of the number of segments (the results themselves take 16 bytes
    per piece). A fixed ``chunk_size`` bounds it by ``chunk_size`` times the largest pieces
    per segment. On the CPU backends with two or more threads two chunks are cut side by
    side, each in its own workspace on half the threads (so twice this memory): a
    chunk's many short passes then need no fork and join over all cores. The chunks, and
    so the results bit for bit, are the same whatever the threads and the backend.

    What cannot fit is refused (``InputError``, before allocating): each layer's new
    pieces are estimated (``net`` is named), the results projected from the pieces per
    segment so far (``starts``), and ``method="sampled"``'s points (``samples``). Pieces
    that grow steadily are refused early: after three layers (past the first) in which
    every line's pieces grew by at least 1.5x per layer, that least growth is projected
    over the remaining layers, and a call where one line alone would then need more than
    16 times the memory available is refused (``sawtooth(34)``, 2**34 pieces on [0, 1],
    at its fourth layer, in milliseconds). Random networks, whose pieces along a line
    grow ever more slowly with depth, are not refused by the projection; a network that
    grows fast and then stops could be (the message says it is a projection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _engine, _graph
from ._backend import to_device
from ._json import jsonable
from ._kinds import ACTIVATIONS, activation_slope, threshold_gap
from ._validate import check_allocation
from ._validate import to_host as _host
from .errors import InputError
from .network import Network, dense_forward

__all__ = [
    "BoundaryDistances",
    "DistinctPatterns",
    "Ragged",
    "SegmentRegions",
    "along_segments",
    "distance_to_boundary",
    "distinct_patterns",
]

_SAMPLED_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Ragged:
    """A ragged array: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

    Attributes
    ----------
    values : array (total,)
    offsets : array (rows + 1,) of int64
    """

    values: Any
    offsets: Any

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    def __getitem__(self, i: int) -> Any:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        return self.values[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-able dict (uint64 hashes become Python ints)."""
        return jsonable({"values": _host(self.values), "offsets": _host(self.offsets)})


@dataclass(frozen=True)
class SegmentRegions:
    """Linear regions of a network along line segments (see :func:`along_segments`).

    Attributes
    ----------
    counts : array (m,) of int64
        Number of pieces (linear regions crossed) of each segment.
    breakpoints : Ragged
        Per segment, the sorted interior ``t`` where the activation pattern changes
        (``counts[i] - 1`` of them). ``method="sampled"``: midpoints between the samples
        whose patterns differ.
    pattern_hashes : Ragged
        Per segment, the 64-bit pattern hash of each piece in order of ``t``
        (``counts[i]`` of them); equal to ``net.pattern_hashes(x)`` inside the piece.
    backend : str
        Kernel backend that ran.
    method : str
        ``"exact"`` or ``"sampled"``.
    t_range : tuple of float
    samples : int or None
        Points per segment (``"sampled"`` only).
    chunk_size : int
        The largest number of segments processed at once.
    """

    counts: Any
    breakpoints: Ragged
    pattern_hashes: Ragged
    backend: str
    method: str
    t_range: tuple[float, float]
    samples: int | None
    chunk_size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable(
            {
                "counts": _host(self.counts),
                "breakpoints": self.breakpoints.to_dict(),
                "pattern_hashes": self.pattern_hashes.to_dict(),
                "backend": self.backend,
                "method": self.method,
                "t_range": list(self.t_range),
                "samples": self.samples,
                "chunk_size": self.chunk_size,
            }
        )


def _offsets(counts: Any, xp: Any) -> Any:
    off = xp.zeros(counts.shape[0] + 1, dtype=np.int64)
    xp.cumsum(counts, out=off[1:])
    return off


def along_segments(
    net: Network,
    starts: Any,
    ends: Any,
    *,
    t_range: tuple[float, float] = (0.0, 1.0),
    method: str = "exact",
    samples: int | None = None,
    chunk_size: int | None = None,
    backend: str | None = None,
) -> SegmentRegions:
    """Linear regions crossed by line segments, exactly (or by dense sampling).

    Segment ``i`` is ``x(t) = starts[i] + t (ends[i] - starts[i])`` for ``t`` in
    ``t_range``. ``method="exact"`` splits each segment into the pieces on which the
    network is affine (Hanin & Rolnick 2019 count these "regions along a line");
    ``method="sampled"`` hashes the activation patterns of ``samples`` evenly spaced
    points per segment and counts the changes (the usual approximation, which misses
    regions narrower than the spacing; kept for comparison).

    Parameters
    ----------
    net : Network
    starts, ends : array_like (m, input_dim)
        On the network's device (NumPy or CuPy).
    t_range : (float, float)
        ``t0 < t1``; ``(0, 1)`` is the segment from ``starts`` to ``ends``.
    method : {"exact", "sampled"}
    samples : int, optional
        Points per segment for ``"sampled"`` (default 1000, at least 2); must be None
        for ``"exact"``.
    chunk_size : int, optional
        Segments processed at once; bounds memory (see the module docstring).
    backend : {"cpp", "numba", "cuda"}, optional
        Force a kernel backend.

    Returns
    -------
    SegmentRegions
        Counts, breakpoints and per-piece pattern hashes; see the module docstring for
        how ties, flat neurons, breakpoints at the ends and zero-length segments count.

    Raises
    ------
    InputError
        Bad shapes, NaN/Inf, mismatched devices, ``t0 >= t1``, an unknown ``method``,
        ``samples`` < 2 or given with ``"exact"``, ``chunk_size`` < 1; values that
        overflow (``ends - starts``, or a layer's pre-activations, named; the exact
        engine needs them within ``finfo(dtype).max / 8``).

    Examples
    --------
    Telgarsky's sawtooth of depth 3 has 2**3 pieces on [0, 1]:

    >>> import numpy as np, fastmem
    >>> net = fastmem.sawtooth(3)
    >>> r = fastmem.regions.along_segments(net, np.zeros((1, 1)), np.ones((1, 1)))
    >>> int(r.counts[0])
    8
    >>> r.breakpoints[0]
    array([0.125, 0.25 , 0.375, 0.5  , 0.625, 0.75 , 0.875])
    """
    t0, t1 = _engine.check_t_range(t_range)
    if method not in ("exact", "sampled"):
        raise InputError(f"method: must be 'exact' or 'sampled', got {method!r}")
    if method == "exact" and samples is not None:
        raise InputError("samples: only used with method='sampled'")
    if method == "sampled":
        samples = 1000 if samples is None else _engine.check_positive_int(samples, "samples", 2)
    if chunk_size is not None:
        chunk_size = _engine.check_positive_int(chunk_size, "chunk_size")
    lines = _engine.prepare_lines(net, starts, ends, ("starts", "ends"), backend)
    net.require_piecewise_linear("along_segments")
    xp = lines.be.xp
    if method == "exact" and net.layer_graph is not None:
        counts, bps, hashes, chunk = _exact_graph(lines, t0, t1, chunk_size)
    elif method == "exact":
        counts, bps, hashes, chunk = _exact(lines, t0, t1, chunk_size)
    else:
        assert samples is not None
        per_seg = samples * max(net.widths) * net.dtype.itemsize
        chunk = chunk_size or max(1, _SAMPLED_CHUNK_BYTES // per_seg)
        # the sample positions (a few float64 copies), then per chunk of segments its
        # points, their hashes, change flags and kept breakpoints / hashes
        rows = min(chunk, lines.m) * samples
        check_allocation(
            32 * samples + rows * (net.widths[0] * net.dtype.itemsize + 26),
            f"sampling {samples} points on each of {min(chunk, lines.m)} segment(s) at once",
            "samples" if chunk_size is None else "samples, chunk_size",
            xp,
        )
        counts, bps, hashes = _sampled(lines, t0, t1, samples, chunk)
    assert counts.shape[0] == lines.m
    bp_off = _offsets(counts - 1, xp)
    h_off = _offsets(counts, xp)
    if method == "exact" and net.dtype == np.float64 and _engine.large_values(lines, t0, t1):
        _check_pieces(lines, t0, t1, counts, bps, hashes, bp_off, h_off)
    device = lines.device
    return SegmentRegions(
        counts=to_device(counts, device),
        breakpoints=Ragged(to_device(bps, device), to_device(bp_off, device)),
        pattern_hashes=Ragged(to_device(hashes, device), to_device(h_off, device)),
        backend=lines.be.name,
        method=method,
        t_range=(t0, t1),
        samples=samples,
        chunk_size=chunk,
    )


# Pieces whose midpoints the exact walk's result is checked at, per call (evenly spaced).
_CHECKED_PIECES = 256


def _check_pieces(lines, t0, t1, counts, bps, hashes, bp_off, h_off) -> None:
    """The hashes of up to :data:`_CHECKED_PIECES` pieces, evenly spaced over all, must be
    the forward pass's at their midpoints (a float64 walk's guarantee), checked where the
    values along the lines are large (:func:`fastmem._engine.large_values`). Where they
    are so large that the walk's interpolated values lose the precision its crossings
    need (lines ~1e12 times longer than the pieces near the data, or a hard-tanh band
    narrower than the tie tolerance at weights ~1e14), pieces come out misplaced:
    refused, naming the lines, instead of returned. The pieces checked are wider than 64
    tolerances (their midpoints are no ties)."""
    xp = lines.be.xp
    total = int(h_off[-1])
    tol = _engine.tolerance(np.float64, t0, t1)
    p = xp.unique(xp.linspace(0, total - 1, min(total, _CHECKED_PIECES)).astype(np.int64))
    seg = xp.searchsorted(h_off[1:], p, side="right")
    k = p - h_off[seg]
    last = k == counts[seg] - 1
    ends = xp.concatenate([bps.astype(np.float64), xp.zeros(1)])  # one more: never empty
    lo = xp.where(k == 0, t0, ends[xp.maximum(bp_off[seg] + k - 1, 0)])
    hi = xp.where(last, t1, ends[bp_off[seg] + k])
    keep = (hi - lo) > 64 * tol  # far enough from both ends: not a tie
    if not bool(keep.any()):
        return
    p, seg, mid = p[keep], seg[keep], ((lo + hi) / 2)[keep]
    D = lines.directions(0, lines.m)[seg]
    got = lines.net.pattern_hashes(lines.first[seg] + mid[:, None] * D, backend=lines.be.name)
    bad = xp.flatnonzero(got != hashes[p])
    if bad.shape[0]:
        i, t = int(seg[bad[0]]), float(mid[bad[0]])
        raise InputError(
            f"starts, ends, t_range: the exact walk lost its precision on these lines: at "
            f"t = {t:.6g} on segment {i}, inside a piece, the forward pass's activation "
            f"pattern is not the piece's ({int(bad.shape[0])} of {int(p.shape[0])} pieces "
            "checked): the values along them are too large for float64 crossings at the "
            f"walk's resolution in t ({tol:.3g} over t_range={(t0, t1)}), from lines this "
            "long or weights this large; shorten the segments or narrow t_range"
        )


def _exact(
    lines: _engine.Lines, t0: float, t1: float, chunk_size: int | None
) -> tuple[Any, Any, Any, int]:
    xp, k = lines.be.xp, lines.be.kernels
    all_counts, all_bps, all_hashes = [], [], []
    held = [0]  # pieces kept so far

    def visit(lo: int, hi: int, p: _engine.Pieces) -> None:
        # the results take 16 bytes per piece (a breakpoint, a hash), twice while they are
        # joined at the end: projected from the pieces per segment so far
        held[0] += int(p.seg.shape[0])
        projected = held[0] / hi * lines.m
        check_allocation(
            32 * projected - 16 * held[0],
            f"the results of about {projected:.3g} pieces ({held[0] / hi:.3g} per segment "
            f"in the first {hi} of {lines.m} segments)",
            "starts",
            xp,
        )
        p = _engine.merge_equal(p, xp)
        all_counts.append(xp.bincount(p.seg, minlength=hi - lo).astype(np.int64))
        first = xp.concatenate([xp.ones(1, dtype=bool), p.seg[1:] != p.seg[:-1]])
        all_bps.append(p.t_lo[~first])
        h = xp.empty(p.seg.shape[0], dtype=np.uint64)
        k.hash_patterns(xp.ascontiguousarray(p.codes), h)
        all_hashes.append(h)

    largest = _engine.run(lines, t0, t1, visit, chunk_size=chunk_size, logits=False)
    counts = xp.concatenate(all_counts)
    return counts, xp.concatenate(all_bps), xp.concatenate(all_hashes), largest


def _exact_graph(
    lines: _engine.Lines, t0: float, t1: float, chunk_size: int | None
) -> tuple[Any, Any, Any, int]:
    """The exact walk of a layer graph (max pooling, residual blocks: fastmem._graph)."""
    net = lines.net
    xp, k = lines.be.xp, lines.be.kernels
    tol = _engine.tolerance(net.dtype, t0, t1)
    all_counts, all_bps, all_hashes = [], [], []
    held, largest = 0, 0
    walk = _graph.exact_segments(
        net.layer_graph, lines.first, lines.second, t0, t1, lines.be, tol,
        net.n_pattern_words, chunk_size,
    )  # fmt: skip
    for lo, hi, seg, ta, tb, codes, _, _ in walk:
        largest = max(largest, hi - lo)
        held += int(seg.shape[0])
        projected = held / hi * lines.m
        check_allocation(
            32 * projected - 16 * held,
            f"the results of about {projected:.3g} pieces ({held / hi:.3g} per segment "
            f"in the first {hi} of {lines.m} segments)",
            "starts",
            xp,
        )
        p = _engine.merge_equal(_engine.Pieces(seg, ta, tb, codes), xp)
        all_counts.append(xp.bincount(p.seg, minlength=hi - lo).astype(np.int64))
        first = xp.concatenate([xp.ones(1, dtype=bool), p.seg[1:] != p.seg[:-1]])
        all_bps.append(p.t_lo[~first].astype(net.dtype))
        h = xp.empty(p.seg.shape[0], dtype=np.uint64)
        k.hash_patterns(xp.ascontiguousarray(p.codes), h)
        all_hashes.append(h)
    counts = xp.concatenate(all_counts)
    return counts, xp.concatenate(all_bps), xp.concatenate(all_hashes), largest


def _sampled(
    lines: _engine.Lines, t0: float, t1: float, samples: int, chunk: int
) -> tuple[Any, Any, Any]:
    net, be, A = lines.net, lines.be, lines.first
    xp = be.xp
    dt = net.dtype
    ts = (t0 + (t1 - t0) * (np.arange(samples, dtype=np.float64) / (samples - 1))).astype(dt)
    ts_dev = xp.asarray(ts)
    mids = xp.asarray((ts[1:].astype(np.float64) / 2 + ts[:-1].astype(np.float64) / 2).astype(dt))
    all_counts, all_bps, all_hashes = [], [], []
    for lo in range(0, A.shape[0], chunk):
        hi = min(lo + chunk, A.shape[0])
        D = lines.directions(lo, hi)
        with np.errstate(over="ignore", invalid="ignore"):  # reported by name just below
            X = A[lo:hi, None, :] + ts_dev[None, :, None] * D[:, None, :]
        if not bool(xp.isfinite(X).all()):
            raise InputError(
                f"starts, ends, t_range: points of the segments for t in [{t0:g}, {t1:g}] overflow "
                f"(are not finite in {dt}): the values are too large"
            )
        h = net.pattern_hashes(X.reshape(-1, A.shape[1]), backend=be.name)
        h = h.reshape(hi - lo, samples)
        change = h[:, 1:] != h[:, :-1]
        all_counts.append(1 + change.sum(axis=1).astype(np.int64))
        all_bps.append(xp.broadcast_to(mids, change.shape)[change])
        keep = xp.concatenate([xp.ones((hi - lo, 1), dtype=bool), change], axis=1)
        all_hashes.append(h[keep])
    return xp.concatenate(all_counts), xp.concatenate(all_bps), xp.concatenate(all_hashes)


# ------------------------------------------------------------ distinct patterns
@dataclass(frozen=True)
class DistinctPatterns:
    """Distinct activation regions among a set of points (see :func:`distinct_patterns`).

    Attributes
    ----------
    n_distinct : int
        Number of distinct activation patterns (linear regions) among the rows.
    inverse : array (n,) of int64
        Region index of each row (``hashes[inverse]`` are the rows' hashes).
    hashes : array (n_distinct,) of uint64
        The distinct pattern hashes, sorted.
    counts : array (n_distinct,) of int64
        Rows per region.
    backend : str
    """

    n_distinct: int
    inverse: Any
    hashes: Any
    counts: Any
    backend: str

    @property
    def all_distinct(self) -> bool:
        """True when every row sits in its own region."""
        return self.n_distinct == int(self.inverse.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable(
            {
                "n_distinct": self.n_distinct,
                "inverse": _host(self.inverse),
                "hashes": _host(self.hashes),
                "counts": _host(self.counts),
                "backend": self.backend,
            }
        )


def distinct_patterns(net: Network, X: Any, *, backend: str | None = None) -> DistinctPatterns:
    """How many distinct activation regions the rows of ``X`` occupy.

    Answers "do all training points sit in different linear regions?" (a network that
    memorizes by giving every sample its own region, cf. Hanin & Rolnick 2019).

    Parameters
    ----------
    net : Network
    X : array_like (n, input_dim)
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    DistinctPatterns

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[1.0], [-1.0]]), np.ones((1, 2))],
    ...                                   [np.zeros(2), np.zeros(1)])
    >>> d = fastmem.regions.distinct_patterns(net, np.array([[-2.0], [-1.0], [3.0]]))
    >>> d.n_distinct, d.inverse.tolist()
    (2, [0, 0, 1])
    """
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    net.require_piecewise_linear("distinct_patterns")
    _, be, _, device = net._prepare(X, backend)
    h = net.pattern_hashes(X, backend=be.name)
    xp = be.xp if device == be.device else np
    hashes, inverse, counts = xp.unique(h, return_inverse=True, return_counts=True)
    return DistinctPatterns(
        n_distinct=int(hashes.shape[0]),
        inverse=inverse.reshape(-1).astype(np.int64),
        hashes=hashes,
        counts=counts.astype(np.int64),
        backend=be.name,
    )


# -------------------------------------------------------- distance to boundary
@dataclass(frozen=True)
class BoundaryDistances:
    """Distance of points to the nearest activation boundary (see :func:`distance_to_boundary`).

    Attributes
    ----------
    distance : array (n,)
        ``min over neurons of |z - c| / ||grad_x z||`` (``c`` the neuron's threshold: 0,
        or -1 / +1 for hard-tanh); ``inf`` when no neuron depends on ``x`` locally.
    layer, neuron : array (n,) of int64
        The hidden layer and neuron index (within the layer) attaining it (-1 with inf).
        For a network with a layer graph (max pooling, residual blocks): the state op
        (activation or max pooling, numbered from 0 in execution order) and its element
        (for max pooling the window, whose maximum ties with another entry there:
        ``(z_max - z_i) / ||grad z_max - grad z_i||``).
    exact : array (n,) of bool
        True when that neuron is in the first hidden layer: its boundary is a hyperplane
        and the distance is exact. Deeper neurons use the local linearization (the
        gradient inside the point's region), as in Hanin & Rolnick (2019).
    backend : str
    """

    distance: Any
    layer: Any
    neuron: Any
    exact: Any
    backend: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable(
            {
                "distance": _host(self.distance),
                "layer": _host(self.layer),
                "neuron": _host(self.neuron),
                "exact": _host(self.exact),
                "backend": self.backend,
            }
        )


_DIST_CHUNK_ELEMENTS = 2**22


def distance_to_boundary(net: Network, X: Any, *, backend: str | None = None) -> BoundaryDistances:
    """Per row of ``X``: distance to the nearest activation boundary, and which neuron.

    For hidden neuron ``j`` of layer ``l`` with pre-activation ``z`` the distance is
    ``|z - c| / ||grad_x z||``: exact for the first layer (the boundary is the hyperplane
    ``w_j . x + b_j = c``); for deeper layers the local linearization inside the point's
    linear region (Hanin & Rolnick, "Complexity of linear regions in deep networks",
    ICML 2019, who study the distribution of this distance). Neurons whose gradient is 0
    (behind dead ReLUs, saturated hard-tanh or threshold units) never count.

    Parameters
    ----------
    net : Network
    X : array_like (n, input_dim)
    backend : {"cpp", "numba", "cuda"}, optional
        Where the array work runs (NumPy for cpp / numba, CuPy for cuda).

    Returns
    -------
    BoundaryDistances

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[3.0, 4.0]]), np.ones((1, 1))],
    ...                                   [np.array([-5.0]), np.zeros(1)])
    >>> r = fastmem.regions.distance_to_boundary(net, np.array([[0.0, 0.0], [1.0, 1.0]]))
    >>> r.distance.tolist(), r.exact.tolist()
    ([1.0, 0.4], [True, True])
    """
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    net.require_piecewise_linear("distance_to_boundary")
    X, be, net_dev, device = net._prepare(X, backend)
    if net.layer_graph is not None:  # max pooling / residual blocks: state ops in order
        helpers = (_row_norms, _rescale, _check_layer)
        found = _graph.boundary_distances(net_dev.layer_graph, X, be, helpers)
    else:
        found = _dense_distances(net, net_dev, X, be)
    dist, layer_of, neuron_of = found
    return BoundaryDistances(
        distance=to_device(dist, device),
        layer=to_device(layer_of, device),
        neuron=to_device(neuron_of, device),
        exact=to_device(layer_of == 0, device),
        backend=be.name,
    )


def _dense_distances(net: Network, net_dev: Network, X: Any, be: Any) -> tuple[Any, Any, Any]:
    """:func:`distance_to_boundary` of a dense chain: per row the distance, layer, neuron."""
    xp = be.xp
    n, d = X.shape
    dist = xp.full(n, np.inf, dtype=net.dtype)
    layer_of = xp.full(n, -1, dtype=np.int64)
    neuron_of = xp.full(n, -1, dtype=np.int64)
    widest = max(net.widths[1:-1], default=1)
    rows = max(1, _DIST_CHUNK_ELEMENTS // (widest * d))
    chain = _graph.dense_chain([w.T for w in net_dev.weights], net_dev.biases)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        # Jacobian of the current layer's input w.r.t. x, (r, width, d), kept as J * 2**-e
        # per row (e: jexp) so that products of many small or large weights neither
        # underflow nor overflow; the distances divide the scale back out.
        J = None
        jexp = None

        def hidden(layer: int, z: Any, lo: int = lo, hi: int = hi) -> None:
            nonlocal J, jexp
            W = net_dev.weights[layer]
            with np.errstate(over="ignore", invalid="ignore"):  # reported by name below
                G = W[None] if J is None else xp.einsum("jk,rkd->rjd", W, J)
                gnorm = _row_norms(G, xp)
            _check_layer(z, gnorm, layer)
            gnorm = xp.broadcast_to(gnorm, z.shape)
            name = net.activation[layer]
            gap = threshold_gap(z, ACTIVATIONS[name], xp)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
                dj = xp.where(gnorm > 0, gap / gnorm, np.inf)
                if jexp is not None:
                    dj = xp.ldexp(dj, -jexp[:, None])
            best = dj.argmin(axis=1)
            val = dj[xp.arange(hi - lo), best]
            better = val < dist[lo:hi]
            dist[lo:hi] = xp.where(better, val, dist[lo:hi])
            layer_of[lo:hi] = xp.where(better, layer, layer_of[lo:hi])
            neuron_of[lo:hi] = xp.where(better, best, neuron_of[lo:hi])
            slope = net.negative_slopes[layer]
            deriv = activation_slope(z, ACTIVATIONS[name], slope, xp)
            J = deriv[:, :, None] * G
            J, jexp = _rescale(J, jexp, xp)
            be.kernels.apply_activation(z, ACTIVATIONS[name], slope)

        with np.errstate(over="ignore", invalid="ignore"):  # _check_layer names the layer
            dense_forward(X[lo:hi], chain, hidden, be, check=False, output=False)
    return dist, layer_of, neuron_of


def _row_norms(G: Any, xp: Any) -> Any:
    """Euclidean norms along the last axis; rescaled where the squares overflow (weights
    above ~1e154) or underflow (norms below ``sqrt(tiny / eps)``, ~1e-146 in float64,
    where the squares lose precision or vanish), so that the result is accurate at any
    scale and only a gradient that is itself not finite stays Inf/NaN."""
    with np.errstate(under="ignore"):
        norms = xp.sqrt((G * G).sum(axis=2))
    info = np.finfo(G.dtype)
    if math.isfinite(float(norms.max())) and float(norms.min()) >= math.sqrt(
        float(info.tiny) / float(info.eps)
    ):
        return norms
    scale = xp.abs(G).max(axis=2, keepdims=True)
    scale = xp.where(scale > 0, scale, 1)
    with np.errstate(under="ignore"):
        return scale[..., 0] * xp.sqrt(((G / scale) ** 2).sum(axis=2))


def _rescale(J: Any, jexp: Any, xp: Any) -> tuple[Any, Any]:
    """Scale each row of ``J`` (r, width, d) by a power of two (exact) so that its largest
    entry lies in [0.5, 1), when some row's largest entry is outside [2**-64, 2**64];
    ``jexp`` (r,) accumulates the exponents taken out (``None``: none yet)."""
    if jexp is None:
        jexp = xp.zeros(J.shape[0], dtype=np.int32)
    if J.size == 0:
        return J, jexp
    m = xp.abs(J).reshape(J.shape[0], -1).max(axis=1)
    m = xp.where(m > 0, m, 1)  # rows of zeros (every neuron flat) stay as they are
    if float(m.max()) <= 2.0**64 and float(m.min()) >= 2.0**-64:
        return J, jexp
    _, e = xp.frexp(m)
    e = e.astype(np.int32)
    return xp.ldexp(J, -e[:, None, None]).astype(J.dtype, copy=False), jexp + e


def _check_layer(z: Any, gnorm: Any, layer: int) -> None:
    """``InputError`` naming the layer when its pre-activations or their gradients overflow
    (a min and a max each: NaN and Inf propagate into them)."""
    for what, v in (("pre-activations", z), ("gradients", gnorm)):
        if v.size and not (math.isfinite(float(v.min())) and math.isfinite(float(v.max()))):
            raise InputError(
                f"X: the output of layer {layer} (a hidden layer) overflows ({what} not "
                f"finite in {z.dtype}): the inputs or the weights are too large"
            )

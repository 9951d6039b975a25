"""Linear regions along line segments, distinct activation patterns, boundary distances.

The segment engine (see ``../shared/DESIGN.md``, "The segment engine") follows every
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

Memory
    Segments are processed ``chunk_size`` at a time, in a workspace reused by all chunks
    of a call. Per piece alive at the widest layer it holds the current and the next
    layer's values at the piece's vertex, the GEMM's input and output (``4 * itemsize *
    max_width`` bytes), two generations of pattern words, ``t``, segment index and
    crossing scratch: about ``1.25 * (4 * itemsize * max_width + 8 * (2 * n_pattern_words
    + 5)) * P`` bytes for ``P`` pieces (1.25: each buffer's slack for the next chunk). With
    ``chunk_size=None`` the chunk size adapts: the first chunk has 64 segments, each next
    one is sized from the pieces per segment seen so far so that this stays near 256 MiB
    (a 784-128-128-128-10 ReLU network: about 270 segments of ~190 pieces). Memory is then
    bounded independently of the number of segments (the results themselves take 16 bytes
    per piece). A fixed ``chunk_size`` bounds it by ``chunk_size`` times the largest pieces
    per segment. Large chunks also amortise the per-call cost of the BLAS and OpenMP
    thread pools.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import Backend, kernels_own_the_cores, row_parallel_matmul, to_device
from ._kinds import ACTIVATIONS, bits_per_neuron
from .errors import InputError
from .network import Network

__all__ = [
    "BoundaryDistances",
    "DistinctPatterns",
    "Ragged",
    "SegmentRegions",
    "along_segments",
    "distance_to_boundary",
    "distinct_patterns",
]

_FIRST_CHUNK = 64
_MAX_CHUNK = 2**16
_CHUNK_BYTES = 256 * 2**20
_SAMPLED_CHUNK_BYTES = 64 * 2**20
# Merge tolerance in units of eps: float64 crossings are accurate to a few ulps, so 128
# merges only true ties; float32 regions are narrower relative to eps, so merge less.
_TOL_ULPS = {np.dtype(np.float64): 128, np.dtype(np.float32): 8}


class _Chunker:
    """Segment ranges ``(lo, hi)``: ``chunk_size`` at a time, or (None) adapted so that
    the pieces alive in one chunk take about ``_CHUNK_BYTES``, from the pieces per segment
    seen in the previous chunks (the first chunk has ``_FIRST_CHUNK`` segments)."""

    def __init__(self, net: Network, m: int, chunk_size: int | None) -> None:
        self.fixed = chunk_size
        self.size = chunk_size or _FIRST_CHUNK
        self.m = m
        self.largest = 0
        width = max(net.widths[1:-1], default=1)
        item = net.dtype.itemsize
        # per vertex, the engine's workspace holds the current and the next layer's values,
        # the GEMM's input and output, two generations of pattern words, t and segment
        # index, and crossing scratch; each buffer with 25% slack (_Workspace.take)
        self.piece_bytes = 1.25 * (4 * item * width + 8 * (2 * net.n_pattern_words + 5))
        self.input_cap = max(1, _CHUNK_BYTES // (4 * item * net.widths[0]))

    def __iter__(self) -> Any:
        lo = 0
        while lo < self.m:
            hi = min(lo + self.size, self.m)
            self.largest = max(self.largest, hi - lo)
            yield lo, hi
            lo = hi

    def observe(self, n_pieces: int, n_segments: int) -> None:
        if self.fixed is None:
            per = max(1.0, n_pieces / max(n_segments, 1))
            size = int(_CHUNK_BYTES / (self.piece_bytes * per))
            self.size = max(1, min(size, _MAX_CHUNK, self.input_cap))


class _Workspace:
    """Scratch arrays of the segment engine, reused across its layers and chunks.

    A fresh large array costs a page fault per page on first touch (on a VM that can take as
    long as the kernels that fill it), so every array whose size follows the number of
    pieces is a view into a buffer kept here under a slot name. A slot's array is valid until
    the slot is taken again; results that leave the engine are copied. One workspace serves
    one network (it also keeps that network's transposed weights).
    """

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.buffers: dict[str, Any] = {}
        self._weights_t: dict[int, Any] = {}

    def weights_t(self, net: Network, layer: int) -> Any:
        """``[W | b]^T`` of one layer, C-contiguous ``(fan_in + 1, fan_out)``, made once per
        call: it multiplies vertex values that end in a column of ones, and its rows are
        the columns of ``W`` that the rank-1 updates add."""
        if layer not in self._weights_t:
            W, b = net.weights[layer], net.biases[layer]
            self._weights_t[layer] = self.xp.ascontiguousarray(
                self.xp.concatenate([W, b[:, None]], axis=1).T
            )
        return self._weights_t[layer]

    def take(self, slot: str, shape: tuple[int, ...], dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        buf = self.buffers.get(slot)
        if buf is None or buf.nbytes < nbytes:
            del buf  # free the old buffer before the larger one is allocated
            self.buffers.pop(slot, None)
            # 25% slack: the next chunk is usually a little larger
            buf = self.xp.empty(nbytes + nbytes // 4 + 64, dtype=np.uint8)
            self.buffers[slot] = buf
        return buf[:nbytes].view(dtype).reshape(shape)


def _host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") else np.asarray(x)


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
        return {"values": _host(self.values).tolist(), "offsets": _host(self.offsets).tolist()}


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
        return {
            "counts": _host(self.counts).tolist(),
            "breakpoints": self.breakpoints.to_dict(),
            "pattern_hashes": self.pattern_hashes.to_dict(),
            "backend": self.backend,
            "method": self.method,
            "t_range": list(self.t_range),
            "samples": self.samples,
            "chunk_size": self.chunk_size,
        }


@dataclass(frozen=True)
class _Pieces:
    """Internal: the pieces of one chunk, sorted by (segment, t).

    Piece ``i`` spans ``[t_lo[i], t_hi[i]]`` of segment ``seg[i]``; with logits, the
    output at its ends is ``logits_lo[i]`` and ``logits_hi[i]`` (affine in between).
    """

    seg: Any
    t_lo: Any
    t_hi: Any
    codes: Any
    logits_lo: Any = field(default=None)
    logits_hi: Any = field(default=None)


# ------------------------------------------------------------------ validation
def _check_t_range(t_range: Any) -> tuple[float, float]:
    try:
        t0, t1 = (float(v) for v in t_range)
    except (TypeError, ValueError) as exc:
        raise InputError(f"t_range: must be a pair of numbers (t0, t1), got {t_range!r}") from exc
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise InputError(f"t_range: must be finite, got {t_range!r}")
    if not t0 < t1:
        raise InputError(f"t_range: needs t0 < t1, got {t_range!r}")
    return t0, t1


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _tolerance(dtype: np.dtype, t0: float, t1: float) -> float:
    return _TOL_ULPS[np.dtype(dtype)] * float(np.finfo(dtype).eps) * max(abs(t0), abs(t1), t1 - t0)


def _prepare_lines(
    net: Network, first: Any, second: Any, names: tuple[str, str], backend: str | None
) -> tuple[Any, Any, Backend, Network, str]:
    """Validate two (m, d) arrays on the network's device; returns them on the backend's."""
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    A, be, net_dev, device = _renamed(net._prepare, names[0], first, backend)
    B, _, _, _ = _renamed(net._prepare, names[1], second, be.name)
    if A.shape != B.shape:
        raise InputError(f"{names[1]}: has shape {B.shape} but {names[0]} has shape {A.shape}")
    return A, B, be, net_dev, device


def _renamed(fn: Any, name: str, *args: Any) -> Any:
    """Call Network._prepare, naming the caller's argument instead of ``X`` in errors."""
    try:
        return fn(*args)
    except InputError as exc:
        msg = str(exc)
        if msg.startswith("X:"):
            raise InputError(name + msg[1:]) from exc
        raise


# ------------------------------------------------------------------ the engine
def _split(
    net: Network,
    be: Backend,
    A: Any,
    D: Any,
    t0: float,
    t1: float,
    tol: float,
    *,
    logits: bool,
    ws: _Workspace | None = None,
) -> _Pieces:
    """Cut the segments ``A + t D`` (rows) into pieces through all hidden layers.

    Pieces are stored by their vertices (see cpp/include/fastmem/regions.hpp): segment
    ``s`` with ``P_s`` pieces owns ``P_s + 1`` consecutive vertices. Each hidden layer is
    three kernel passes that cut the pieces at the layer's crossings; the next layer's
    pre-activations are then one GEMM over the vertices the layer started with and a
    fourth pass that carries them to the new vertices (rank-1 updates, no GEMM row per
    breakpoint). With ``logits`` the output layer is applied too. Scratch comes from
    ``ws`` (pass one workspace to every chunk of a call); the result owns its arrays.
    """
    xp, k = be.xp, be.kernels
    ws = ws or _Workspace(xp)
    dt = net.dtype
    m = A.shape[0]
    n_words = net.n_pattern_words
    pseg = xp.arange(m, dtype=np.int64)
    vt = xp.tile(xp.asarray([t0, t1], dtype=dt), m)
    codes = xp.zeros((m, n_words), dtype=np.uint64)
    # Vertex values carry a last column of ones: the bias rides in the GEMM (W | b).
    d = A.shape[1]
    H = ws.take("h", (2 * m, d + 1), dt)
    H[0::2, :d] = A if t0 == 0.0 else A + dt.type(t0) * D  # exact start points at t0 = 0
    H[1::2, :d] = A + dt.type(t1) * D
    H[:, d] = 1
    W0 = ws.weights_t(net, 0)
    Z = row_parallel_matmul(H, W0, be, out=ws.take("z0", (2 * m, W0.shape[1]), dt))
    bit = 0
    step = False
    n_hidden = net.n_layers - 1
    n_bp = None  # the crossing counts of the layer's pieces, when the last pass gave them
    for layer in range(n_hidden):
        name = net.activation[layer]
        kind = ACTIVATIONS[name]
        slope = net.negative_slopes[layer]
        n, width = pseg.shape[0], Z.shape[1]
        if n_bp is None:
            n_bp = ws.take("counts" + str(layer % 2), (n,), np.int64)
            k.count_crossings(Z, pseg, kind, n_bp)
        offsets = ws.take("offsets", (n + 1,), np.int64)
        offsets[0] = 0
        xp.cumsum(n_bp, out=offsets[1:])
        total = int(offsets[-1])
        buf = ws.take("buf", (total,), dt)
        k.collect_crossings(Z, vt, pseg, kind, tol, offsets, buf, n_bp)
        child = ws.take("child", (n + 1,), np.int64)
        child[0] = 0
        n_bp += 1
        xp.cumsum(n_bp, out=child[1:])
        nc = int(child[-1])
        # A threshold layer makes everything after it constant on each piece (and the
        # network discontinuous, so vertex values are not shared): cut at its crossings,
        # then read the whole pattern and the logits at the pieces' midpoints.
        step = name == "threshold"
        next_values = (logits or layer < n_hidden - 1) and not step
        # The activations at the current (old) vertices, for the next layer's GEMM.
        H = ws.take("h", (Z.shape[0] if next_values else 0, width + 1), dt)
        side = str(layer % 2)  # ping-pong: the new arrays never overwrite the current ones
        new_vt = ws.take("vt" + side, (nc + m,), dt)
        new_seg = ws.take("seg" + side, (nc,), np.int64)
        new_codes = ws.take("codes" + side, (nc, n_words), np.uint64)
        scratch = ws.take("scratch", (2 * total,), np.int64)
        k.emit_pieces(
            Z, vt, pseg, codes, buf, offsets, child, kind, slope, bit, next_values,
            new_vt, new_seg, new_codes, H, scratch,
        )  # fmt: skip
        if next_values:
            wt = ws.weights_t(net, layer + 1)  # (width + 1, next)
            Z_old = row_parallel_matmul(
                H, wt, be, out=ws.take("zold", (H.shape[0], wt.shape[1]), dt)
            )
            other = str((layer + 1) % 2)
            Z_new = ws.take("z" + other, (nc + m, wt.shape[1]), dt)
            # the next hidden layer's crossing counts come with its values
            kind_next = ACTIVATIONS[net.activation[layer + 1]] if layer + 1 < n_hidden else -1
            next_counts = ws.take("counts" + other, (nc if kind_next >= 0 else 0,), np.int64)
            k.next_preactivations(
                Z, vt, pseg, buf, offsets, child, kind, slope, wt, Z_old, scratch, Z_new,
                kind_next, next_counts,
            )  # fmt: skip
            Z = Z_new
            n_bp = next_counts if kind_next >= 0 else None
        vt, pseg, codes = new_vt, new_seg, new_codes
        bit += width * bits_per_neuron(ACTIVATIONS[name])
        if step:
            break
    left = xp.arange(pseg.shape[0], dtype=np.int64) + pseg
    t_lo, t_hi = vt[left], vt[left + 1]
    pseg = pseg.copy()  # out of the workspace
    if step:
        mid = t_lo + (t_hi - t_lo) / 2
        X = A[pseg] + mid[:, None] * D[pseg]
        codes = xp.zeros((pseg.shape[0], n_words), dtype=np.uint64)
        out = net._propagate(X, be, codes=codes, output=logits)
        return _Pieces(pseg, t_lo, t_hi, codes, out, out)
    codes = codes.copy()
    if logits:  # Z: the output layer at the final vertices
        return _Pieces(pseg, t_lo, t_hi, codes, Z[left], Z[left + 1])
    return _Pieces(pseg, t_lo, t_hi, codes)


def _merge_equal(p: _Pieces, xp: Any) -> _Pieces:
    """Merge adjacent pieces of one segment whose patterns are identical."""
    n = p.seg.shape[0]
    if n < 2:
        return p
    same = p.seg[1:] == p.seg[:-1]
    if p.codes.shape[1]:
        same &= (p.codes[1:] == p.codes[:-1]).all(axis=1)
    if not bool(same.any()):
        return p
    keep_first = xp.concatenate([xp.ones(1, dtype=bool), ~same])
    keep_last = xp.concatenate([~same, xp.ones(1, dtype=bool)])
    return _Pieces(p.seg[keep_first], p.t_lo[keep_first], p.t_hi[keep_last], p.codes[keep_first])


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
        ``samples`` < 2 or given with ``"exact"``, ``chunk_size`` < 1.

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
    t0, t1 = _check_t_range(t_range)
    if method not in ("exact", "sampled"):
        raise InputError(f"method: must be 'exact' or 'sampled', got {method!r}")
    if method == "exact" and samples is not None:
        raise InputError("samples: only used with method='sampled'")
    if method == "sampled":
        samples = 1000 if samples is None else _check_positive_int(samples, "samples", 2)
    if chunk_size is not None:
        chunk_size = _check_positive_int(chunk_size, "chunk_size")
    A, B, be, net_dev, device = _prepare_lines(net, starts, ends, ("starts", "ends"), backend)
    net.require_piecewise_linear("along_segments")
    xp = be.xp
    m = A.shape[0]
    if method == "exact":
        chunker = _Chunker(net, m, chunk_size)
        with kernels_own_the_cores(be):
            counts, bps, hashes = _exact(net_dev, be, A, B, t0, t1, chunker)
        chunk = chunker.largest
    else:
        assert samples is not None
        per_seg = samples * max(net.widths) * net.dtype.itemsize
        chunk = chunk_size or max(1, _SAMPLED_CHUNK_BYTES // per_seg)
        counts, bps, hashes = _sampled(net_dev, be, A, B, t0, t1, samples, chunk)
    assert counts.shape[0] == m
    bp_off = _offsets(counts - 1, xp)
    h_off = _offsets(counts, xp)
    return SegmentRegions(
        counts=to_device(counts, device),
        breakpoints=Ragged(to_device(bps, device), to_device(bp_off, device)),
        pattern_hashes=Ragged(to_device(hashes, device), to_device(h_off, device)),
        backend=be.name,
        method=method,
        t_range=(t0, t1),
        samples=samples,
        chunk_size=chunk,
    )


def _exact(
    net: Network, be: Backend, A: Any, B: Any, t0: float, t1: float, chunker: _Chunker
) -> tuple[Any, Any, Any]:
    xp, k = be.xp, be.kernels
    tol = _tolerance(net.dtype, t0, t1)
    all_counts, all_bps, all_hashes = [], [], []
    ws = _Workspace(xp)
    for lo, hi in chunker:
        p = _split(net, be, A[lo:hi], B[lo:hi] - A[lo:hi], t0, t1, tol, logits=False, ws=ws)
        chunker.observe(p.seg.shape[0], hi - lo)
        p = _merge_equal(p, xp)
        all_counts.append(xp.bincount(p.seg, minlength=hi - lo).astype(np.int64))
        first = xp.concatenate([xp.ones(1, dtype=bool), p.seg[1:] != p.seg[:-1]])
        all_bps.append(p.t_lo[~first])
        h = xp.empty(p.seg.shape[0], dtype=np.uint64)
        k.hash_patterns(xp.ascontiguousarray(p.codes), h)
        all_hashes.append(h)
    return xp.concatenate(all_counts), xp.concatenate(all_bps), xp.concatenate(all_hashes)


def _sampled(
    net: Network, be: Backend, A: Any, B: Any, t0: float, t1: float, samples: int, chunk: int
) -> tuple[Any, Any, Any]:
    xp = be.xp
    dt = net.dtype
    ts = (t0 + (t1 - t0) * (np.arange(samples, dtype=np.float64) / (samples - 1))).astype(dt)
    ts_dev = xp.asarray(ts)
    mids = xp.asarray((ts[1:].astype(np.float64) / 2 + ts[:-1].astype(np.float64) / 2).astype(dt))
    all_counts, all_bps, all_hashes = [], [], []
    for lo in range(0, A.shape[0], chunk):
        hi = min(lo + chunk, A.shape[0])
        X = A[lo:hi, None, :] + ts_dev[None, :, None] * (B[lo:hi] - A[lo:hi])[:, None, :]
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
        return {
            "n_distinct": self.n_distinct,
            "inverse": _host(self.inverse).tolist(),
            "hashes": _host(self.hashes).tolist(),
            "counts": _host(self.counts).tolist(),
            "backend": self.backend,
        }


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
        return {
            "distance": _host(self.distance).tolist(),
            "layer": _host(self.layer).tolist(),
            "neuron": _host(self.neuron).tolist(),
            "exact": _host(self.exact).tolist(),
            "backend": self.backend,
        }


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
    xp = be.xp
    n, d = X.shape
    dist = xp.full(n, np.inf, dtype=net.dtype)
    layer_of = xp.full(n, -1, dtype=np.int64)
    neuron_of = xp.full(n, -1, dtype=np.int64)
    widest = max(net.widths[1:-1], default=1)
    rows = max(1, _DIST_CHUNK_ELEMENTS // (widest * d))
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        h = X[lo:hi]
        J = None  # Jacobian of the current layer's input w.r.t. x: (r, width, d)
        for layer in range(net.n_layers - 1):
            W, b = net_dev.weights[layer], net_dev.biases[layer]
            z = h @ W.T + b
            G = W[None] if J is None else xp.einsum("jk,rkd->rjd", W, J)
            gnorm = xp.sqrt((G * G).sum(axis=2))
            gnorm = xp.broadcast_to(gnorm, z.shape)
            name = net.activation[layer]
            gap = xp.minimum(xp.abs(z + 1), xp.abs(z - 1)) if name == "hardtanh" else xp.abs(z)
            with np.errstate(divide="ignore", invalid="ignore"):
                dj = xp.where(gnorm > 0, gap / gnorm, np.inf)
            best = dj.argmin(axis=1)
            val = dj[xp.arange(hi - lo), best]
            better = val < dist[lo:hi]
            dist[lo:hi] = xp.where(better, val, dist[lo:hi])
            layer_of[lo:hi] = xp.where(better, layer, layer_of[lo:hi])
            neuron_of[lo:hi] = xp.where(better, best, neuron_of[lo:hi])
            slope = net.negative_slopes[layer]
            if name == "relu":
                deriv = (z > 0).astype(z.dtype)
            elif name == "leaky_relu":
                deriv = xp.where(z > 0, 1.0, slope).astype(z.dtype)
            elif name == "hardtanh":
                deriv = ((z > -1) & (z < 1)).astype(z.dtype)
            else:
                deriv = xp.zeros_like(z)
            J = deriv[:, :, None] * G
            h = z
            be.kernels.apply_activation(h, ACTIVATIONS[name], slope)
    return BoundaryDistances(
        distance=to_device(dist, device),
        layer=to_device(layer_of, device),
        neuron=to_device(neuron_of, device),
        exact=to_device(layer_of == 0, device),
        backend=be.name,
    )

"""The segment engine: line segments through a network, cut where it stops being affine.

Shared by :mod:`fastmem.regions` (pieces, counts, pattern hashes along segments) and
:mod:`fastmem.intervals` (generalization intervals from the logits on each piece). See
``docs/DESIGN.md`` ("The segment engine") and ``cpp/include/fastmem/regions.hpp`` for the
algorithm; the regions module's docstring documents ties, tolerances and memory.

Internal interface (what regions, intervals and the tests call; nothing else here is
meant to be used from outside):

``check_t_range(t_range)``, ``check_positive_int(value, name, minimum=1)``
    Validate the engine's parameters (``InputError`` naming the argument).
``prepare_lines(net, first, second, names, backend, *, second_is)``
    Validate the two ``(m, d)`` arrays of the lines (``second_is="end"``: segments
    ``first -> second``; ``"direction"``: lines ``first + t second``) -> :class:`Lines`.
``run(lines, t0, t1, visit, *, chunk_size, logits)``
    Cut every line into its pieces, a chunk of lines at a time (memory stays bounded),
    calling ``visit(lo, hi, pieces)`` for lines ``lo:hi``; returns the largest chunk.
    The CPU's cores belong to the engine meanwhile (``kernels_own_the_cores``).
``split(net, be, A, D, t0, t1, *, logits, ws=None)``
    One chunk: the :class:`Pieces` of the lines ``A + t D``, ``t in [t0, t1]``.
``merge_equal(pieces, xp)``
    Merge adjacent pieces of one line with identical activation patterns.
``tolerance(dtype, t0, t1)``
    The tie / merge tolerance in ``t`` (see :mod:`fastmem.regions`).

Non-finite values: ``InputError`` names the layer whose pre-activations (the GEMM's and
the carried ones) overflow. The limit is ``finfo(dtype).max / 8``, not ``inf``: the
kernels take differences and interpolate between a piece's two ends, which must not
overflow either. The first layer is read once per chunk (a min and a max); a deeper
layer only when a bound from the weights cannot exclude overflow (``_check_layer``), so
the check costs next to nothing on ordinary networks.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _graph, _validate
from ._backend import Backend
from ._kinds import ACTIVATIONS, bits_per_neuron, carry_snap, snap_to_thresholds
from ._threads import (
    cpu_threads,
    kernel_threads,
    kernels_callable_side_by_side,
    kernels_own_the_cores,
    row_parallel_matmul,
)
from ._validate import check_allocation, format_bytes
from ._validate import positive_int as check_positive_int
from .errors import InputError
from .network import Network

__all__ = [
    "Chunker",
    "Lines",
    "Pieces",
    "Workspace",
    "check_positive_int",
    "check_t_range",
    "merge_equal",
    "prepare_lines",
    "run",
    "split",
    "tolerance",
]

_FIRST_CHUNK = 64
_TAIL_CHUNK = 8
_MAX_CHUNK = 2**16
_CHUNK_BYTES = 64 * 2**20
# Merge tolerance in units of eps: float64 crossings are accurate to a few ulps, so 128
# merges only true ties; float32 regions are narrower relative to eps, so merge less.
_TOL_ULPS = {np.dtype(np.float64): 128, np.dtype(np.float32): 8}


class Chunker:
    """Segment ranges ``(lo, hi)``: ``chunk_size`` at a time, or (None) adapted so that
    the pieces alive in one chunk take about ``_CHUNK_BYTES``, from the pieces per segment
    seen in the previous chunks (the first chunk has ``_FIRST_CHUNK`` segments), and
    smaller near the end (a quarter of the segments left, at least ``_TAIL_CHUNK``)."""

    def __init__(self, net: Network, m: int, chunk_size: int | None) -> None:
        self.fixed = chunk_size
        self.size = chunk_size or _FIRST_CHUNK
        self.m = m
        self.largest = 0
        width = max(net.widths[1:-1], default=1)
        item = net.dtype.itemsize
        # per vertex, the engine's workspace holds the current and the next layer's values,
        # the GEMM's input and output, two generations of pattern words, t and segment
        # index, and crossing scratch; each buffer with 25% slack (Workspace.take)
        self.piece_bytes = 1.25 * (4 * item * width + 8 * (2 * net.n_pattern_words + 5))
        self.input_cap = max(1, _CHUNK_BYTES // (4 * item * net.widths[0]))

    def __iter__(self) -> Any:
        lo = 0
        while lo < self.m:
            left = self.m - lo
            step = self.size
            if self.fixed is None:
                # Near the end chunks shrink (a quarter of what is left, at least
                # _TAIL_CHUNK), so that chunks cut side by side end close together. Sizes
                # still depend on nothing but the pieces and the segments left, so neither
                # do the results.
                step = min(step, max(-(-left // 4), _TAIL_CHUNK))
            hi = lo + min(step, left)
            self.largest = max(self.largest, hi - lo)
            yield lo, hi
            lo = hi

    def observe(self, n_pieces: int, n_segments: int) -> None:
        if self.fixed is None:
            per = max(1.0, n_pieces / max(n_segments, 1))
            size = int(_CHUNK_BYTES / (self.piece_bytes * per))
            self.size = max(1, min(size, _MAX_CHUNK, self.input_cap))


class Workspace:
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
        self._row_bound: dict[int, float] = {}
        self._abs_sums: dict[int, tuple[Any, Any]] = {}

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

    def abs_sums(self, net: Network, layer: int) -> tuple[Any, Any]:
        """``sum_j |W_kj|`` per neuron and ``|b|`` of one layer, made once per call (an
        ``abs`` of the whole matrix per chunk is a fresh array as large as the layer's
        weights: page faults on every chunk)."""
        if layer not in self._abs_sums:
            wt = self.weights_t(net, layer)
            self._abs_sums[layer] = (self.xp.abs(wt[:-1]).sum(axis=0), self.xp.abs(wt[-1]))
        return self._abs_sums[layer]

    def row_bound(self, net: Network, layer: int) -> float:
        """``max_k sum_j |W_kj| + |b_k|`` of one layer (the bound that ``_check_layer``
        carries from layer to layer), made once per call."""
        if layer not in self._row_bound:
            wt = self.weights_t(net, layer)  # [W | b]^T: one row sum per column
            with np.errstate(over="ignore"):  # an Inf bound only means: check the values
                self._row_bound[layer] = float(self.xp.abs(wt).sum(axis=0).max())
        return self._row_bound[layer]

    def growth(self, sizes: dict[str, int]) -> int:
        """Bytes that taking the slots ``sizes`` (bytes each) would add to the workspace."""
        grow = 0
        for slot, nbytes in sizes.items():
            buf = self.buffers.get(slot)
            have = 0 if buf is None else buf.nbytes
            if have < nbytes:
                grow += nbytes + nbytes // 4 + 64 - have
        return grow

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


@dataclass(frozen=True)
class Pieces:
    """The pieces of one chunk of lines, sorted by (line, t).

    Piece ``i`` spans ``[t_lo[i], t_hi[i]]`` of line ``seg[i]`` (an index into the
    chunk) and has the packed activation pattern ``codes[i]`` (the bit layout of
    :meth:`Network.activation_patterns`); with logits, the output at its ends is
    ``logits_lo[i]`` and ``logits_hi[i]`` (affine in between).
    """

    seg: Any
    t_lo: Any
    t_hi: Any
    codes: Any
    logits_lo: Any = field(default=None)
    logits_hi: Any = field(default=None)


# ------------------------------------------------------------------ validation
def check_t_range(t_range: Any) -> tuple[float, float]:
    """``(t0, t1)`` as floats: finite, ``t0 < t1``; ``InputError`` naming ``t_range``."""
    try:
        t0, t1 = (float(v) for v in t_range)
    except (TypeError, ValueError) as exc:
        raise InputError(f"t_range: must be a pair of numbers (t0, t1), got {t_range!r}") from exc
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise InputError(f"t_range: must be finite, got {t_range!r}")
    if not t0 < t1:
        raise InputError(f"t_range: needs t0 < t1, got {t_range!r}")
    return t0, t1


def tolerance(dtype: Any, t0: float, t1: float) -> float:
    """Crossings closer than this (in ``t``) are one breakpoint (regions module docstring)."""
    return _TOL_ULPS[np.dtype(dtype)] * float(np.finfo(dtype).eps) * max(abs(t0), abs(t1), t1 - t0)


@dataclass(frozen=True)
class Lines:
    """Validated lines on the backend's device (see :func:`prepare_lines`).

    ``first`` holds the lines' points at ``t = 0``; ``second`` their ends at ``t = 1``
    (``second_is="end"``) or their directions (``"direction"``). ``net`` is the network
    on the backend's device, ``device`` the caller's (where results go back to).
    """

    first: Any
    second: Any
    second_is: str
    names: tuple[str, str]
    be: Backend
    net: Network
    device: str

    @property
    def m(self) -> int:
        return int(self.first.shape[0])

    def directions(self, lo: int, hi: int) -> Any:
        """The direction ``D`` of lines ``lo:hi`` (``end - start`` for segments, checked
        for overflow)."""
        if self.second_is == "direction":
            return self.second[lo:hi]
        with np.errstate(over="ignore", invalid="ignore"):
            D = self.second[lo:hi] - self.first[lo:hi]
        if not _within(D, np.finfo(D.dtype).max):
            a, b = self.names
            raise InputError(f"{b}: {b} - {a} overflows (is not finite): the values are too large")
        return D


def prepare_lines(
    net: Network,
    first: Any,
    second: Any,
    names: tuple[str, str],
    backend: str | None,
    *,
    second_is: str = "end",
) -> Lines:
    """Validate two (m, d) arrays on the network's device; returns them on the backend's."""
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    A, be, net_dev, device = _renamed(net._prepare, names[0], first, backend)
    B, _, _, _ = _renamed(net._prepare, names[1], second, be.name)
    if A.shape != B.shape:
        raise InputError(f"{names[1]}: has shape {B.shape} but {names[0]} has shape {A.shape}")
    return Lines(A, B, second_is, names, be, net_dev, device)


def _renamed(fn: Any, name: str, *args: Any) -> Any:
    """Call Network._prepare, naming the caller's argument instead of ``X`` in errors."""
    try:
        return fn(*args)
    except InputError as exc:
        msg = str(exc)
        if msg.startswith("X:"):
            raise InputError(name + msg[1:]) from exc
        raise


def _within(x: Any, bound: float) -> bool:
    """All of ``x`` in ``[-bound, bound]`` (NaN fails): a min and a max, no temporary."""
    if x.size == 0:
        return True
    return bool(-bound <= float(x.min())) and bool(float(x.max()) <= bound)


def _max_abs(x: Any) -> float:
    """``max |x|`` (NaN if any is NaN) from a min and a max, no temporary."""
    if x.size == 0:
        return 0.0
    lo, hi = float(x.min()), float(x.max())
    return max(-lo, hi) if lo <= hi else float("nan")


def _check_layer(
    Z: Any, layer: int, net: Network, ws: Workspace, known: float, names: tuple[str, str]
) -> float:
    """``InputError`` naming the layer when its pre-activations ``Z`` overflow; returns a
    bound on ``|Z|``.

    ``known`` bounds the previous layer's pre-activations. Post-activations are at most
    ``max(known, 1)`` in size (times a leaky slope above 1: every activation is zero at
    zero and that Lipschitz, or bounded by 1), so ``|Z| <= row_bound * max(known, 1)``
    with ``row_bound = max_k sum_j |W_kj| + |b_k|``: when that (with a factor 2 for
    rounding) is within the engine's range the
    layer cannot overflow and is not read at all. Only the first layer (whose input is
    the data) and layers past that bound cost a min and a max over ``Z``.
    """
    limit = float(np.finfo(net.dtype).max) / 8
    if layer > 0:
        gain = max(1.0, abs(net.negative_slopes[layer - 1]))  # leaky slopes may exceed 1
        implied = ws.row_bound(net, layer) * max(known, 1.0) * gain
        if 2 * implied <= limit:
            return implied
    seen = _max_abs(Z)
    if not seen <= limit:  # also NaN
        what = "the output layer" if layer == net.n_layers - 1 else "a hidden layer"
        raise InputError(
            f"{names[0]}, {names[1]}: the output of layer {layer} ({what}) overflows (is not "
            f"finite, or beyond +-{limit:.3g} where the segment engine's differences "
            f"overflow, in {net.dtype}): the inputs ({names[0]}, {names[1]}, t_range) or the "
            "weights (net) are too large"
        )
    return seen


def _check_pieces(
    net: Network, ws: Workspace, layer: int, m: int, n: int, total: int, rows: int, values: bool
) -> None:
    """`InputError` before a layer's pieces are allocated when they cannot fit.

    ``n`` pieces (``rows`` vertices) of ``m`` lines meet ``total`` crossings at hidden
    layer ``layer``: the ``n + total`` new pieces need the slots :func:`split` takes next
    (their growth over the workspace's buffers, slack included).
    """
    nc = n + total
    item = net.dtype.itemsize
    width = net.widths[layer + 1]
    nxt = net.widths[layer + 2] if values else 0
    words = 8 * net.n_pattern_words
    grow = ws.growth(
        {
            "buf": total * item,
            "child": (n + 1) * 8,
            "h": (rows if values else 0) * (width + 1) * item,
            "vt" + str(layer % 2): (nc + m) * item,
            "seg" + str(layer % 2): nc * 8,
            "codes" + str(layer % 2): nc * words,
            "scratch": 2 * total * 8,
            "zold": (rows if values else 0) * nxt * item,
            "z" + str((layer + 1) % 2): (nc + m if values else 0) * nxt * item,
            "counts" + str((layer + 1) % 2): nc * 8,
        }
    )
    check_allocation(
        grow,
        f"the {nc} pieces of {m} line(s) at hidden layer {layer} (the exact segment engine "
        "holds one chunk of lines at a time; chunk_size bounds the lines, not their pieces)",
        "net",
        ws.xp,
    )


def _snap(Z: Any, H: Any, net: Network, ws: Workspace, layer: int, kernels: Any) -> None:
    """Pre-activations of hidden layer ``layer`` at vertices (``H``: the vertex values with
    their column of ones), read as the forward pass reads them: on a threshold where
    rounding cannot tell them from it."""
    wt = ws.weights_t(net, layer)  # [W | b]^T
    kind = ACTIVATIONS[net.activation[layer]]
    w_abs, b_abs = ws.abs_sums(net, layer)
    snap_to_thresholds(Z, H, wt.shape[0] - 1, w_abs, b_abs, kind, kernels)


# The projection refuses only after this many layers of steady growth, and only when one
# line alone would need this many times the memory available.
_PROJECT_AFTER = 3
_PROJECT_FACTOR = 16


def _check_projection(
    net: Network, layer: int, m: int, pieces: int, growth: float, grown: int, xp: Any
) -> None:
    """`InputError` when the pieces, growing as they have so far, cannot fit at the end.

    After :data:`_PROJECT_AFTER` layers (past the first) in which the pieces of every line
    have grown by at least ``growth`` per layer, project that growth over the remaining
    hidden layers: if ONE line would then need more than :data:`_PROJECT_FACTOR` times the
    memory available, refuse now instead of computing the layers up to the one that no
    longer fits (Telgarsky's sawtooth doubles its pieces at every layer: sawtooth(34) is
    refused at its fourth layer). Random networks' growth per layer falls with depth
    (Hanin & Rolnick: pieces along a line grow about linearly in the neurons), so their
    projections stay small.
    """
    remaining = net.n_layers - 2 - layer
    if grown < _PROJECT_AFTER or remaining <= 0 or growth < 1.5:
        return
    per_line = pieces / m * growth**remaining
    item = net.dtype.itemsize
    widest = max(net.widths[layer + 1 :])
    need = 1.25 * (4 * item * widest + 8 * (2 * net.n_pattern_words + 5)) * per_line
    have, source = _validate.available_memory(xp)
    if need > _PROJECT_FACTOR * have:
        raise InputError(
            f"net: the pieces of each line have grown at least {growth:.2f}x per layer over "
            f"layers 1-{layer}; at that rate one line would have about {per_line:.3g} pieces "
            f"after the {net.n_layers - 1} hidden layers, needing about {format_bytes(need)} "
            f"(available: {format_bytes(have)}, {source}); refused before computing them"
        )


# ------------------------------------------------------------------ the engine
# Chunks are cut, visited and observed in order, with this many in flight: chunk j's size
# comes from the pieces of the chunks before j - _IN_FLIGHT + 1. A constant (not the
# number of threads) so that the chunks, and hence every rounding of the GEMMs over them,
# are the same on every backend and thread count. _SIDE_BY_SIDE of them are cut at once;
# one more waits queued, so that a worker that finishes starts its next chunk at once
# instead of waiting for the calling thread to visit the oldest one (~10% of the time).
_IN_FLIGHT = 3
_SIDE_BY_SIDE = 2


def run(
    lines: Lines,
    t0: float,
    t1: float,
    visit: Callable[[int, int, Pieces], None],
    *,
    chunk_size: int | None,
    logits: bool,
) -> int:
    """Cut every line into pieces, ``visit(lo, hi, pieces)`` per chunk of lines ``lo:hi``.

    ``chunk_size=None`` adapts the chunks to the memory budget (:class:`Chunker`).
    ``visit`` is called in the order of the chunks, from the calling thread. On a CPU
    backend whose kernels two threads may call at once (C++; Numba with its omp or tbb
    threading layer) with two or more threads, ``_SIDE_BY_SIDE`` chunks are cut side by side,
    each on its own share of the threads (its GEMMs and kernels on one core on a 2-core
    machine): chunks are independent, so this needs no synchronisation inside a chunk,
    where a chunk's many short kernel passes and GEMMs each cost a fork and a join
    when one chunk is spread over all threads. Returns the largest number of lines in
    a chunk.
    """
    net, be = lines.net, lines.be
    chunker = Chunker(net, lines.m, chunk_size)
    threads = cpu_threads(be)
    side_by_side = kernels_callable_side_by_side(be) and threads >= 2 and lines.m > _FIRST_CHUNK

    def cut(lo: int, hi: int, ws: Workspace, threads: int | None) -> Pieces:
        D = lines.directions(lo, hi)
        return split(net, be, lines.first[lo:hi], D, t0, t1, logits=logits, ws=ws,
                     names=lines.names, threads=threads)  # fmt: skip

    pending: deque[tuple[int, int, Any]] = deque()

    def finish() -> None:
        lo, hi, result = pending.popleft()
        p = result.result() if side_by_side else result
        chunker.observe(p.seg.shape[0], hi - lo)
        visit(lo, hi, p)

    with kernels_own_the_cores(be):
        if not side_by_side:
            ws = Workspace(be.xp)
            for lo, hi in chunker:
                pending.append((lo, hi, cut(lo, hi, ws, None)))
                if len(pending) >= _IN_FLIGHT:
                    finish()
            while pending:
                finish()
            return chunker.largest
        share = max(1, threads // _SIDE_BY_SIDE)
        local = threading.local()

        def job(lo: int, hi: int) -> Pieces:
            ws = getattr(local, "ws", None)
            if ws is None:
                ws = local.ws = Workspace(be.xp)
            with kernel_threads(be, share):
                return cut(lo, hi, ws, share)

        with (
            ThreadPoolExecutor(_SIDE_BY_SIDE, thread_name_prefix="fastmem-chunk") as pool,
            kernel_threads(be, share),  # visit's kernels (hashing) share the cores too
        ):
            try:
                for lo, hi in chunker:
                    pending.append((lo, hi, pool.submit(job, lo, hi)))
                    if len(pending) >= _IN_FLIGHT:
                        finish()
                while pending:
                    finish()
            finally:
                for _, _, job_left in pending:  # an error: do not start what is queued
                    job_left.cancel()
    return chunker.largest


def split(
    net: Network,
    be: Backend,
    A: Any,
    D: Any,
    t0: float,
    t1: float,
    *,
    logits: bool,
    ws: Workspace | None = None,
    names: tuple[str, str] = ("starts", "ends"),
    threads: int | None = None,
) -> Pieces:
    """Cut the segments ``A + t D`` (rows) into pieces through all hidden layers.

    Pieces are stored by their vertices (see cpp/include/fastmem/regions.hpp): segment
    ``s`` with ``P_s`` pieces owns ``P_s + 1`` consecutive vertices. Each hidden layer is
    three kernel passes that cut the pieces at the layer's crossings; the next layer's
    pre-activations are then one GEMM over the vertices the layer started with and a
    fourth pass that carries them to the new vertices (rank-1 updates, no GEMM row per
    breakpoint). With ``logits`` the output layer is applied too. Scratch comes from
    ``ws`` (pass one workspace to every chunk of a call); the result owns its arrays.
    ``names``: the caller's two arguments, named when the lines' points overflow.
    ``threads``: how many threads the GEMMs may use (default: the kernels' threads).
    """
    xp, k = be.xp, be.kernels
    ws = ws or Workspace(xp)
    tol = tolerance(net.dtype, t0, t1)
    dt = net.dtype
    m = A.shape[0]
    n_words = net.n_pattern_words
    pseg = xp.arange(m, dtype=np.int64)
    vt = xp.tile(xp.asarray([t0, t1], dtype=dt), m)
    codes = xp.zeros((m, n_words), dtype=np.uint64)
    # Vertex values carry a last column of ones: the bias rides in the GEMM (W | b).
    d = A.shape[1]
    H = ws.take("h", (2 * m, d + 1), dt)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by name below
        H[0::2, :d] = A if t0 == 0.0 else A + dt.type(t0) * D  # exact start points at t0 = 0
        H[1::2, :d] = A + dt.type(t1) * D
    if not _within(H[:, :d], float(np.finfo(dt).max)):
        raise InputError(
            f"{names[0]}, {names[1]}, t_range: the lines' points at t = {t0:g} or t = {t1:g} "
            "overflow "
            f"(are not finite in {dt}): the values are too large"
        )
    H[:, d] = 1
    W0 = ws.weights_t(net, 0)
    Z = row_parallel_matmul(H, W0, be, out=ws.take("z0", (2 * m, W0.shape[1]), dt), threads=threads)
    known = _check_layer(Z, 0, net, ws, 0.0, names)  # a bound on |Z|
    bit = 0
    step = False
    n_hidden = net.n_layers - 1
    n_bp = None  # the crossing counts of the layer's pieces, when the last pass gave them
    growth, grown = math.inf, 0  # the least growth of the pieces per layer so far, and layers
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
        _check_pieces(net, ws, layer, m, n, total, Z.shape[0], logits or layer < n_hidden - 1)
        buf = ws.take("buf", (total,), dt)
        k.collect_crossings(Z, vt, pseg, kind, tol, offsets, buf, n_bp)
        child = ws.take("child", (n + 1,), np.int64)
        child[0] = 0
        n_bp += 1
        xp.cumsum(n_bp, out=child[1:])
        nc = int(child[-1])
        if layer >= 1:  # the first layer cuts one piece per line: not a growth rate
            growth = min(growth, nc / n)
            grown += 1
            _check_projection(net, layer, m, nc, growth, grown, xp)
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
            z=Z, vt=vt, pseg=pseg, codes=codes, buf=buf, offsets=offsets,
            child_offsets=child, kind=kind, slope=slope, bit_offset=bit,
            write_values=next_values, out_vt=new_vt, out_seg=new_seg, out_codes=new_codes,
            out_h=H, scratch=scratch,
        )  # fmt: skip
        if next_values:
            wt = ws.weights_t(net, layer + 1)  # (width + 1, next)
            Z_old = row_parallel_matmul(
                H, wt, be, out=ws.take("zold", (H.shape[0], wt.shape[1]), dt), threads=threads
            )
            if layer + 1 < n_hidden:
                _snap(Z_old, H, net, ws, layer + 1, k)
            other = str((layer + 1) % 2)
            Z_new = ws.take("z" + other, (nc + m, wt.shape[1]), dt)
            # the next hidden layer's crossing counts come with its values
            kind_next = ACTIVATIONS[net.activation[layer + 1]] if layer + 1 < n_hidden else -1
            next_counts = ws.take("counts" + other, (nc if kind_next >= 0 else 0,), np.int64)
            snap = (
                carry_snap(wt[-1], ws.abs_sums(net, layer + 1)[0], slope, kind, xp)
                if layer + 1 < n_hidden  # the logits: read by nothing piecewise
                else (None, 0.0, 0.0)
            )
            k.next_preactivations(
                Z, vt, pseg, buf, offsets, child, kind, slope, wt, Z_old, scratch, Z_new,
                kind_next, next_counts, *snap,
            )  # fmt: skip
            known = _check_layer(Z_new, layer + 1, net, ws, known, names)
            Z = Z_new
            n_bp = next_counts if kind_next >= 0 else None
        vt, pseg, codes = new_vt, new_seg, new_codes
        bit += width * bits_per_neuron(ACTIVATIONS[name])
        if step:
            break
    P = pseg.shape[0]
    out_width = (net.widths[-1] if logits else 0) + (A.shape[1] if step else 0)
    check_allocation(
        P * (24 + 2 * dt.itemsize + 8 * n_words + 2 * dt.itemsize * out_width),
        f"the results of {P} pieces",
        "net",
        xp,
    )
    left = xp.arange(P, dtype=np.int64) + pseg
    t_lo, t_hi = vt[left], vt[left + 1]
    pseg = pseg.copy()  # out of the workspace
    if step:
        mid = t_lo + (t_hi - t_lo) / 2
        X = A[pseg] + mid[:, None] * D[pseg]
        codes = xp.zeros((pseg.shape[0], n_words), dtype=np.uint64)
        out = net._propagate(X, be, codes=codes, output=logits)
        return Pieces(pseg, t_lo, t_hi, codes, out, out)
    codes = codes.copy()
    if logits:  # Z: the output layer at the final vertices
        return Pieces(pseg, t_lo, t_hi, codes, Z[left], Z[left + 1])
    return Pieces(pseg, t_lo, t_hi, codes)


def merge_equal(p: Pieces, xp: Any) -> Pieces:
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
    return Pieces(p.seg[keep_first], p.t_lo[keep_first], p.t_hi[keep_last], p.codes[keep_first])


# Values along the lines above this magnitude: the walk's result is checked (float64
# rounding of the values, ~1e-8 here, starts to move crossings near the data)
LARGE_VALUES = 1e8


class _Largest:
    """A forward pass's companion (``fastmem._graph._Pass``'s ``tangent``): the largest
    magnitude of any activation's input, in ``top``."""

    def __init__(self, xp: Any) -> None:
        self.xp, self.top = xp, 0.0

    def act(self, op: Any, z: Any, carry: Any) -> Any:
        if z.size:
            self.top = max(self.top, float(self.xp.abs(z).max()))
        return carry

    def affine(self, op: Any, carry: Any) -> Any:
        return carry

    def maxpool(self, op: Any, z: Any, carry: Any) -> Any:
        return carry

    def merge(self, a: Any, b: Any, kind: str) -> Any:
        return a


def _dense_bound(net: Network, top: float) -> float:
    """A bound of every pre-activation and logit of a dense chain on inputs of magnitude
    at most ``top``: ``|z_l| <= ||W_l||_inf max|h_(l-1)| + max|b_l|``, ``|h| <= max(1,
    |slope|) |z|``. Rounded up by 1 %."""
    bound = top
    for i, (W, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        Wn, bn = _validate.to_host(W), _validate.to_host(b)
        bound = float(np.abs(Wn).sum(axis=1).max()) * bound + float(np.abs(bn).max())
        if i < net.n_layers - 1:
            bound *= max(1.0, abs(float(net.negative_slopes[i])))
    return bound * 1.01


def large_values(lines: Lines, t0: float, t1: float) -> bool:
    """Whether the inputs, any activation's input (pre-activations) or the logits at the
    lines' ends (t0, t1) exceed :data:`LARGE_VALUES` in magnitude (or are not finite)."""
    xp, net, be = lines.be.xp, lines.net, lines.be
    A, S = lines.first, lines.second
    if A.size == 0:
        return False

    def magnitude(a: Any) -> float:  # max |a| without a temporary
        return max(abs(float(a.max())), abs(float(a.min())))

    with np.errstate(over="ignore", invalid="ignore"):
        # a bound of |x| at the ends: x(t) = A + t S (directions) or (1 - t) A + t S (ends)
        a, s = magnitude(A), magnitude(S)
        if lines.second_is == "direction":
            top = a + max(abs(t0), abs(t1)) * s
        else:
            top = max(abs(1 - t) * a + abs(t) * s for t in (t0, t1))
        if net.layer_graph is None and _dense_bound(net, top) <= LARGE_VALUES:
            return False  # a bound of every value: small, no forward pass needed
        D = lines.directions(0, lines.m)
        h = xp.concatenate([A + t0 * D, A + t1 * D])
        tops = [float(xp.abs(h).max())]
        if net.layer_graph is not None:
            largest = _Largest(xp)
            logits = _graph._Pass(be, None, None, "X", check=False, tangent=largest).run(
                net.layer_graph.ops, h
            )
            tops += [largest.top, float(xp.abs(logits).max()) if logits.size else 0.0]
        else:  # each layer's pre-activations from the layer below's outputs
            try:
                below = [h, *net.layer_outputs(h, backend=be.name)[:-1]]
            except InputError:  # values that overflow
                return True
            for x, W, b in zip(below, net.weights, net.biases, strict=True):
                z = x @ xp.asarray(W).T + xp.asarray(b)
                tops.append(float(xp.abs(z).max()) if z.size else 0.0)
    return not all(t <= LARGE_VALUES for t in tops)

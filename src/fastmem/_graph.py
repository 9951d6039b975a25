"""The layer model: a network as a sequence of operations on a per-sample tensor.

A :class:`LayerGraph` holds :class:`Op` objects applied in order to a feature tensor of
known per-sample shape, ``(C, H, W)`` or ``(d,)``, stored flat in PyTorch's ``(C, H, W)``
order (rows of an ``(n, C*H*W)`` array):

``linear``          ``h -> W h + b`` on a flat ``(d,)`` tensor
``conv2d``          ``Conv2d`` (stride, padding, dilation, groups, bias or not), im2col + GEMM
``avgpool2d``       ``AvgPool2d`` (``count_include_pad``, ``divisor_override``)
``channel_affine``  eval-mode ``BatchNorm1d`` / ``BatchNorm2d``: ``s_c h + t_c`` per channel
``flatten``         ``(C, H, W) -> (C*H*W,)`` (the storage is flat already)
``act``             an element-wise activation (relu, leaky_relu, hardtanh, relu6, threshold;
                    tanh, sigmoid for forward passes only)
``maxpool2d``       ``MaxPool2d`` (kernel, stride, padding, dilation): piecewise linear,
                    its state the argmax of each window
``residual``        ``out = A(x) + B(x)`` for two op sequences ``A``, ``B`` (either may be
                    empty: the identity), e.g. a ResNet basic block's body and shortcut
``concat``          ``out = [A(x), B(x)]`` joined along the channels (``torch.cat(..., 1)``:
                    Inception's branches, DenseNet's ``[x, f(x)]``), the same two branches

Every array computation goes through the array module ``xp`` (NumPy or CuPy) and the
pattern bits through the backend's kernels (``pack_and_activate``, ``hash_patterns``),
so the three backends give the same results.

Activation patterns of a layer graph
    The ops carrying a state (``act`` with a piecewise-linear kind, ``maxpool2d``) are
    numbered in execution order (a residual or concat op runs its first branch, then its
    second).
    An ``act`` op owns ``bits_per_neuron(kind)`` bits per element, elements in ``(C, H, W)``
    order, as the neurons of a dense layer (:class:`fastmem.Network`). A ``maxpool2d`` op
    with ``m`` outputs and ``K`` entries per window owns ``b = ceil(log2 K)`` bits per
    output: bit ``r`` of the argmax (window entries numbered row-major, the first of
    equal entries wins, as ``torch.max``) of output ``j`` is global bit ``offset + r m +
    j``. A dense chain of ``linear`` and ``act`` ops has exactly the bit layout (and so
    the hashes) of the equivalent dense :class:`fastmem.Network`.

The exact segment walk (:func:`exact_segments`) follows every segment through the ops as
the dense engine does (``fastmem.regions`` documents pieces, ties and tolerances): each
piece carries the current tensor (and those a residual op keeps for later) at its two
ends; an ``act`` op cuts pieces where an element meets a threshold, a ``maxpool2d`` op
where two entries of a window that are both maximal cross; the ends of the new pieces
are interpolated linearly (everything is affine on a piece), states are read at the
pieces' midpoints, and adjacent pieces with equal patterns are merged at the end.
Differences from the dense engine: no float64 threshold snap at the old vertices
(``fastmem._kinds.snap_to_thresholds``), and pieces are stored with both ends. Both snap
carried values back to their bias where the op after reads them against it
(``fastmem._kinds.carry_snap``: a bias-free convolution over dead neurons is exactly 0).

Where an activation is followed by an affine op (``flatten`` ops between allowed), both
go through the segment engine's kernels (cpp/include/fastmem/regions.hpp) as one step:
the crossings and the new pieces with their pattern bits; the affine op (an im2col
convolution, a GEMM) at the vertices the activation started with only, carried to the
new vertices by one rank-1 update per crossing from the op's dense matrix (built once
per call; ops whose matrix would exceed ``_DENSE_T_BYTES`` are applied at every vertex
instead), or for a convolution from its sparse columns (:func:`_conv2d_columns`: the
flipped neuron's receptive field only, ``next_preactivations_sparse``; equal values).
After a convolution's activation, on the CPU, the next dense op at the vertices the
activation started with is not a GEMM either: the chained pass (``chain_values``) carries it
along each segment from vertex to vertex by the rows of the neurons whose slope changes
there (the receptive field of the one neuron that flipped, ``breakpoint_causes``), with a
direct value where that is not known or rounding may have grown (within ~1e-13 of the
GEMM's values; ``_CHAIN``).
Before a residual block whose first branch starts with an affine op, the activation's own
output is carried alongside (the identity's columns), for the second branch. Other
activations (before max pooling, a threshold, or in float32, whose ``t`` is float64 here)
are applied at every vertex; max pooling computes its window maxima at the old vertices
once (for the argmax) and again at its cuts only.
Chunks of segments are walked side by side on CPU backends, as the dense engine does,
with their large vertex tensors in a per-thread workspace (``fastmem._engine``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._kinds import (
    ACTIVATIONS,
    RELU,
    THRESHOLD,
    activation_slope,
    bits_per_neuron,
    carry_snap,
    thresholds,
)
from ._threads import (
    Scratch,
    cpu_threads,
    kernel_threads,
    kernels_callable_side_by_side,
    kernels_own_the_cores,
)
from ._validate import check_allocation
from .errors import InputError

__all__ = ["LayerGraph", "Op", "exact_segments", "forward"]

SMOOTH = ("tanh", "sigmoid")
_AFFINE = ("linear", "conv2d", "avgpool2d", "channel_affine", "flatten")
# Bytes of pieces kept alive at once by the exact walk (per chunk of segments).
_WALK_BYTES = 48 * 2**20
_FIRST_SEGMENTS = 4
# Chunks of segments walked side by side, and in flight (as fastmem._engine.run).
_SIDE_BY_SIDE = 2
_IN_FLIGHT = 3
# The most bytes of an affine op's dense matrix the exact walk builds to carry the op's
# values to new vertices (``_Walk.dense_t``); larger ops are applied at every vertex.
_DENSE_T_BYTES = 64 * 2**20
# The chained pass (``chain_values`` in cpp/include/fastmem/regions.hpp): the dense layer
# after a convolution's activation at the old vertices by rank-1 updates along each
# segment (tests turn it off to compare); a direct value where the rounding of the slopes
# read off the pieces, summed as (distance travelled) / (piece length), reaches the period
# (~ that many vertices of similar length; values then within ~1e-13 of the GEMM's).
_CHAIN = True
_CHAIN_PERIOD = 4096


# the ops that join two branches from one input: by a sum, or along the channels
_JOINS = ("residual", "concat")


def _prod(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


def shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True, eq=False)
class Op:
    """One operation of a :class:`LayerGraph` (see the module docstring for the kinds).

    ``name`` is where it came from (e.g. ``layer1.0.conv1``), ``source`` the module or
    function (``Conv2d``, ``add``); ``arrays`` its parameters (on the graph's device),
    ``params`` its settings; a ``residual`` op has two ``branches``.
    """

    kind: str
    name: str
    source: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    arrays: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    branches: tuple[tuple[Op, ...], ...] = ()

    @property
    def size(self) -> int:
        """Elements of the output per sample."""
        return _prod(self.out_shape)

    @property
    def where(self) -> str:
        return f"{self.name} ({self.source})"

    @property
    def window(self) -> int:
        """Entries per pooling window."""
        kh, kw = self.params["kernel"]
        return int(kh * kw)

    @property
    def state_bits(self) -> int:
        """Pattern bits this op owns per sample (0 for ops without a state)."""
        if self.kind == "act":
            kind = self.params["activation"]
            return self.size * bits_per_neuron(ACTIVATIONS[kind]) if kind in ACTIVATIONS else 0
        if self.kind == "maxpool2d":
            return self.size * max(0, math.ceil(math.log2(self.window)))
        return 0

    def map_arrays(self, fn: Any) -> Op:
        return Op(
            self.kind,
            self.name,
            self.source,
            self.in_shape,
            self.out_shape,
            {k: fn(v) for k, v in self.arrays.items()},
            dict(self.params),
            tuple(tuple(o.map_arrays(fn) for o in br) for br in self.branches),
        )

    def describe(self) -> str:
        if self.kind in _JOINS:
            inner = " | ".join(
                "identity" if not br else ", ".join(o.describe() for o in br)
                for br in self.branches
            )
            return f"{self.kind}[{inner}]"
        if self.kind == "act":
            return str(self.params["activation"])
        return f"{self.kind}{shape_str(self.out_shape)}"


def walk(ops: tuple[Op, ...]) -> Any:
    """Every op in execution order, residual branches included (the residual op after)."""
    for op in ops:
        for br in op.branches:
            yield from walk(br)
        yield op


@dataclass(frozen=True, eq=False)
class LayerGraph:
    """A network as a sequence of :class:`Op` (module docstring)."""

    ops: tuple[Op, ...]
    input_shape: tuple[int, ...]

    @property
    def input_dim(self) -> int:
        return _prod(self.input_shape)

    @property
    def output_dim(self) -> int:
        return self.ops[-1].size if self.ops else self.input_dim

    def act_ops(self) -> list[Op]:
        return [op for op in walk(self.ops) if op.kind == "act"]

    def state_ops(self) -> list[Op]:
        return [op for op in walk(self.ops) if op.kind in ("act", "maxpool2d")]

    @property
    def widths(self) -> tuple[int, ...]:
        """``(input_dim, output size of each act op..., output_dim)``."""
        return (self.input_dim, *(op.size for op in self.act_ops()), self.output_dim)

    @property
    def n_pattern_bits(self) -> int:
        return sum(op.state_bits for op in self.state_ops())

    def first_smooth(self) -> Op | None:
        for op in self.act_ops():
            if op.params["activation"] not in ACTIVATIONS:
                return op
        return None

    def first_structural(self) -> Op | None:
        """The first op a dense chain cannot express (max pooling, a residual add or a
        concatenation)."""
        for op in walk(self.ops):
            if op.kind in ("maxpool2d", *_JOINS):
                return op
        return None

    def map_arrays(self, fn: Any) -> LayerGraph:
        return LayerGraph(tuple(op.map_arrays(fn) for op in self.ops), self.input_shape)

    def max_width(self) -> int:
        """The most values per sample one op holds at once (its output, its pooling
        windows, a convolution's im2col columns)."""
        widest = self.input_dim
        for op in walk(self.ops):
            widest = max(widest, op.size)
            if op.kind in ("maxpool2d", "avgpool2d"):
                widest = max(widest, op.size * op.window)
            if op.kind == "conv2d":
                _, Ho, Wo = op.out_shape
                widest = max(widest, Ho * Wo * op.in_shape[0] * op.window)
        return widest

    def describe(self) -> str:
        return ", ".join(op.describe() for op in self.ops)


# ------------------------------------------------------------------ affine ops
def _pad_hw(x: Any, pads: tuple[tuple[int, int], tuple[int, int]], value: float, xp: Any) -> Any:
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    n, C, H, W = x.shape
    out = xp.empty((n, C, H + pt + pb, W + pl + pr), dtype=x.dtype)
    out[:, :, :pt] = value  # only the border is filled; the inside is copied once
    out[:, :, pt + H :] = value
    out[:, :, pt : pt + H, :pl] = value
    out[:, :, pt : pt + H, pl + W :] = value
    out[:, :, pt : pt + H, pl : pl + W] = x
    return out


def _taps(op: Op) -> list[tuple[int, int]]:
    kh, kw = op.params["kernel"]
    dh, dw = op.params["dilation"]
    return [(i * dh, j * dw) for i in range(kh) for j in range(kw)]


def windows(h: Any, op: Op, fill: float, xp: Any) -> Any:
    """The pooling windows of ``h`` (n, C*H*W) as an (n, C, Ho, Wo, K) array."""
    n = h.shape[0]
    C, H, W = op.in_shape
    _, Ho, Wo = op.out_shape
    sh, sw = op.params["stride"]
    check_allocation(
        float(n) * C * Ho * Wo * op.window * h.dtype.itemsize,
        f"the {op.window}-entry windows of {op.where} for {n} rows",
        "net",
        xp,
    )
    x = _pad_hw(h.reshape(n, C, H, W), op.params["pads"], fill, xp)
    out = xp.empty((n, C, Ho, Wo, op.window), dtype=h.dtype)
    for k, (r, s) in enumerate(_taps(op)):
        out[..., k] = x[:, :, r : r + sh * (Ho - 1) + 1 : sh, s : s + sw * (Wo - 1) + 1 : sw]
    return out


def _tap_view(x: Any, op: Op, tap: tuple[int, int]) -> Any:
    """The ``(n, C, Ho, Wo)`` entries at one tap of every window of the padded ``x``."""
    _, Ho, Wo = op.out_shape
    sh, sw = op.params["stride"]
    r, s = tap
    return x[:, :, r : r + sh * (Ho - 1) + 1 : sh, s : s + sw * (Wo - 1) + 1 : sw]


def _window_max(
    x: Any, op: Op, xp: Any, *, argmax: bool = False, tie: Any = None
) -> tuple[Any, Any]:
    """Per window of the padded ``(n, C, H, W)`` array ``x``: the maximum ``(n, C Ho Wo)``
    and (with ``argmax``) the first tap attaining it, as ``windows(...).max(-1)`` and
    ``.argmax(-1)`` without the ``(n, C, Ho, Wo, K)`` array. ``tie`` (broadcast against
    ``(n, C, Ho, Wo)``): entries within it of the largest so far count as equal to it."""
    n = x.shape[0]
    taps = _taps(op)
    best = xp.array(_tap_view(x, op, taps[0]), copy=True, order="C")
    top = xp.zeros(best.shape, dtype=np.int32) if argmax else None
    for k, tap in enumerate(taps[1:], 1):
        entry = _tap_view(x, op, tap)
        if argmax:
            # strict: the first of equal entries wins
            better = entry > best if tie is None else entry > best + tie
            xp.copyto(top, k, where=better)
        xp.maximum(best, entry, out=best)
    return best.reshape(n, -1), (top.reshape(n, -1) if argmax else None)


def _window_entries(x: Any, op: Op, rows: Any, cols: Any, xp: Any) -> Any:
    """``(q, K)``: the entries of window ``cols[i]`` (flat over ``(C, Ho, Wo)``) of row
    ``rows[i]`` of the padded ``(n, C, H, W)`` array ``x``."""
    _, Hp, Wp = x.shape[1:]
    _, Ho, Wo = op.out_shape
    sh, sw = op.params["stride"]
    c, rest = cols // (Ho * Wo), cols % (Ho * Wo)
    base = c * (Hp * Wp) + (rest // Wo) * sh * Wp + (rest % Wo) * sw
    offsets = xp.asarray([r * Wp + s for r, s in _taps(op)], dtype=np.int64)
    flat = x.reshape(x.shape[0], -1)
    return flat[rows[:, None], base[:, None] + offsets[None, :]]


# Rows per im2col block: one block's columns take about this much, so the blocks reuse
# memory that is already mapped (a fresh page costs a fault on first touch).
_IM2COL_BYTES = 8 * 2**20


def _conv2d(h: Any, op: Op, xp: Any) -> Any:
    """:func:`_conv2d_block` over blocks of rows."""
    n = h.shape[0]
    _, Ho, Wo = op.out_shape
    per_row = op.in_shape[0] * op.window * Ho * Wo * h.dtype.itemsize
    rows = max(1, _IM2COL_BYTES // per_row)
    check_allocation(
        float(per_row) * min(n, rows),
        f"the im2col columns of {op.where} ({op.in_shape[0] * op.window} per output)",
        "net",
        xp,
    )
    if n <= rows:
        return _conv2d_block(h, op, xp)
    out = xp.empty((n, op.size), dtype=h.dtype)
    for lo in range(0, n, rows):
        out[lo : lo + rows] = _conv2d_block(h[lo : lo + rows], op, xp)
    return out


def _conv2d_block(h: Any, op: Op, xp: Any) -> Any:
    """im2col + one GEMM per group: the columns ``(n Ho Wo, C/g kh kw)`` are one copy of
    the windows' view, the product ``(n Ho Wo, O)`` is transposed to ``(n, O, Ho Wo)``.

    The input is first copied into a padded frame. With several channels per group (and
    no dilation along the width) the frame is channels-last, so each window row's
    ``kw C/g`` entries are one contiguous run of it (1.5-1.7x faster than runs of ``kw``
    at 16-160 channels), the columns ``(kh, kw, C/g)`` and the weights' taps ordered to
    match; else channels-first (depthwise and one-channel convolutions: runs of ``kw``).
    The frame, the columns and the product are kept per thread from call to call (CPU):
    fresh ones of a few MB are new pages each time, whose faults cost the search ~25%
    where the allocator returns freed memory to the system."""
    n = h.shape[0]
    C, H, W = op.in_shape
    n_out, Ho, Wo = op.out_shape
    w = op.arrays["weight"]
    g = op.params["groups"]
    kh, kw = op.params["kernel"]
    sh, sw = op.params["stride"]
    dh, dw = op.params["dilation"]
    (pt, pb), (pl, pr) = op.params["pads"]
    cg, og = C // g, n_out // g
    K = kh * kw
    last = cg > 1 and dw == 1  # channels-last
    buf = Scratch(xp)
    size = (H + pt + pb, W + pl + pr)
    x = buf.get("conv_x", (n, *size, C) if last else (n, C, *size), h.dtype)
    frame = x if last else x.transpose(0, 2, 3, 1)  # (n, H, W, C) either way
    frame[:, :pt] = 0  # only the border is zeroed; the inside is written once
    frame[:, pt + H :] = 0
    frame[:, pt : pt + H, :pl] = 0
    frame[:, pt : pt + H, pl + W :] = 0
    frame[:, pt : pt + H, pl : pl + W] = h.reshape(n, C, H, W).transpose(0, 2, 3, 1)
    s0, s1, s2, s3 = frame.strides
    view = xp.lib.stride_tricks.as_strided(
        frame, shape=(n, Ho, Wo, kh, kw, C), strides=(s0, sh * s1, sw * s2, dh * s1, dw * s2, s3)
    )
    if not last:
        view = view.transpose(0, 1, 2, 5, 3, 4)  # (n, Ho, Wo, C, kh, kw)
    out = buf.get("conv_out", (n * Ho * Wo, n_out), h.dtype)
    cols = buf.get("conv_cols", (n, Ho, Wo, *((kh, kw, cg) if last else (cg, kh, kw))), h.dtype)
    for gi in range(g):
        part = slice(gi * cg, (gi + 1) * cg)
        cols[...] = view[..., part] if last else view[:, :, :, part]
        wg = w[gi * og : (gi + 1) * og]
        wm = (wg.transpose(0, 2, 3, 1) if last else wg).reshape(og, K * cg)
        xp.matmul(cols.reshape(n * Ho * Wo, K * cg), wm.T, out=out[:, gi * og : (gi + 1) * og])
    if "bias" in op.arrays:
        out += op.arrays["bias"]
    res = xp.empty((n, n_out, Ho * Wo), dtype=h.dtype)  # a new array: out is reused
    res[...] = out.reshape(n, Ho * Wo, n_out).transpose(0, 2, 1)
    return res.reshape(n, -1)


def _conv2d_matrix_t(op: Op, out: Any, xp: Any) -> None:
    """Write the convolution's linear part as a ``(C H W, O Ho Wo)`` matrix into ``out``
    (row: input element, column: output element): one scatter of the weights per tap."""
    C, H, W = op.in_shape
    n_out, Ho, Wo = op.out_shape
    (pt, _), (pl, _) = op.params["pads"]
    sh, sw = op.params["stride"]
    g = op.params["groups"]
    cg, og = C // g, n_out // g
    w = op.arrays["weight"].astype(out.dtype, copy=False).reshape(n_out, cg, -1)
    oy, ox = xp.meshgrid(xp.arange(Ho), xp.arange(Wo), indexing="ij")
    pos = (oy * Wo + ox).reshape(-1)
    out[...] = 0
    c = xp.arange(C)
    o = xp.arange(n_out)
    same = (c[:, None] // cg) == (o[None, :] // og)  # (C, O): the pairs of one group
    ci, oi = xp.nonzero(same)
    for k, (ky, kx) in enumerate(_taps(op)):
        y, x = (oy * sh - pt + ky).reshape(-1), (ox * sw - pl + kx).reshape(-1)
        ok = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        rows = (ci * H * W)[:, None] + (y * W + x)[ok][None, :]
        cols = (oi * Ho * Wo)[:, None] + pos[ok][None, :]
        out[rows, cols] = w[oi, ci % cg, k][:, None]


def _conv2d_columns(op: Op, keep: bool, dtype: Any, xp: Any) -> tuple[Any, Any, Any]:
    """The convolution's linear part by columns (one per input element), sparse: column
    ``j`` holds its nonzeros at ``idx[ptr[j]:ptr[j + 1]]`` (output elements, increasing)
    with values ``val``, the entries of :func:`_conv2d_matrix_t`'s row ``j``; ``keep``:
    followed by the identity's column ``size + j``. Every (input, output) pair is met by one
    tap at most, so the outputs of a column are distinct."""
    C, H, W = op.in_shape
    n_out, Ho, Wo = op.out_shape
    (pt, _), (pl, _) = op.params["pads"]
    sh, sw = op.params["stride"]
    g = op.params["groups"]
    cg, og = C // g, n_out // g
    w = op.arrays["weight"].astype(dtype, copy=False).reshape(n_out, cg, -1)
    oy, ox = xp.meshgrid(xp.arange(Ho), xp.arange(Wo), indexing="ij")
    pos = (oy * Wo + ox).reshape(-1)
    c = xp.arange(C)
    o = xp.arange(n_out)
    ci, oi = xp.nonzero((c[:, None] // cg) == (o[None, :] // og))
    rows, cols, vals = [], [], []
    for k, (ky, kx) in enumerate(_taps(op)):
        y, x = (oy * sh - pt + ky).reshape(-1), (ox * sw - pl + kx).reshape(-1)
        ok = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        r = (ci * H * W)[:, None] + (y * W + x)[ok][None, :]
        rows.append(r.reshape(-1))
        cols.append(((oi * Ho * Wo)[:, None] + pos[ok][None, :]).reshape(-1))
        vals.append(xp.broadcast_to(w[oi, ci % cg, k][:, None], r.shape).reshape(-1))
    d = C * H * W
    if keep:
        rows.append(xp.arange(d))
        cols.append(op.size + xp.arange(d))
        vals.append(xp.ones(d, dtype=dtype))
    rows, cols, vals = xp.concatenate(rows), xp.concatenate(cols), xp.concatenate(vals)
    order = xp.lexsort(xp.stack([cols, rows]))
    ptr = xp.zeros(d + 1, dtype=np.int64)
    xp.cumsum(xp.bincount(rows, minlength=d), out=ptr[1:])
    idx = xp.ascontiguousarray(cols[order].astype(np.int64))
    return ptr, idx, xp.ascontiguousarray(vals[order].astype(dtype))


def _avgpool2d(h: Any, op: Op, xp: Any) -> Any:
    n = h.shape[0]
    win = windows(h, op, 0.0, xp)
    total = win.sum(axis=-1)
    return (total * op.arrays["inv_divisor"]).reshape(n, -1)


def linear_part(op: Op, xp: Any) -> Op:
    """The affine op without its bias (or shift): its linear part."""
    arrays = dict(op.arrays)
    if "bias" in arrays:
        arrays["bias"] = xp.zeros_like(arrays["bias"])
    if "shift" in arrays:
        arrays["shift"] = xp.zeros_like(arrays["shift"])
    return Op(op.kind, op.name, op.source, op.in_shape, op.out_shape, arrays, op.params)


def apply_affine(op: Op, h: Any, xp: Any) -> Any:
    """A new array: the affine op applied to the rows of ``h``."""
    if op.kind == "linear":
        z = h @ op.arrays["weight"].T
        z += op.arrays["bias"]
        return z
    if op.kind == "conv2d":
        return _conv2d(h, op, xp)
    if op.kind == "avgpool2d":
        return _avgpool2d(h, op, xp)
    if op.kind == "channel_affine":
        C = op.in_shape[0]
        x = h.reshape(h.shape[0], C, -1)
        return (x * op.arrays["scale"][:, None] + op.arrays["shift"][:, None]).reshape(
            h.shape[0], -1
        )
    if op.kind == "flatten":
        return h
    raise AssertionError(op.kind)


def _check_finite(z: Any, op: Op, xp: Any, argument: str) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        if bool(xp.isfinite(z.sum())):  # one pass, no temporary: finite, all of them
            return
    if not bool(xp.isfinite(z).all()):
        raise InputError(
            f"{argument}: the output of {op.where} overflows (is not finite in {z.dtype}): "
            "the inputs or the weights are too large"
        )


def _smooth(z: Any, name: str, xp: Any) -> Any:
    if name == "tanh":
        return xp.tanh(z)
    e = xp.exp(-xp.abs(z))  # the stable logistic, as fastmem.Network
    r = 1.0 / (1.0 + e)
    return xp.where(z >= 0, r, e * r)


def pack_argmax(idx: Any, codes: Any, bit: int, nbits: int, dtype: Any, kernels: Any) -> None:
    """OR the ``nbits`` low bits of ``idx`` (n, m) into ``codes``: bit r of column j at
    ``bit + r m + j`` (through the backend's relu packer, one bit per entry)."""
    m = idx.shape[1]
    for r in range(nbits):
        plane = ((idx >> r) & 1).astype(dtype)
        kernels.pack_and_activate(plane, codes, bit + r * m, RELU, 0.0)


# ------------------------------------------------------------------ forward
class _Pass:
    """One forward pass: codes (or None), layer outputs (or None), activation derivatives
    and max pooling's argmax (or None), the next bit; or, with ``hidden``, each act op's
    input handed to ``hidden(index, z)`` (an array of its own, activated there in place:
    the dense analyses' recorders, :func:`fastmem.network.dense_forward`).

    ``tangent``: an object carried through the pass beside the values (``carry``, its
    state; residual branches each start from the fork's), told of every op by its
    ``affine(op, carry)``, ``act(op, z, carry)`` (z: the act's input), ``maxpool(op, z,
    carry)`` and ``merge(carry_a, carry_b)`` (each returning the new carry): the boundary
    distances' Jacobians (:class:`_Distances`)."""

    def __init__(
        self,
        be: Any,
        codes: Any,
        outputs: list[Any] | None,
        argument: str,
        derivs: list[Any] | None = None,
        check: bool = True,
        hidden: Any = None,
        tangent: Any = None,
        carry: Any = None,
    ) -> None:
        self.be = be
        self.codes = codes
        self.outputs = outputs
        self.derivs = derivs
        self.check = check
        self.hidden = hidden
        self.tangent = tangent
        self.carry = carry
        self.bit = 0
        self.n_act = 0
        self.argument = argument

    def run(self, ops: tuple[Op, ...], h: Any, fresh: bool = False) -> Any:
        """The ops applied in order to ``h``; ``fresh``: ``h`` belongs to this pass alone
        (an act op may then activate it in place instead of copying it)."""
        for op in ops:
            h, fresh = self.apply(op, h, fresh)
        return h

    def apply(self, op: Op, h: Any, fresh: bool = False) -> tuple[Any, bool]:
        """``op`` applied to ``h``: (its output, whether that output is this pass's own)."""
        xp, k = self.be.xp, self.be.kernels
        kind = op.kind
        if kind == "act" and self.hidden is not None:  # a dense chain's: the caller's hook
            z = h if fresh else xp.array(h, copy=True, order="C")
            self.hidden(self.n_act, z)
            self.n_act += 1
            return z, True
        if kind in _AFFINE:
            if kind == "flatten":
                return h, fresh
            z = apply_affine(op, h, xp)
            if self.check:
                _check_finite(z, op, xp, self.argument)
            if self.tangent is not None:
                self.carry = self.tangent.affine(op, self.carry)
            return z, True
        if kind in _JOINS:
            # each branch starts from the shared input: never activated in place
            fork = self.carry
            a = self.run(op.branches[0], h)
            carry_a, self.carry = self.carry, fork
            b = self.run(op.branches[1], h)
            if kind == "concat":
                z = xp.concatenate([a, b], axis=1)
            else:
                z = a + b
                if self.check:
                    _check_finite(z, op, xp, self.argument)
            if self.tangent is not None:
                self.carry = self.tangent.merge(carry_a, self.carry, kind)
            return z, True
        if kind == "act":
            if self.tangent is not None:
                self.carry = self.tangent.act(op, h, self.carry)
            z = h if fresh else xp.array(h, copy=True, order="C")
            name = op.params["activation"]
            if name not in ACTIVATIONS:
                z = _smooth(h, name, xp)
            else:
                kind, slope = ACTIVATIONS[name], op.params["slope"]
                if self.derivs is not None:
                    d = xp.empty_like(z)
                    k.crit_activate(z, d, kind, slope)
                    self.derivs.append(d)
                elif self.codes is not None:
                    k.pack_and_activate(z, self.codes, self.bit, kind, slope)
                    self.bit += op.state_bits
                else:
                    k.apply_activation(z, kind, slope)
            if self.outputs is not None:
                self.outputs.append(z)
                return z, False
            return z, True
        if kind == "maxpool2d":
            if self.tangent is not None:
                self.carry = self.tangent.maxpool(op, h, self.carry)
            win = windows(h, op, -np.inf, xp)
            if self.derivs is not None:
                self.derivs.append(win.argmax(axis=-1).reshape(h.shape[0], -1))
            if self.codes is not None and op.state_bits:
                idx = win.argmax(axis=-1).reshape(h.shape[0], -1)
                nbits = op.state_bits // op.size
                pack_argmax(idx, self.codes, self.bit, nbits, h.dtype, k)
                self.bit += op.state_bits
            return xp.ascontiguousarray(win.max(axis=-1).reshape(h.shape[0], -1)), True
        raise AssertionError(op.kind)


def forward(
    graph: LayerGraph,
    X: Any,
    be: Any,
    *,
    codes: Any = None,
    outputs: list[Any] | None = None,
    derivs: list[Any] | None = None,
    check: bool = True,
) -> Any:
    """Logits of the rows of ``X`` (one chunk): the one forward pass of a layer graph.

    ORs the pattern into ``codes`` when given; appends each act op's output to
    ``outputs`` when given; appends each act op's derivative (PyTorch autograd's at the
    kinks) and each max pooling's argmax per window to ``derivs`` when given (the
    critical-sample search's backward pass reads them). ``check``: ``InputError`` naming
    the op whose output is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):  # _check_finite names the op
        return _Pass(be, codes, outputs, "X", derivs, check).run(graph.ops, X)


def dense_chain(weights_t: Any, biases: Any) -> tuple[Op, ...]:
    """A dense chain as layer-model ops: ``linear`` op i (weights ``weights_t[i].T``, a
    view: the pass multiplies by ``weights_t[i]`` itself), then an ``act`` op for each
    hidden layer, whose activation the caller's ``hidden`` applies (:func:`run_chain`).
    Ops are named as :class:`fastmem.Network` names its layers (``layer 1 (a hidden
    layer)``). A caller running many passes builds them once."""
    n = len(weights_t)
    ops = []
    for i in range(n):
        wt = weights_t[i]
        what = "the output layer" if i == n - 1 else "a hidden layer"
        d_in, d_out = (int(wt.shape[0]),), (int(wt.shape[1]),)
        ops.append(Op("linear", f"layer {i}", what, d_in, d_out,
                      {"weight": wt.T, "bias": biases[i]}))  # fmt: skip
        if i < n - 1:
            ops.append(Op("act", f"layer {i}", what, d_out, d_out, {}, {"activation": None}))
    return tuple(ops)


def run_chain(
    h: Any,
    chain: tuple[Op, ...],
    hidden: Any,
    be: Any,
    *,
    check: bool,
    output: bool,
    argument: str = "X",
) -> Any:
    """The forward pass (:class:`_Pass`) of a dense chain (:func:`dense_chain`): hidden
    layer i's pre-activations go to ``hidden(i, z)``; the logits, or None without
    ``output``. Run under ``np.errstate(over="ignore", invalid="ignore")`` with ``check``
    (the check names the layer)."""
    ops = chain if output else chain[:-1]
    z = _Pass(be, None, None, argument, None, check, hidden).run(ops, h)
    return z if output else None


# ------------------------------------------------------------------ exact walk
@dataclass(frozen=True, eq=False)
class _SparseColumns:
    """An affine op's linear part sparse by columns, its bias apart (the arguments of the
    ``next_preactivations_sparse`` kernel; :func:`_conv2d_columns`)."""

    ptr: Any
    idx: Any
    val: Any
    bias: Any


def _sparse_columns(op: Op, keep: bool) -> bool:
    """Whether the exact walk carries the convolution ``op`` by its sparse columns: when
    they take under half the bytes of the dense matrix (index and value per entry) and at
    most ``_DENSE_T_BYTES``."""
    C = op.in_shape[0]
    d = _prod(op.in_shape)
    nnz = op.size * (C // op.params["groups"]) * op.window + d * keep  # an upper bound
    return 2 * nnz < d * (op.size + d * keep) and 16 * nnz <= _DENSE_T_BYTES


def take_rows(V: Any, rows: Any, out: Any, xp: Any) -> Any:
    """``out[...] = V[rows]`` (rows in range) without a temporary; returns ``out``."""
    if xp is np:  # mode="raise" would buffer the output
        return np.take(V, rows, axis=0, out=out, mode="clip")
    out[...] = V[rows]
    return out


class _Walk:
    """The vertices of a chunk of segments, sorted by (segment, t), with the current
    tensor (and those a residual op keeps for later) at each vertex.

    Piece ``p`` of segment ``s`` lies between vertices ``p + s`` and ``p + s + 1`` (each
    segment has one vertex more than pieces); the network is continuous, so neighbouring
    pieces share their end. After a ``threshold`` activation everything is constant on
    each piece and the walk holds one value per piece instead (``constant``).
    """

    def __init__(
        self,
        be: Any,
        V0: Any,
        V1: Any,
        t0: float,
        t1: float,
        words: int,
        tol: float,
        dense: dict[int, Any] | None = None,
        lock: Any = None,
        ws: Any = None,
    ):
        xp = self.xp = be.xp
        self.be = be
        self.dense = {} if dense is None else dense  # dense_t's matrices, shared by chunks
        self.lock = lock or threading.Lock()  # guards dense (chunks walked side by side)
        self.ws = ws  # a fastmem._engine.Workspace for the large vertex tensors, or None
        n = V0.shape[0]
        self.vt = xp.empty(2 * n, dtype=np.float64)
        self.vt[0::2], self.vt[1::2] = t0, t1
        self.vseg = xp.repeat(xp.arange(n), 2)
        V = xp.empty((2 * n, V0.shape[1]), dtype=V0.dtype)
        V[0::2], V[1::2] = V0, V1
        self._cur, self.slot = V, 0  # slot: see take
        # for the current tensor's pieces, when known: the act op's crossing counts
        self.counts: Any = None
        # for the current tensor's vertices, when known: the neuron of the act op before
        # whose slope changes at each (``breakpoint_causes``), and the receptive fields
        # (sparse columns) of the op between
        self.cause: Any = None
        self.cause_rf: Any = None
        self.saved: list[Any] = []
        self.codes = xp.zeros((n, words), dtype=np.uint64)
        self.bit = 0
        self.tol = tol
        self.largest = n
        self.constant = False
        self.depth = 0  # residual branches entered
        self.peak_bytes = 0  # the most bytes of vertex tensors held after an op

    @property
    def cur(self) -> Any:
        """The current tensor at the vertices, ``(vertices, width)``."""
        return self._cur

    @cur.setter
    def cur(self, V: Any) -> None:  # an array of its own (see put)
        self._cur, self.slot, self.counts = V, 0, None
        self.cause = None

    def put(self, V: Any, slot: int) -> None:
        """Make ``V``, an array in workspace slot ``slot``, the current tensor."""
        self._cur, self.slot, self.counts = V, slot, None
        self.cause = None

    def free_slot(self) -> int:
        """A vertex-tensor slot of the workspace that does not hold the current tensor."""
        return 2 if self.slot == 1 else 1

    # -------------------------------------------------------------- layout
    def valid(self) -> Any:
        """Per pair of consecutive vertices: whether it is a piece (same segment)."""
        return self.vseg[:-1] == self.vseg[1:]

    def midpoints(self, V: Any) -> Any:
        """``(pieces, d)``: each piece's midpoint value of the vertex tensor ``V``, in
        workspace slot 4 (valid until the next call)."""
        xp = self.xp
        left = xp.nonzero(self.valid())[0]
        out = self.take(4, (left.shape[0], V.shape[1]), V.dtype)
        half = self.take(3, out.shape, V.dtype)
        take_rows(V, left, out, xp)
        out *= 0.5
        take_rows(V, left + 1, half, xp)
        half *= 0.5
        out += half
        return out

    def pieces(self) -> tuple[Any, Any, Any, Any, Any, Any]:
        ok = self.valid()
        seg, lo, hi = self.vseg[:-1][ok], self.vt[:-1][ok], self.vt[1:][ok]
        if self.constant:
            return seg, lo, hi, self.codes, self.cur, self.cur
        return seg, lo, hi, self.codes, self.cur[:-1][ok], self.cur[1:][ok]

    def take(self, slot: int, shape: tuple[int, ...], dtype: Any) -> Any:
        """An array from the workspace slot (1, 2: the current vertex tensor, one of them
        free; 3, 4: scratch), or a new one without a workspace."""
        if self.ws is None:
            return self.xp.empty(shape, dtype=dtype)
        return self.ws.take(f"walk{slot}", shape, dtype)

    def own(self, V: Any) -> Any:
        """``V`` (the current tensor), copied out of the workspace if it is there."""
        return V.copy() if self.slot and V is self.cur else V

    # -------------------------------------------------------------- ops
    def run(self, ops: tuple[Op, ...]) -> None:
        i = 0
        while i < len(ops):
            op = ops[i]
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            j = self.fusable(op, ops[i + 1 :])
            if j is not None:  # act, affine op
                self._act_affine(op, ops[i + 1 : i + 3 + j][j:])
                i += j + 2
            elif nxt is not None and nxt.kind in _JOINS:
                first = nxt.branches[0]
                j = self.fusable(op, first, keep=True)
                if j is None:
                    self.apply(op)
                    i += 1
                    continue
                # act, residual op whose first branch starts with an affine op: the act's
                # output (kept for the second branch) and the affine op's come together
                h = self._act_affine(op, first[j : j + 2], keep=True)
                self._residual(nxt, h, first[j + 1 :])
                i += 2
            else:
                self.apply(op)
                i += 1
            held = self.cur.nbytes + sum(s.nbytes for s in self.saved)
            self.peak_bytes = max(self.peak_bytes, held + self.codes.nbytes)

    def fusable(self, op: Op, rest: tuple[Op, ...], keep: bool = False) -> int | None:
        """Where in ``rest`` the affine op sits that :meth:`_act_affine` may apply together
        with the act ``op`` (only ``flatten`` ops in between), or None. ``keep``: the act's
        output is wanted too."""
        if op.kind != "act" or self.constant or self.cur.dtype != self.vt.dtype:
            return None
        kind = ACTIVATIONS.get(op.params["activation"])
        if kind is None or kind == THRESHOLD:
            return None
        i = 0
        while i < len(rest) and rest[i].kind == "flatten":
            i += 1
        if i == len(rest) or rest[i].kind not in _AFFINE or rest[i].kind == "channel_affine":
            # a per-channel affine map (BatchNorm kept apart, ReLU6's clamp) is applied at
            # every vertex: as cheap as its carry, and exact where its input is constant
            # (a saturated hard-tanh's -1 maps to exactly 0; a carry leaves noise)
            return None
        if self.dense_t(rest[i], keep) is None:
            return None
        return i

    def dense_t(self, op: Op, keep: bool = False) -> Any:
        """The affine op as a ``(width + 1, width_next)`` matrix (its transposed linear
        part, the bias last), built once per walk call; None above ``_DENSE_T_BYTES``.
        ``keep``: followed by the identity's ``width`` columns (the op's input too)."""
        with self.lock:
            if (id(op), keep) not in self.dense:  # op kept: its id stays its own
                self.dense[id(op), keep] = (op, self._dense_t(op, keep))
            return self.dense[id(op), keep][1]

    def _dense_t(self, op: Op, keep: bool) -> Any:
        xp = self.xp
        d, dt = _prod(op.in_shape), self.cur.dtype
        wt = None
        if op.kind == "conv2d" and _sparse_columns(op, keep):
            ptr, idx, val = _conv2d_columns(op, keep, dt, xp)
            bias = xp.zeros(op.size + d * keep, dtype=dt)
            bias[: op.size] = apply_affine(op, xp.zeros((1, d), dtype=dt), xp)[0]
            return _SparseColumns(ptr, idx, val, bias)
        if (d + 1) * (op.size + d * keep) * dt.itemsize <= _DENSE_T_BYTES:
            wt = xp.zeros((d + 1, op.size + d * keep), dtype=dt)
            if keep:
                wt[xp.arange(d), op.size + xp.arange(d)] = 1
            if op.kind == "linear":
                wt[:d, : op.size] = op.arrays["weight"].T
            elif op.kind == "conv2d":
                _conv2d_matrix_t(op, wt[:d, : op.size], xp)
            else:
                lin = linear_part(op, xp)
                step = max(1, _IM2COL_BYTES // (8 * max(d, op.size)))
                for lo in range(0, d, step):
                    hi = min(d, lo + step)
                    eye = xp.zeros((hi - lo, d), dtype=dt)
                    eye[xp.arange(hi - lo), xp.arange(lo, hi)] = 1
                    wt[lo:hi, : op.size] = apply_affine(lin, eye, xp)
            wt[d, : op.size] = apply_affine(op, xp.zeros((1, d), dtype=dt), xp)[0]
        return wt

    def apply(self, op: Op) -> None:
        xp = self.xp
        if op.kind in _AFFINE:
            if op.kind != "flatten":
                self.cur = apply_affine(op, self.cur, xp)
                _check_finite(self.cur, op, xp, "starts, ends")
            return
        if op.kind in _JOINS:
            self._residual(op, self.own(self.cur), op.branches[0])
            return
        if op.kind == "act":
            self._act(op)
            return
        if op.kind == "maxpool2d":
            self._maxpool(op)
            return
        raise AssertionError(op.kind)

    def _residual(self, op: Op, x: Any, first: tuple[Op, ...]) -> None:
        """The residual ``op`` on input ``x``, its first branch from the current tensor on
        with the ops ``first`` (the rest of the branch) left to run."""
        self.depth += 1
        self.saved.append(x)
        self.run(first)
        x = self.saved.pop()
        self.saved.append(self.own(self.cur))
        self.cur = x
        self.run(op.branches[1])
        if op.kind == "concat":
            self.cur = self.xp.concatenate([self.saved.pop(), self.cur], axis=1)
        else:
            self.cur = self.saved.pop() + self.cur
            _check_finite(self.cur, op, self.xp, "starts, ends")
        self.depth -= 1

    def _act(self, op: Op) -> None:
        xp, k = self.xp, self.be.kernels
        kind, slope = ACTIVATIONS[op.params["activation"]], op.params["slope"]
        if self.constant:
            z = xp.array(self.cur, copy=True, order="C")
            k.pack_and_activate(z, self.codes, self.bit, kind, slope)
            self.bit += op.state_bits
            self.cur = z
            return
        V = self.cur
        js, ts, cs, thetas = [], [], [], []
        for theta in thresholds(kind):
            lo, hi = V[:-1], V[1:]
            j, c = xp.nonzero(((lo < theta) & (hi > theta)) | ((lo > theta) & (hi < theta)))
            if j.shape[0]:
                da, db = V[j, c] - theta, V[j + 1, c] - theta
                js.append(j)
                ts.append(self.vt[j] + (self.vt[j + 1] - self.vt[j]) * (da / (da - db)))
                cs.append(c)
                thetas.append(xp.full(c.shape[0], theta, dtype=V.dtype))
        # at its own crossing a neuron is exactly on the threshold: no rounding residue
        # (a dead ReLU stays exactly 0 on the next piece, as in the forward pass)
        self.split(js, ts, op, on=(cs, thetas))
        V = self.cur
        zm = xp.ascontiguousarray(self.midpoints(V))
        k.pack_and_activate(zm, self.codes, self.bit, kind, slope)
        self.bit += op.state_bits
        if kind == THRESHOLD:  # constant on each piece from here on
            if self.depth:
                raise InputError(
                    f"net: {op.where}: a threshold activation inside a residual block is not "
                    "supported by the exact walk"
                )
            self.cur = zm.copy()  # activated by pack_and_activate
            self.constant = True
            return
        slot = self.free_slot()  # V may be kept by a residual op: not activated in place
        out = self.take(slot, V.shape, V.dtype)
        out[...] = V
        k.apply_activation(out, kind, slope)
        self.put(out, slot)

    def _carry_snap(self, wt: Any, nxt: Op, after: Op | None, kind: int, slope: float) -> Any:
        """The snap arguments of the ``next_preactivations`` kernels for ``nxt``
        (:func:`fastmem._kinds.carry_snap`), unless nothing reads its values (the logits)."""
        xp = self.xp
        if after is None and not self.depth:
            return None, 0.0, 0.0
        sparse = isinstance(wt, _SparseColumns)
        bias = wt.bias if sparse else wt[-1]
        with self.lock:  # sum_j |W_kj|, made once per call
            if ("abs", id(nxt)) not in self.dense:
                if sparse:
                    w_abs = xp.bincount(wt.idx, weights=xp.abs(wt.val), minlength=len(wt.bias))
                else:
                    w_abs = xp.abs(wt[:-1]).sum(axis=0)
                self.dense["abs", id(nxt)] = (nxt, w_abs)
            w_abs = self.dense["abs", id(nxt)][1]
        return carry_snap(bias, w_abs, slope, kind, xp)

    def _act_affine(self, op: Op, ops: tuple[Op, ...], keep: bool = False) -> Any:
        """The act ``op`` and the affine op ``ops[0]`` after it, through the segment
        engine's kernels (cpp/include/fastmem/regions.hpp): crossings, the new pieces and
        their patterns; ``ops[0]`` applied at the old vertices only and carried to the new
        ones by one rank-1 update per crossing (its dense matrix from :meth:`dense_t`).
        ``ops[1]``, when there: the op after it. ``keep``: returns the act's output at the
        vertices (carried alongside, as an identity op's)."""
        nxt, after = ops[0], (ops[1] if len(ops) > 1 else None)
        xp, k = self.xp, self.be.kernels
        kind, slope = ACTIVATIONS[op.params["activation"]], op.params["slope"]
        Z, vt, vseg = xp.ascontiguousarray(self.cur), self.vt, self.vseg
        nv = vt.shape[0]
        pseg = vseg[:-1][self.valid()]
        n = pseg.shape[0]
        counts = self.counts
        if counts is None or counts.shape[0] != n:
            counts = xp.empty(n, dtype=np.int64)
            k.count_crossings(Z, pseg, kind, counts)
        offsets = xp.zeros(n + 1, dtype=np.int64)
        xp.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        buf = xp.empty(total, dtype=Z.dtype)
        k.collect_crossings(Z, vt, pseg, kind, self.tol, offsets, buf, counts)
        child = xp.zeros(n + 1, dtype=np.int64)
        xp.cumsum(counts + 1, out=child[1:])
        nc = int(child[-1])
        carried = Z.shape[1] + nxt.size + sum(s.shape[1] for s in self.saved)
        check_allocation(
            2.0 * (nc + nv - n) * carried * Z.dtype.itemsize,
            f"the {nc + nv - n} vertices of {nv} after {op.where}",
            "starts",
            xp,
        )
        wt = self.dense_t(nxt, keep)
        # after a convolution's act op: nxt at the old vertices along each segment, by the
        # rank-1 updates of the flipped neurons' receptive fields, instead of a GEMM over
        # them (CPU backends; on a GPU the GEMM)
        chain = (
            _CHAIN
            and self.cause is not None
            and not keep
            and not isinstance(wt, _SparseColumns)
            and hasattr(k, "chain_values")
        )
        H = self.take(3, Z.shape, Z.dtype)
        new_vt = xp.empty(nc + nv - n, dtype=vt.dtype)
        new_seg = xp.empty(nc, dtype=np.int64)
        codes = xp.empty((nc, self.codes.shape[1]), dtype=np.uint64)
        scratch = xp.empty(2 * total, dtype=np.int64)
        k.emit_pieces(
            z=Z, vt=vt, pseg=pseg, codes=self.codes, buf=buf, offsets=offsets,
            child_offsets=child, kind=kind, slope=slope, bit_offset=self.bit,
            write_values=not chain, out_vt=new_vt, out_seg=new_seg, out_codes=codes, out_h=H,
            scratch=scratch,
        )  # fmt: skip
        self.bit += op.state_bits
        if chain:
            Z_old = self.take(3, (nv, nxt.size), Z.dtype)  # H's slot: H is not needed
            seg_pieces = xp.concatenate(
                [xp.zeros(1, dtype=np.int64), xp.flatnonzero(pseg[1:] != pseg[:-1]) + 1,
                 xp.full(1, n, dtype=np.int64)]
            )  # fmt: skip
            k.chain_values(
                Z, vt, pseg, seg_pieces, buf, offsets, child, kind, slope, wt, *self.cause,
                *self.cause_rf, _CHAIN_PERIOD, Z_old,
            )  # fmt: skip
        else:
            Z_old = apply_affine(nxt, H, xp)
        _check_finite(Z_old, nxt, xp, "starts, ends")
        if keep:
            Z_old = xp.concatenate([Z_old, H], axis=1)
        del H
        slot = self.free_slot()
        out = self.take(slot, (nc + nv - n, Z_old.shape[1]), Z.dtype)
        # the crossing counts of the act op right after nxt come with nxt's values
        kind_next = -1
        if after is not None and after.kind == "act" and not keep:
            kind_next = ACTIVATIONS.get(after.params["activation"], -1)
        next_counts = xp.empty(nc if kind_next >= 0 else 0, dtype=np.int64)
        causes = None
        snap = self._carry_snap(wt, nxt, after, kind, slope)
        if isinstance(wt, _SparseColumns):  # a convolution: its receptive fields only
            k.next_preactivations_sparse(
                Z, vt, pseg, buf, offsets, child, kind, slope, wt.ptr, wt.idx, wt.val,
                wt.bias, xp.ascontiguousarray(Z_old), scratch, out, kind_next, next_counts,
                *snap,
            )  # fmt: skip
            if kind_next >= 0 and hasattr(k, "breakpoint_causes"):  # for a chained pass
                causes = (xp.empty(nc + nv - n, dtype=np.int64), xp.empty(nc + nv - n, Z.dtype))
                k.breakpoint_causes(Z, vt, pseg, buf, offsets, child, kind, slope, scratch, *causes)
        else:
            k.next_preactivations(
                Z, vt, pseg, buf, offsets, child, kind, slope, wt,
                xp.ascontiguousarray(Z_old), scratch, out, kind_next, next_counts, *snap,
            )  # fmt: skip
        _check_finite(out, nxt, xp, "starts, ends")
        # where the old vertices went; each new vertex lies between old ones (left, left + 1)
        old_pos = child[xp.arange(nv) - vseg] + vseg
        left = xp.zeros(nc + nv - n, dtype=np.int64)
        left[old_pos[1:]] = 1
        left = xp.cumsum(left)
        fresh = xp.ones(nc + nv - n, dtype=bool)
        fresh[old_pos] = False
        if self.saved:
            j = left[fresh]
            lam = ((new_vt[fresh] - vt[j]) / (vt[j + 1] - vt[j]))[:, None]

            def interp(S: Any) -> Any:
                moved = xp.empty((nc + nv - n, S.shape[1]), dtype=S.dtype)
                moved[old_pos] = S
                A = S[j]
                moved[fresh] = A + lam * (S[j + 1] - A)
                return moved

            self.saved = [interp(s) for s in self.saved]
        self.vseg = vseg[left]
        self.vt, self.codes = new_vt, codes
        if keep:
            self.cur = xp.ascontiguousarray(out[:, : nxt.size])
            h = out[:, nxt.size :].copy()
        else:
            self.put(out, slot)
            h = None
            if causes is not None:
                self.cause, self.cause_rf = causes, (wt.ptr, wt.idx, wt.val)
        self.counts = next_counts if kind_next >= 0 else None
        return h
        self.largest = max(self.largest, nc)

    def _maxpool(self, op: Op) -> None:
        xp, k = self.xp, self.be.kernels
        V = self.cur
        K = op.window
        if not self.constant:
            x = _pad_hw(V.reshape(V.shape[0], *op.in_shape), op.params["pads"], -np.inf, xp)
            # the maximum of affine functions is convex: an entry is maximal on an interval,
            # so the argmax changes inside a piece only where it differs at the two ends
            best, top = _window_max(x, op, xp, argmax=True)
            r0, w0 = xp.nonzero((top[:-1] != top[1:]) & self.valid()[:, None])
            del top
            ends = (_window_entries(x, op, r0, w0, xp), _window_entries(x, op, r0 + 1, w0, xp))
            del x
            # each window entry's column of V (-1: padding), for the cuts' exact ties
            img = xp.arange(V.shape[1], dtype=np.float64).reshape(1, *op.in_shape)
            img = _pad_hw(img, op.params["pads"], -1.0, xp)
            col = _window_entries(img, op, xp.zeros_like(w0), w0, xp).astype(np.int64)
            js, ts, on_cols, on_vals = [], [], [], []
            for i in range(K):
                for j2 in range(i + 1, K):
                    lo, hi = ends[0][:, i] - ends[0][:, j2], ends[1][:, i] - ends[1][:, j2]
                    q = xp.nonzero(((lo < 0) & (hi > 0)) | ((lo > 0) & (hi < 0)))[0]
                    if not q.shape[0]:
                        continue
                    lam = lo[q] / (lo[q] - hi[q])
                    # only where both entries are maximal can the argmax change; the
                    # margin keeps more cuts than needed (a cut inside a region is merged
                    # away at the end), never fewer
                    a, b = ends[0][q], ends[1][q]
                    # padding (-inf at both ends) stays -inf, and out of the scale
                    at = xp.where(a == b, a, a + lam[:, None] * (b - a))
                    scale = xp.maximum(
                        xp.abs(xp.where(xp.isfinite(a), a, 0.0)).max(axis=1),
                        xp.abs(xp.where(xp.isfinite(b), b, 0.0)).max(axis=1),
                    )
                    keep = at[:, i] >= at.max(axis=1) - 1e-9 * (scale + 1.0)
                    r, lam = r0[q][keep], lam[keep]
                    t = self.vt[r] + (self.vt[r + 1] - self.vt[r]) * lam
                    # the two entries are equal at the cut: both take one value there (a
                    # constant entry's, exact, if either is), as the forward pass's tie
                    ai, bi, aj, bj = a[keep, i], b[keep, i], a[keep, j2], b[keep, j2]
                    val = xp.where(aj == bj, aj, xp.where(ai == bi, ai, at[keep, i]))
                    for e in (i, j2):
                        js.append(r)
                        ts.append(t)
                        on_cols.append(col[q[keep], e])
                        on_vals.append(val)
            moved = self.split(js, ts, op, on=(on_cols, on_vals))
            V = self.cur
        n = V.shape[0]
        if op.state_bits:
            zm = V if self.constant else self.midpoints(V)
            x = _pad_hw(zm.reshape(zm.shape[0], *op.in_shape), op.params["pads"], -np.inf, xp)
            # entries equal on the whole piece (e.g. two dead neurons' equal constants, an
            # exact tie in the forward pass, whose first entry wins there) may differ here
            # by the rounding of the interpolated vertex values: within 2^-40 of the
            # window's largest magnitude they are ties, as in the forward pass
            mag = _pad_hw(xp.abs(zm).reshape(x.shape[0], *op.in_shape), op.params["pads"],
                          0.0, xp)  # fmt: skip
            tie = _window_max(mag, op, xp)[0].reshape(x.shape[0], *op.out_shape) * 2.0**-40
            del mag
            _, idx = _window_max(x, op, xp, argmax=True, tie=tie)
            pack_argmax(idx, self.codes, self.bit, op.state_bits // op.size, V.dtype, k)
            self.bit += op.state_bits
        if self.constant:
            x = _pad_hw(V.reshape(n, *op.in_shape), op.params["pads"], -np.inf, xp)
            self.cur, _ = _window_max(x, op, xp)
            return
        # the old vertices' maxima are known (best): the window maxima at the cuts only
        if moved is not None:
            old_pos, cut_pos = moved
            out = xp.empty((n, best.shape[1]), dtype=best.dtype)
            out[old_pos] = best
            cut = V[cut_pos]
            x = _pad_hw(cut.reshape(cut.shape[0], *op.in_shape), op.params["pads"], -np.inf, xp)
            out[cut_pos], _ = _window_max(x, op, xp)
            best = out
        self.cur = best

    def split(self, js: list[Any], ts: list[Any], op: Op, on: Any = None) -> Any:
        """Insert vertices at the given ``t`` between vertex ``j`` and ``j + 1`` (ties
        within ``tol`` merged, none within ``tol`` of a piece's ends, pairs across two
        segments ignored); interpolate every carried tensor there. ``on``: per cut, the
        column of the current tensor that is exactly ``value`` at it. Returns where the
        old vertices and the cuts went, ``(old_pos, cut_pos)``, or None without a cut."""
        xp = self.xp
        if not js:
            return None
        j = xp.concatenate(js)
        t = xp.concatenate(ts)
        ok = self.valid()[j] & (t - self.vt[j] > self.tol) & (self.vt[j + 1] - t > self.tol)
        j, t = j[ok], t[ok]
        if not j.shape[0]:
            return None
        order = xp.lexsort(xp.stack([t, j]))
        j, t = j[order], t[order]
        # chains of cuts closer than tol are one cut, at the middle of the chain
        start = xp.concatenate(
            [xp.ones(1, dtype=bool), (j[1:] != j[:-1]) | (t[1:] - t[:-1] > self.tol)]
        )
        cluster = xp.cumsum(start) - 1
        firsts = xp.nonzero(start)[0]
        lasts = xp.concatenate([firsts[1:] - 1, xp.asarray([j.shape[0] - 1])])
        j = j[firsts]
        t = t[firsts] * 0.5 + t[lasts] * 0.5
        nv, nc = self.vt.shape[0], int(j.shape[0])
        carried = self.cur.shape[1] + sum(s.shape[1] for s in self.saved)
        check_allocation(
            3.0 * (nv + nc) * carried * self.cur.dtype.itemsize,
            f"the {nv + nc} vertices of {nv} after {op.where}",
            "starts",
            xp,
        )
        ncut = xp.bincount(j, minlength=nv)
        shift = xp.cumsum(ncut) - ncut
        old_pos = xp.arange(nv) + shift
        rank = xp.arange(nc) - shift[j]
        cut_pos = old_pos[j] + 1 + rank
        lam = ((t - self.vt[j]) / (self.vt[j + 1] - self.vt[j])).astype(self.cur.dtype)[:, None]

        def insert(V: Any, cut: Any, slot: int = 0) -> Any:
            shape = (nv + nc, *V.shape[1:])
            out = self.take(slot, shape, V.dtype) if slot else xp.empty(shape, dtype=V.dtype)
            out[old_pos] = V
            out[cut_pos] = cut
            return out

        def interp(V: Any, slot: int = 0) -> Any:
            A = take_rows(V, j, self.take(3, (nc, V.shape[1]), V.dtype), xp)
            step = take_rows(V, j + 1, self.take(4, A.shape, V.dtype), xp)
            step -= A
            step *= lam
            A += step  # A + lam (V[j + 1] - A)
            return insert(V, A, slot)

        # the pieces that were cut: piece of pair j is j - vseg[j]; each new piece of a
        # cut piece keeps its pattern so far
        P = self.codes.shape[0]
        per_piece = xp.bincount(j - self.vseg[j], minlength=P)
        self.codes = self.codes[xp.repeat(xp.arange(P), per_piece + 1)]
        slot = self.free_slot()
        self.put(interp(self.cur, slot), slot)
        if on is not None:
            cols = xp.concatenate(on[0])[ok][order]
            vals = xp.concatenate(on[1])[ok][order]
            self.cur[cut_pos[cluster], cols] = vals
        self.saved = [interp(s) for s in self.saved]
        self.vseg = insert(self.vseg, self.vseg[j])
        self.vt = insert(self.vt, t)
        self.largest = max(self.largest, P + nc)
        return old_pos, cut_pos


def exact_segments(
    graph: LayerGraph,
    A: Any,
    B: Any,
    t0: float,
    t1: float,
    be: Any,
    tol: float,
    words: int,
    chunk_size: int | None,
    *,
    direction: bool = False,
) -> Any:
    """Pieces of the segments ``A + t (B - A)`` (``A + t B`` with ``direction``),
    ``t in [t0, t1]``, through ``graph``.

    Yields, per chunk of segments ``[lo, hi)``: ``(lo, hi, seg, t_lo, t_hi, codes,
    logits_lo, logits_hi)``, the pieces sorted by (segment, t), ``seg`` counted from
    ``lo``, adjacent equal patterns not yet merged, the network's output at both ends.
    Chunks have ``chunk_size`` segments, or (None) as many as keep the pieces near
    ``_WALK_BYTES`` judged from the bytes per segment seen so far.
    """
    xp = be.xp
    m = A.shape[0]
    item = A.dtype.itemsize
    size = chunk_size or _FIRST_SEGMENTS
    per_seg = float(item * graph.input_dim)  # bytes per segment at the busiest op
    dense: dict[int, Any] = {}  # _Walk.dense_t's matrices, built once for all chunks
    lock = threading.Lock()

    from ._engine import Workspace  # here: fastmem._engine imports this module

    local = threading.local()  # a workspace per thread

    def cut(lo: int, hi: int) -> tuple[float, tuple[Any, ...]]:
        """The peak bytes per segment and the pieces of the chunk (out of the workspace)."""
        with np.errstate(over="ignore", invalid="ignore"):
            D = B[lo:hi] if direction else B[lo:hi] - A[lo:hi]
        if not bool(xp.isfinite(D).all()):
            raise InputError("starts, ends: ends - starts overflows (is not finite)")
        Va = A[lo:hi] + A.dtype.type(t0) * D
        Vb = A[lo:hi] + A.dtype.type(t1) * D
        if not (bool(xp.isfinite(Va).all()) and bool(xp.isfinite(Vb).all())):
            raise InputError(
                f"starts, ends, t_range: points of the segments at t = {t0:g} or {t1:g} "
                "overflow (are not finite)"
            )
        ws = getattr(local, "ws", None)
        if ws is None:
            ws = local.ws = Workspace(xp)
        w = _Walk(be, Va, Vb, t0, t1, words, tol, dense, lock, ws)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            w.run(graph.ops)
        return w.peak_bytes / (hi - lo), w.pieces()

    # As the segment engine (fastmem._engine.run): on a CPU backend whose kernels two
    # threads may call at once, _SIDE_BY_SIDE chunks are cut at once, each on its share
    # of the cores (BLAS on one thread); chunk j's size comes from the chunks before
    # j - _IN_FLIGHT + 1 only, so the chunks (and the results) do not depend on timing.
    threads = cpu_threads(be)
    side_by_side = kernels_callable_side_by_side(be) and threads >= 2 and m > size
    share = max(1, threads // _SIDE_BY_SIDE)

    def job(lo: int, hi: int) -> tuple[float, tuple[Any, ...]]:
        with kernel_threads(be, share):
            return cut(lo, hi)

    pending: deque[tuple[int, int, Any]] = deque()
    lo = 0
    with contextlib.ExitStack() as stack:
        if side_by_side:
            stack.enter_context(kernels_own_the_cores(be))
            pool = stack.enter_context(
                ThreadPoolExecutor(_SIDE_BY_SIDE, thread_name_prefix="fastmem-walk")
            )
            # the caller's kernels between chunks (hashing, in this thread while the
            # generator waits at its yield) share the cores too, as fastmem._engine.run's
            # visit: an OpenMP team of its own would spin beside the workers
            stack.enter_context(kernel_threads(be, share))
        try:
            while lo < m or pending:
                while lo < m and len(pending) < (_IN_FLIGHT if side_by_side else 1):
                    hi = min(m, lo + size)
                    pending.append((lo, hi, pool.submit(job, lo, hi) if side_by_side else None))
                    lo = hi
                a, b, fut = pending.popleft()
                peak, pieces = fut.result() if side_by_side else cut(a, b)
                per_seg = max(per_seg, peak)
                if chunk_size is None:
                    size = int(max(1, min(4096, _WALK_BYTES / per_seg)))
                yield (a, b, *pieces)
        finally:
            for _, _, left in pending:  # an error or an early close: start nothing queued
                if left is not None:
                    left.cancel()


# ------------------------------------------------------------------ building ops
def _where(name: str, source: str) -> str:
    return f"{name} ({source})"


def _pair(v: Any, what: str, where: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v), int(v))
    try:
        t = tuple(int(x) for x in v)
    except (TypeError, ValueError):
        t = ()
    if len(t) != 2:
        raise InputError(f"{where}: {what} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def _finite_array(
    a: Any, where: str, what: str, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    if a is None:
        raise InputError(f"{where}: {what} is missing")
    arr = np.asarray(a, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        raise InputError(f"{where}: {what} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{where}: {what} holds NaN or Inf")
    return arr


def _spatial(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise InputError(f"{where}: takes a (C, H, W) tensor per sample, got {shape_str(shape)}")
    return shape  # type: ignore[return-value]


def _out_hw(
    shape: tuple[int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[tuple[int, int], tuple[int, int]],
    dilation: tuple[int, int],
    where: str,
) -> tuple[int, int]:
    _, H, W = shape
    if min(*kernel, *stride, *dilation) < 1 or min(*pads[0], *pads[1]) < 0:
        raise InputError(
            f"{where}: kernel {kernel}, stride {stride} and dilation {dilation} must be >= 1 "
            f"and padding {pads} >= 0"
        )
    Ho = (H + pads[0][0] + pads[0][1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    Wo = (W + pads[1][0] + pads[1][1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    if Ho < 1 or Wo < 1:
        raise InputError(
            f"{where}: kernel {kernel[0]}x{kernel[1]} (dilation {dilation[0]}x{dilation[1]}) "
            f"does not fit the padded input of shape {shape_str(shape)}"
        )
    return Ho, Wo


def make_linear(name: str, source: str, in_shape: tuple[int, ...], weight: Any, bias: Any) -> Op:
    where = _where(name, source)
    if len(in_shape) != 1:
        raise InputError(
            f"{where}: takes a flat (d,) tensor per sample, got {shape_str(in_shape)}; "
            "add a Flatten before it"
        )
    w = _finite_array(weight, where, "weight")
    if w.ndim == 2 and w.shape[0] == 0:
        raise InputError(f"{where}: has no outputs (out_features = 0)")
    if w.ndim != 2 or w.shape[1] != in_shape[0]:
        raise InputError(
            f"{where}: expects {w.shape[-1] if w.ndim == 2 else '?'} inputs, got a tensor of "
            f"shape {shape_str(in_shape)}"
        )
    b = np.zeros(w.shape[0]) if bias is None else _finite_array(bias, where, "bias", (w.shape[0],))
    return Op("linear", name, source, in_shape, (int(w.shape[0]),), {"weight": w, "bias": b})


def make_conv2d(
    name: str,
    source: str,
    in_shape: tuple[int, ...],
    weight: Any,
    bias: Any,
    stride: Any,
    pads: Any,
    dilation: Any,
    groups: int,
) -> Op:
    where = _where(name, source)
    shape = _spatial(in_shape, where)
    w = _finite_array(weight, where, "weight")
    if w.ndim != 4:
        raise InputError(f"{where}: weight must be (out, in / groups, kh, kw), got {w.shape}")
    n_out, cg, kh, kw = (int(s) for s in w.shape)
    if n_out == 0:
        raise InputError(f"{where}: has no outputs (out_channels = 0)")
    groups = int(groups)
    if groups < 1 or n_out % groups or shape[0] != cg * groups:
        raise InputError(
            f"{where}: expects {cg * groups} input channels in {groups} group(s), got a tensor "
            f"of shape {shape_str(in_shape)}"
        )
    st, dl = _pair(stride, "stride", where), _pair(dilation, "dilation", where)
    pd = (_pair(pads[0], "padding", where), _pair(pads[1], "padding", where))
    Ho, Wo = _out_hw(shape, (kh, kw), st, pd, dl, where)
    arrays = {"weight": w}
    if bias is not None:
        arrays["bias"] = _finite_array(bias, where, "bias", (n_out,))
    params = {"stride": st, "pads": pd, "dilation": dl, "groups": groups, "kernel": (kh, kw)}
    return Op("conv2d", name, source, in_shape, (n_out, Ho, Wo), arrays, params)


def make_pool(
    kind: str,
    name: str,
    source: str,
    in_shape: tuple[int, ...],
    kernel: Any,
    stride: Any,
    pads: Any,
    dilation: Any = 1,
    *,
    count_include_pad: bool = True,
    divisor_override: Any = None,
) -> Op:
    """``maxpool2d`` or ``avgpool2d``. ``pads`` ((top, bottom), (left, right)): torch's
    symmetric padding, the bottom / right ones larger by less than a stride where torch's
    ``ceil_mode=True`` adds a last window (:func:`ceil_mode_pads`); the padding is -inf for
    max pooling, 0 for average pooling, whose divisors are torch's: a window's size clipped
    to the input plus torch's padding (``count_include_pad``), or to the input alone."""
    where = _where(name, source)
    shape = _spatial(in_shape, where)
    k = _pair(kernel, "kernel_size", where)
    st = _pair(stride if stride is not None else kernel, "stride", where)
    pd = (_pair(pads[0], "padding", where), _pair(pads[1], "padding", where))
    dl = _pair(dilation, "dilation", where)
    if min(*k, *st, *dl) < 1:
        raise InputError(f"{where}: kernel {k}, stride {st} and dilation {dl} must be >= 1")
    if (
        pd[0][0] > k[0] // 2
        or pd[1][0] > k[1] // 2
        or not pd[0][0] <= pd[0][1] < pd[0][0] + st[0]
        or not pd[1][0] <= pd[1][1] < pd[1][0] + st[1]
    ):
        raise InputError(
            f"{where}: padding must be symmetric and at most half the kernel (ceil_mode: the "
            f"bottom / right padding larger by less than the stride), got {pd}"
        )
    Ho, Wo = _out_hw(shape, k, st, pd, dl, where)
    params: dict[str, Any] = {"kernel": k, "stride": st, "pads": pd, "dilation": dl}
    arrays: dict[str, Any] = {}
    if kind == "avgpool2d":
        if dl != (1, 1):
            raise InputError(f"{where}: dilation is not supported for average pooling")
        params["count_include_pad"] = bool(count_include_pad)
        params["divisor_override"] = None if divisor_override is None else int(divisor_override)
        if divisor_override is not None:
            if int(divisor_override) < 1:
                raise InputError(f"{where}: divisor_override must be >= 1, got {divisor_override}")
            inv = np.full((Ho, Wo), 1.0 / int(divisor_override))
        else:
            # torch's divisor: each window clipped to the map plus its padding (the extra
            # ceil_mode padding never counts), or to the map alone
            sizes = []
            for n_out, size, kk, ss, (p, _) in zip((Ho, Wo), shape[1:], k, st, pd, strict=True):
                start = np.arange(n_out) * ss - p
                end = np.minimum(start + kk, size + p)
                if not count_include_pad:
                    start, end = np.maximum(start, 0), np.minimum(end, size)
                sizes.append(end - start)
            inv = 1.0 / np.multiply.outer(sizes[0], sizes[1]).astype(np.float64)
        arrays["inv_divisor"] = inv
    elif kind != "maxpool2d":
        raise AssertionError(kind)
    return Op(kind, name, source, in_shape, (shape[0], Ho, Wo), arrays, params)


def ceil_mode_pads(
    where: str, in_shape: tuple[int, ...], kernel: Any, stride: Any, pads: Any, dilation: Any = 1
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The padding ((top, bottom), (left, right)) under which a pool's output is torch's
    with ``ceil_mode=True``: ``ceil`` instead of ``floor`` in the output size, less a last
    window that would start in the bottom / right padding; the extra bottom / right padding
    lets the last window hang over the map (-inf for max pooling, 0 and not counted in the
    divisor for average pooling).

    Examples
    --------
    >>> ceil_mode_pads("pool", (1, 8, 8), 3, 2, ((0, 0), (0, 0)))
    ((0, 1), (0, 1))
    >>> ceil_mode_pads("pool", (1, 7, 7), 3, 2, ((1, 1), (1, 1)))  # floor fits already
    ((1, 1), (1, 1))
    """
    shape = _spatial(in_shape, where)
    k = _pair(kernel, "kernel_size", where)
    st = _pair(stride if stride is not None else kernel, "stride", where)
    dl = _pair(dilation, "dilation", where)
    pd = (_pair(pads[0], "padding", where), _pair(pads[1], "padding", where))
    if min(*k, *st, *dl) < 1:
        raise InputError(f"{where}: kernel {k}, stride {st} and dilation {dl} must be >= 1")
    out = []
    for size, kk, ss, dd, (p, _) in zip(shape[1:], k, st, dl, pd, strict=True):
        span = size + 2 * p - dd * (kk - 1) - 1
        n_out = -(-span // ss) + 1  # ceil
        if (n_out - 1) * ss >= size + p:  # the last window would start in the padding
            n_out -= 1
        extra = (n_out - 1) * ss + dd * (kk - 1) + 1 - size - p
        out.append((p, max(p, extra)))
    return (out[0], out[1])


def adaptive_pool_kernel(
    where: str, output_size: Any, in_shape: tuple[int, ...]
) -> tuple[int, int]:
    """The kernel (= stride, no padding) of an adaptive 2-D pool on ``in_shape``.

    PyTorch's adaptive pool over an ``H x W`` map to ``oh x ow`` takes window ``i`` from
    ``floor(i H / oh)`` to ``ceil((i + 1) H / oh)``: where ``oh`` divides ``H`` (and ``ow``
    divides ``W``) these are the windows of an ordinary pool of kernel and stride
    ``(H / oh, W / ow)``, which is how it is imported (``AdaptiveAvgPool2d((1, 1))``, global
    average pooling, always is). Other sizes have windows of unequal sizes, refused.
    ``None`` in ``output_size`` keeps that dimension's size.

    Examples
    --------
    >>> adaptive_pool_kernel("avgpool", (1, 1), (512, 7, 7))
    (7, 7)
    >>> adaptive_pool_kernel("avgpool", (2, None), (8, 4, 6))
    (2, 1)
    """
    _, H, W = _spatial(in_shape, where)
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        size: tuple[Any, Any] = (int(output_size), int(output_size))
    else:
        try:
            size = tuple(output_size)  # type: ignore[assignment]
        except TypeError:
            size = ()  # type: ignore[assignment]
        if len(size) != 2:
            raise InputError(f"{where}: output_size must be an int or a pair, got {output_size!r}")
    out = []
    for dim, o in zip((H, W), size, strict=True):
        o = dim if o is None else o
        if isinstance(o, bool) or not isinstance(o, (int, np.integer)) or o < 1:
            raise InputError(f"{where}: output_size must hold positive ints, got {output_size!r}")
        out.append(int(o))
    oh, ow = out
    if H % oh or W % ow:
        raise InputError(
            f"{where}: output size {oh}x{ow} does not divide the input map {H}x{W}: its "
            "windows would have unequal sizes (only equal windows are supported: choose "
            "input_shape or output_size so that it divides, or use a pool with explicit "
            "kernel_size)"
        )
    return (H // oh, W // ow)


def make_channel_affine(
    name: str, source: str, in_shape: tuple[int, ...], scale: Any, shift: Any
) -> Op:
    where = _where(name, source)
    C = in_shape[0]
    s = _finite_array(scale, where, "scale", (C,))
    t = _finite_array(shift, where, "shift", (C,))
    return Op("channel_affine", name, source, in_shape, in_shape, {"scale": s, "shift": t})


def make_flatten(name: str, source: str, in_shape: tuple[int, ...]) -> Op:
    return Op("flatten", name, source, in_shape, (_prod(in_shape),))


def make_act(
    name: str, source: str, in_shape: tuple[int, ...], activation: str, slope: float
) -> Op:
    where = _where(name, source)
    if activation not in ACTIVATIONS and activation not in SMOOTH:
        raise InputError(f"{where}: unknown activation {activation!r}")
    slope = float(slope) if activation == "leaky_relu" else 0.0
    if not math.isfinite(slope):
        raise InputError(f"{where}: negative_slope must be finite, got {slope}")
    return Op(
        "act", name, source, in_shape, in_shape, {}, {"activation": activation, "slope": slope}
    )


def _branch_shape(in_shape: tuple[int, ...], branch: tuple[Op, ...]) -> tuple[int, ...]:
    """The per-sample shape a join's branch ends in (its input's where empty)."""
    return tuple(branch[-1].out_shape) if branch else tuple(in_shape)


def branch_size(op: Op, i: int) -> int:
    """Elements per sample of branch ``i``'s output of a join (its input where empty)."""
    return _prod(_branch_shape(op.in_shape, op.branches[i]))


def make_concat(
    name: str, source: str, in_shape: tuple[int, ...], first: tuple[Op, ...], second: tuple[Op, ...]
) -> Op:
    """``[A(x), B(x)]`` along the channels (the first axis of a ``(C, H, W)`` or ``(d,)``
    tensor): the branches' outputs must agree in every other dimension."""
    where = _where(name, source)
    a, b = (_branch_shape(in_shape, br) for br in (first, second))
    if len(a) != len(b) or a[1:] != b[1:]:
        raise InputError(
            f"{where}: joins tensors of shapes {shape_str(a)} and {shape_str(b)} along the "
            "channels; the other dimensions must agree"
        )
    out = (a[0] + b[0], *a[1:])
    return Op("concat", name, source, in_shape, out, {}, {}, (tuple(first), tuple(second)))


def make_residual(
    name: str, source: str, in_shape: tuple[int, ...], first: tuple[Op, ...], second: tuple[Op, ...]
) -> Op:
    where = _where(name, source)
    shapes = [_branch_shape(in_shape, br) for br in (first, second)]
    if shapes[0] != shapes[1]:
        raise InputError(
            f"{where}: adds tensors of shapes {shape_str(shapes[0])} and {shape_str(shapes[1])}"
        )
    return Op("residual", name, source, in_shape, shapes[0], {}, {}, (tuple(first), tuple(second)))


# ------------------------------------------------------------------ save / load
def to_spec(graph: LayerGraph) -> tuple[list[Any], dict[str, np.ndarray]]:
    """A JSON-able description of the ops and the arrays it names (for ``.npz``)."""
    arrays: dict[str, np.ndarray] = {}

    def one(op: Op) -> dict[str, Any]:
        keys = {}
        for key, value in op.arrays.items():
            if op.kind == "avgpool2d":
                continue  # derived from the settings
            member = f"op{len(arrays)}_{key}"
            arrays[member] = value
            keys[key] = member
        params = _params_spec(op)
        return {
            "kind": op.kind,
            "name": op.name,
            "source": op.source,
            "arrays": keys,
            "params": params,
            "branches": [[one(o) for o in br] for br in op.branches],
        }

    return [one(op) for op in graph.ops], arrays


def _params_spec(op: Op) -> dict[str, Any]:
    """An op's parameters as :func:`to_spec` writes them (JSON: tuples as lists)."""
    return {
        k: (list(map(list, v)) if k == "pads" else list(v) if isinstance(v, tuple) else v)
        for k, v in op.params.items()
    }


def from_spec(spec: Any, input_shape: Any, data: Any) -> LayerGraph:
    """Rebuild (and so re-check) a graph written by :func:`to_spec`; ``InputError`` on any
    inconsistency."""

    def arr(d: dict[str, Any], key: str) -> Any:
        member = d["arrays"].get(key)
        return None if member is None else data[str(member)]

    def build(items: Any, shape: tuple[int, ...]) -> tuple[tuple[Op, ...], tuple[int, ...]]:
        ops = []
        for d in items:
            kind, name, source, p = str(d["kind"]), str(d["name"]), str(d["source"]), d["params"]
            if kind == "linear":
                op = make_linear(name, source, shape, arr(d, "weight"), arr(d, "bias"))
            elif kind == "conv2d":
                op = make_conv2d(
                    name, source, shape, arr(d, "weight"), arr(d, "bias"), p["stride"],
                    p["pads"], p["dilation"], p["groups"],
                )  # fmt: skip
            elif kind in ("maxpool2d", "avgpool2d"):
                op = make_pool(
                    kind, name, source, shape, p["kernel"], p["stride"], p["pads"],
                    p["dilation"], count_include_pad=p.get("count_include_pad", True),
                    divisor_override=p.get("divisor_override"),
                )  # fmt: skip
            elif kind == "channel_affine":
                op = make_channel_affine(name, source, shape, arr(d, "scale"), arr(d, "shift"))
            elif kind == "flatten":
                op = make_flatten(name, source, shape)
            elif kind == "act":
                op = make_act(name, source, shape, str(p["activation"]), float(p["slope"]))
            elif kind in _JOINS:
                if len(d["branches"]) != 2:
                    raise InputError(f"{name}: a {kind} op has two branches")
                first, _ = build(d["branches"][0], shape)
                second, _ = build(d["branches"][1], shape)
                join = make_residual if kind == "residual" else make_concat
                op = join(name, source, shape, first, second)
            else:
                raise InputError(f"unknown op kind {kind!r}")
            # what was rebuilt from the arrays must be what was recorded (a conv's kernel
            # comes from its weight's shape)
            rebuilt = _params_spec(op)
            for key in sorted(set(p) | set(rebuilt)):
                if key not in rebuilt or key not in p or p[key] != rebuilt[key]:
                    raise InputError(
                        f"{name}: its recorded {key} ({p.get(key)!r}) does not match its "
                        f"arrays ({rebuilt.get(key)!r})"
                    )
            ops.append(op)
            shape = op.out_shape
        return tuple(ops), shape

    shape = tuple(int(s) for s in input_shape)
    ops, _ = build(spec, shape)
    if not ops:
        raise InputError("a network needs at least one op")
    return LayerGraph(ops, shape)


# ------------------------------------------------------------------ boundary distances
class _Distances:
    """``distance_to_boundary`` on a layer graph, for one chunk of rows: the forward
    pass's tangent (:class:`_Pass`), the values computed by the pass itself.

    Carries beside each row's values ``z`` (r, w) their Jacobian ``J`` (r, w, d) with
    respect to the input, kept as ``J * 2**-jexp`` per row (``fastmem.regions._rescale``). At each
    state op (numbered from 0 in execution order) the distance of a neuron to its threshold
    is ``|z - theta| / ||grad z||``; of a max-pooling window to the tie of its maximum with
    another entry ``(z_max - z_i) / ||grad z_max - grad z_i||``.
    """

    def __init__(self, be: Any, helpers: Any, r: int, dtype: Any) -> None:
        self.be, self.xp = be, be.xp
        self.h = helpers  # (row_norms, rescale, check_layer) from fastmem.regions
        xp = self.xp
        self.dist = xp.full(r, np.inf, dtype=dtype)
        self.layer = xp.full(r, -1, dtype=np.int64)
        self.neuron = xp.full(r, -1, dtype=np.int64)
        self.index = 0
        self._linear: dict[int, Op] = {}

    def linear_part(self, op: Op) -> Op:
        got = self._linear.get(id(op))
        if got is None:
            got = self._linear[id(op)] = linear_part(op, self.xp)
        return got

    def tangents(self, op: Op, J: Any) -> Any:
        """The op's linear part applied to every column of ``J`` (r, w, d)."""
        xp = self.xp
        r, w, d = J.shape
        rows = xp.ascontiguousarray(J.transpose(0, 2, 1)).reshape(r * d, w)
        out = apply_affine(self.linear_part(op), rows, xp)
        return xp.ascontiguousarray(out.reshape(r, d, -1).transpose(0, 2, 1))

    def record(self, dj: Any, jexp: Any) -> None:
        xp = self.xp
        with np.errstate(over="ignore", under="ignore"):
            dj = xp.ldexp(dj, -jexp[:, None])
        best = dj.argmin(axis=1)
        val = dj[xp.arange(dj.shape[0]), best]
        better = val < self.dist
        self.dist = xp.where(better, val, self.dist)
        self.layer = xp.where(better, self.index, self.layer)
        self.neuron = xp.where(better, best, self.neuron)
        self.index += 1

    # the hooks of the forward pass (:class:`_Pass`), carry = (J, jexp)
    def affine(self, op: Op, carry: Any) -> Any:
        J, jexp = carry
        with np.errstate(over="ignore", invalid="ignore"):
            return self.tangents(op, J), jexp

    def merge(self, a: Any, b: Any, kind: str = "residual") -> Any:
        xp = self.xp
        (Ja, ea), (Jb, eb) = a, b
        e = xp.maximum(ea, eb)
        Ja = xp.ldexp(Ja, (ea - e)[:, None, None]).astype(Ja.dtype, copy=False)
        Jb = xp.ldexp(Jb, (eb - e)[:, None, None]).astype(Jb.dtype, copy=False)
        if kind == "concat":  # the rows of both Jacobians, on one scale
            return xp.concatenate([Ja, Jb], axis=1), e
        with np.errstate(over="ignore", invalid="ignore"):
            return Ja + Jb, e

    def act(self, op: Op, z: Any, carry: Any) -> Any:
        xp = self.xp
        row_norms, rescale, check_layer = self.h
        J, jexp = carry
        kind = ACTIVATIONS[op.params["activation"]]
        with np.errstate(over="ignore", invalid="ignore"):
            gnorm = row_norms(J, xp)
        check_layer(z, gnorm, self.index)
        gap = xp.min(xp.stack([xp.abs(z - t) for t in thresholds(kind)]), axis=0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dj = xp.where(gnorm > 0, gap / gnorm, np.inf)
        self.record(dj, jexp)
        deriv = activation_slope(z, kind, op.params["slope"], xp)
        return rescale(deriv[:, :, None] * J, jexp, xp)

    def maxpool(self, op: Op, z: Any, carry: Any) -> Any:
        xp = self.xp
        _, rescale, check_layer = self.h
        J, jexp = carry
        r, _, d = J.shape
        K = op.window
        wz = windows(z, op, -np.inf, xp).reshape(r, -1, K)
        m = wz.shape[1]
        rows = xp.ascontiguousarray(J.transpose(0, 2, 1)).reshape(r * d, -1)
        wJ = windows(rows, op, 0.0, xp).reshape(r, d, m, K)
        top = wz.argmax(axis=2)  # (r, m)
        zmax = xp.take_along_axis(wz, top[:, :, None], axis=2)
        Jmax = xp.take_along_axis(wJ, top[:, None, :, None], axis=3)
        diff = (Jmax - wJ).transpose(0, 2, 3, 1)  # (r, m, K, d)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            gnorm = xp.sqrt((diff * diff).sum(axis=3))
            gap = zmax - wz
            ok = (gnorm > 0) & xp.isfinite(wz)
            ok &= xp.arange(K)[None, None, :] != top[:, :, None]
            dj = xp.where(ok, gap / xp.where(ok, gnorm, 1.0), np.inf).min(axis=2)
        check_layer(zmax, gnorm, self.index)
        self.record(dj, jexp)
        J = xp.ascontiguousarray(Jmax[:, :, :, 0].transpose(0, 2, 1))
        return rescale(J, jexp, xp)


def boundary_distances(graph: LayerGraph, X: Any, be: Any, helpers: Any) -> tuple[Any, Any, Any]:
    """Per row of ``X``: the distance to the nearest activation boundary of ``graph``, the
    state op (numbered in execution order) and the element attaining it."""
    xp = be.xp
    n, d = X.shape
    dist = xp.full(n, np.inf, dtype=X.dtype)
    layer = xp.full(n, -1, dtype=np.int64)
    neuron = xp.full(n, -1, dtype=np.int64)
    rows = max(1, 2**22 // (graph.max_width() * d))
    eye = xp.eye(d, dtype=X.dtype)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        walk = _Distances(be, helpers, hi - lo, X.dtype)
        J = xp.broadcast_to(eye, (hi - lo, d, d))
        carry = (J, xp.zeros(hi - lo, dtype=np.int32))
        with np.errstate(over="ignore", invalid="ignore"):  # check_layer names the layer
            _Pass(be, None, None, "X", None, False, tangent=walk, carry=carry).run(
                graph.ops, X[lo:hi]
            )
        dist[lo:hi], layer[lo:hi], neuron[lo:hi] = walk.dist, walk.layer, walk.neuron
    return dist, layer, neuron

"""Import a torch module into the layer model (``fastmem._graph``) by ``torch.fx`` tracing.

The module's ``forward`` is traced symbolically (``torch.fx.symbolic_trace``); every node
must be one of the supported operations:

* the modules ``Linear``, ``Conv2d``, ``AvgPool2d``, ``MaxPool2d`` (also with
  ``ceil_mode=True``: the last window hangs over the map's edge, as torch's),
  ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` where the output size divides the map
  (equal windows: an ordinary pool, e.g. global average pooling), eval-mode
  ``BatchNorm1d`` / ``BatchNorm2d`` (kept as a per-channel affine map), ``Flatten``,
  ``Identity`` / ``Dropout`` (dropped), ``ZeroPad2d`` / ``ConstantPad2d(p, 0)`` (as
  ``F.pad`` below), ``ReLU``, ``LeakyReLU``, ``PReLU`` with one slope (a leaky ReLU),
  ``Hardtanh`` (any bounds) / ``ReLU6`` / ``Hardsigmoid`` (the kinds hardtanh and relu6
  for the bounds (-1, 1) and (0, 6), else hard-tanh between two per-channel affine maps),
  ``Tanh``, ``Sigmoid``;
* their functional forms: ``F.relu`` / ``torch.relu`` / ``x.relu()``, ``F.leaky_relu``,
  ``F.hardtanh``, ``F.relu6``, ``F.hardsigmoid``, ``torch.tanh`` / ``torch.sigmoid`` (and
  methods),
  ``F.max_pool2d`` / ``torch.max_pool2d``, ``F.avg_pool2d``, ``F.adaptive_avg_pool2d`` /
  ``F.adaptive_max_pool2d``, ``F.dropout`` with ``training=self.training`` in eval mode;
* flattening each sample: ``torch.flatten(x, 1)`` / ``x.flatten(1)``, ``x.view`` /
  ``x.reshape`` / ``torch.reshape`` to ``(x.size(0), -1)``, ``(x.shape[0], -1)`` or
  ``(-1, C * H * W)`` (sizes read with ``x.size(i)`` / ``x.shape[i]`` and multiplied);
  ``x.mean((2, 3))`` (global average pooling);
* the addition of two tensors that come from one common tensor (a residual block:
  ``out = body(x) + shortcut(x)``, ``out += identity``), and their concatenation along
  the channels, ``torch.cat([a, b, ...], 1)`` (Inception's branches, DenseNet's
  ``[x, f(x)]``: one ``concat`` op per further tensor);
* slices of a (C, H, W) map, ``x[:, c0:c1, h0::s, w0::s]``, and zero padding
  ``F.pad(x, (left, right, top, bottom, front, back))`` (the option-A shortcut of He et
  al.'s CIFAR ResNets, ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))``): convolutions
  with 0/1 weights, exact;
* arithmetic of a tensor with a number, ``x + c``, ``x - c``, ``c - x``, ``c * x``,
  ``x / c``, ``-x`` (input scaling such as ``(x - 0.1307) / 0.3081``): a per-channel
  affine op;
* a final ``softmax`` / ``log_softmax`` over the classes (module, function or method):
  left out, the network outputs the logits it normalises.

Anything else raises ``InputError`` naming the node and why. The imported graph is
checked against the module's own float64 forward on random inputs before it is returned.
torch is never imported here: it is loaded already, as the module passed in is a torch
module.
"""

from __future__ import annotations

import copy
import importlib
import operator
import sys
from typing import Any

import numpy as np

from . import _convert, _graph, _lowering
from ._convert import _batchnorm_affine, _check_input_shape, _refuse_complex
from ._graph import LayerGraph, Op, shape_str
from ._validate import check_allocation
from .errors import InputError

__all__ = ["graph_from_torch"]

# one home each: the modules dropped in evaluation mode, the torch activation classes
_DROPPED = _lowering._DROPPED
_ACT_MODULES = _convert._TORCH_ACTIVATIONS
_SUPPORTED = (
    "Linear, Conv2d, AvgPool2d, MaxPool2d, AdaptiveAvgPool2d / AdaptiveMaxPool2d (equal "
    "windows), BatchNorm1d, BatchNorm2d (eval mode), Flatten, Identity, Dropout, ReLU, "
    "LeakyReLU, PReLU (one slope), Hardtanh, ReLU6, Hardsigmoid, Tanh, Sigmoid, ZeroPad2d, "
    "their torch.nn.functional forms, flattening "
    "view / reshape, mean over (H, W), residual additions and torch.cat along the channels"
)


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class _Value:
    """A traced tensor: the ops applied to the input so far, and its per-sample shape.

    Two values that share a prefix of ops (by identity) forked there: adding them is a
    residual op over the two suffixes.
    """

    def __init__(self, ops: tuple[Op, ...], shape: tuple[int, ...]) -> None:
        self.ops = ops
        self.shape = shape

    def then(self, op: Op | tuple[Op, ...] | None) -> _Value:
        if op is None:
            return self
        ops = op if isinstance(op, tuple) else (op,)
        return _Value((*self.ops, *ops), ops[-1].out_shape)


class _Batch:
    """``x.size(0)`` / ``x.shape[0]``: only good as the batch size of a flattening
    ``view`` / ``reshape``."""


class _Normalised:
    """A final ``softmax`` / ``log_softmax`` over the classes of the traced ``value``:
    allowed only as the forward's result, where it is left out (the network outputs the
    logits it normalises)."""

    def __init__(self, value: _Value, kind: str) -> None:
        self.value = value
        self.kind = kind


def _normalise(where: str, kind: str, x: Any, dim: Any) -> _Normalised:
    if not isinstance(x, _Value) or len(x.shape) != 1:
        raise InputError(f"{where} ({kind}): only over the classes of a flat output")
    if dim not in (1, -1, None):
        raise InputError(f"{where} ({kind}): only over the classes (dim=1), got dim={dim!r}")
    return _Normalised(x, kind)


def softmax_rows(z: np.ndarray, kind: str) -> np.ndarray:
    """``log_softmax`` or ``softmax`` of each row (float64, max-shifted)."""
    shifted = z - z.max(axis=1, keepdims=True)
    logs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return logs if kind == "log_softmax" else np.exp(logs)


class _Shape:
    """``x.shape`` / ``x.size()`` of a traced tensor: indexed, it gives the batch
    (:class:`_Batch`) or a per-sample dimension (an int, known from ``input_shape``)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def dim(self, i: Any, where: str) -> Any:
        full = (None, *self.shape)
        if isinstance(i, bool) or not isinstance(i, int) or not -len(full) <= i < len(full):
            raise InputError(f"{where} (size): dimension {i!r} of a {len(full)}-d tensor")
        i %= len(full)
        return _Batch() if i == 0 else full[i]


# the parameters after the input of the torch.nn.functional calls fastmem reads, with
# their defaults (torch's)
_SIGNATURES: dict[str, tuple[tuple[str, Any], ...]] = {
    "relu": (("inplace", False),),
    "leaky_relu": (("negative_slope", 0.01), ("inplace", False)),
    "hardtanh": (("min_val", -1.0), ("max_val", 1.0), ("inplace", False)),
    "relu6": (("inplace", False),),
    "hardsigmoid": (("inplace", False),),
    "tanh": (),
    "sigmoid": (),
    "max_pool2d": (
        ("kernel_size", None),
        ("stride", None),
        ("padding", 0),
        ("dilation", 1),
        ("ceil_mode", False),
        ("return_indices", False),
    ),
    "avg_pool2d": (
        ("kernel_size", None),
        ("stride", None),
        ("padding", 0),
        ("ceil_mode", False),
        ("count_include_pad", True),
        ("divisor_override", None),
    ),
    "adaptive_avg_pool2d": (("output_size", None),),
    "adaptive_max_pool2d": (("output_size", None), ("return_indices", False)),
    "dropout": (("p", 0.5), ("training", True), ("inplace", False)),
}


def _bind(where: str, name: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments after the input of the functional call ``name``, by parameter name."""
    params = _SIGNATURES[name]
    names = [k for k, _ in params]
    rest = args[1:]
    unknown = sorted(set(kwargs) - set(names))
    if len(rest) > len(params) or unknown:
        raise InputError(f"{where} ({name}): unsupported arguments {unknown or rest}")
    out = dict(params)
    out.update(zip(names, rest, strict=False))  # rest may stop early: defaults
    out.update(kwargs)
    for k, v in out.items():
        if isinstance(v, (_Value, _Batch, _Shape)):
            raise InputError(f"{where} ({name}): {k} must be a constant, not a tensor or size")
    return out


def _functional_op(
    where: str, name: str, a: dict[str, Any], shape: tuple[int, ...]
) -> Op | tuple[Op, ...] | None:
    """The op of a functional call (``F.max_pool2d(x, 2)``, ...); None: dropped."""
    if name in ("relu", "tanh", "sigmoid"):
        return _graph.make_act(where, name, shape, name, 0.0)
    if name == "leaky_relu":
        slope = a["negative_slope"]
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise InputError(
                f"{where} (leaky_relu): negative_slope must be a number, got {slope!r}"
            )
        return _graph.make_act(where, name, shape, "leaky_relu", float(slope))
    if name == "hardtanh":
        return _clipped(where, name, shape, a["min_val"], a["max_val"])
    if name == "relu6":
        return _clipped(where, name, shape, 0.0, 6.0)
    if name == "hardsigmoid":
        return _clipped(where, name, shape, 0.0, 1.0, 1 / 6, 0.5)
    if name == "dropout":
        if a["training"]:
            raise InputError(
                f"{where} (dropout): training=True when traced (the module in training mode, "
                "or a call that always drops); call module.eval() first and pass "
                "training=self.training"
            )
        return None
    pool = "maxpool2d" if "max" in name else "avgpool2d"
    return _pool_op(where, name, shape, pool, a, adaptive=name.startswith("adaptive"))


def _pool_op(
    where: str, source: str, shape: tuple[int, ...], pool: str, a: dict[str, Any], adaptive: bool
) -> Op:
    """A pooling op from torch's arguments ``a`` (a module's attributes or a functional
    call's bound arguments, by torch's parameter names); ``adaptive``: ``output_size``
    with equal windows (:func:`fastmem._graph.adaptive_pool_kernel`)."""
    label = f"{where} ({source})"
    if a.get("return_indices"):
        raise InputError(f"{label}: return_indices=True is not supported")
    if adaptive:
        k = _graph.adaptive_pool_kernel(label, a["output_size"], shape)
        return _graph.make_pool(pool, where, source, shape, k, k, ((0, 0), (0, 0)))
    kernel = a["kernel_size"]
    if kernel is None:
        raise InputError(f"{label}: kernel_size is missing")
    stride = a["stride"]
    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        stride = kernel  # torch's default (torch.max_pool2d writes it as [])
    ph, pw = _graph._pair(a["padding"], "padding", label)
    extra: dict[str, Any] = {}
    if pool == "avgpool2d":
        extra = {
            "count_include_pad": a.get("count_include_pad", True),
            "divisor_override": a.get("divisor_override"),
        }
    pads = ((ph, ph), (pw, pw))
    if a.get("ceil_mode"):
        pads = _graph.ceil_mode_pads(label, shape, kernel, stride, pads, a.get("dilation", 1))
    return _graph.make_pool(
        pool, where, source, shape, kernel, stride, pads, a.get("dilation", 1), **extra
    )


def _clipped(
    where: str,
    source: str,
    shape: tuple[int, ...],
    low: Any,
    high: Any,
    scale: float = 1.0,
    shift: float = 0.0,
) -> Op | tuple[Op, ...]:
    """``clamp(scale z + shift, low, high)`` (``Hardtanh(low, high)``, ``ReLU6``,
    ``Hardsigmoid`` = ``clamp(z / 6 + 1 / 2, 0, 1)``): with no scaling, the kinds hardtanh
    on (-1, 1) and relu6 on (0, 6) (the values torch computes, bit for bit), else hard-tanh
    between two per-channel affine maps, ``c + m hardtanh((scale z + shift - c) / m)`` with
    ``c`` the interval's middle and ``m`` its half-width (equal in exact arithmetic; the
    kinks up to the rounding of the first map, exact for ``Hardsigmoid``, ``z / 3`` at
    ``z = +-3``; the values near ``c - m`` rounded through it)."""
    label = f"{where} ({source})"
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        raise InputError(f"{label}: min_val / max_val must be numbers") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"{label}: needs finite min_val < max_val, got ({low}, {high})")
    if (scale, shift) == (1.0, 0.0) and (lo, hi) in ((-1.0, 1.0), (0.0, 6.0)):
        return _graph.make_act(where, source, shape, "hardtanh" if lo < 0 else "relu6", 0.0)
    act = _graph.make_act(where, source, shape, "hardtanh", 0.0)
    c, m = (lo + hi) / 2, (hi - lo) / 2
    C = shape[0]
    a, b = scale / m, (shift - c) / m
    into = _graph.make_channel_affine(
        where, f"{source}: {a:g} z + {b:g}", shape, np.full(C, a), np.full(C, b)
    )
    back = _graph.make_channel_affine(
        where, f"{source}: {m:g} h + {c:g}", shape, np.full(C, m), np.full(C, c)
    )
    return (into, act, back)


def _prelu(where: str, mod: Any, shape: tuple[int, ...]) -> Op:
    """``PReLU`` with one slope (``num_parameters=1``, torch's default): a leaky ReLU of that
    slope. One slope per channel is refused (an activation has one slope)."""
    w = _np(mod.weight).reshape(-1)
    if w.size != 1:
        raise InputError(
            f"{where} (PReLU): has {w.size} slopes (num_parameters={w.size}); only one "
            "slope for all channels (num_parameters=1, the default) is supported"
        )
    return _graph.make_act(where, "PReLU", shape, "leaky_relu", float(w[0]))


_POOL_MODULES = ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")


def _module_op(where: str, mod: Any, shape: tuple[int, ...]) -> Op | tuple[Op, ...] | None:
    kind = type(mod).__name__
    label = f"{where} ({kind})"
    _refuse_complex(where, mod)
    if kind in _DROPPED:
        return None
    if kind == "Linear":
        bias = _np(mod.bias) if mod.bias is not None else None
        return _graph.make_linear(where, kind, shape, _np(mod.weight), bias)
    if kind == "Conv2d":
        if mod.padding_mode != "zeros":
            raise InputError(
                f"{label}: padding_mode={mod.padding_mode!r} is not supported (only 'zeros')"
            )
        kh, kw = mod.kernel_size
        dh, dw = _graph._pair(mod.dilation, "dilation", label)
        if isinstance(mod.padding, str):
            if mod.padding == "valid":
                pads = ((0, 0), (0, 0))
            else:  # 'same' (stride 1): torch puts the odd extra padding at the end
                th, tw = dh * (kh - 1), dw * (kw - 1)
                pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
        else:
            ph, pw = _graph._pair(mod.padding, "padding", label)
            pads = ((ph, ph), (pw, pw))
        bias = _np(mod.bias) if mod.bias is not None else None
        return _graph.make_conv2d(
            where, kind, shape, _np(mod.weight), bias, mod.stride, pads, (dh, dw), mod.groups
        )
    if kind in _POOL_MODULES:
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices",
                 "count_include_pad", "divisor_override", "output_size")  # fmt: skip
        a = {n: getattr(mod, n) for n in names if hasattr(mod, n)}
        pool = "maxpool2d" if "Max" in kind else "avgpool2d"
        return _pool_op(where, kind, shape, pool, a, adaptive=kind.startswith("Adaptive"))
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        s, t = _batchnorm_affine(where, mod, kind)
        if (kind == "BatchNorm2d") != (len(shape) == 3):
            raise InputError(
                f"{label}: got a tensor of shape {shape_str(shape)}; BatchNorm1d takes (d,) "
                "features, BatchNorm2d (C, H, W) images"
            )
        if s.shape[0] != shape[0]:
            raise InputError(
                f"{label}: has {s.shape[0]} features, got a tensor of shape {shape_str(shape)}"
            )
        return _graph.make_channel_affine(where, kind, shape, s, t)
    if kind == "Flatten":
        if mod.start_dim != 1 or mod.end_dim != -1:
            raise InputError(f"{label}: only Flatten(1, -1) (the default) is supported")
        return _graph.make_flatten(where, kind, shape) if len(shape) > 1 else None
    if kind == "ReLU6":
        return _clipped(where, kind, shape, 0.0, 6.0)
    if kind == "Hardsigmoid":
        return _clipped(where, kind, shape, 0.0, 1.0, 1 / 6, 0.5)
    if kind == "PReLU":
        return _prelu(where, mod, shape)
    if kind in ("ZeroPad2d", "ConstantPad2d"):
        return _pad_op(label, where, shape, mod.padding, "constant", mod.value)
    if kind in _ACT_MODULES:
        if kind == "Hardtanh":
            return _clipped(where, kind, shape, mod.min_val, mod.max_val)
        slope = float(mod.negative_slope) if kind == "LeakyReLU" else 0.0
        return _graph.make_act(where, kind, shape, _ACT_MODULES[kind], slope)
    if kind == "Hardswish":
        raise InputError(
            f"{label}: not supported (not one of fastmem's activations); supported are {_SUPPORTED}"
        )
    raise InputError(f"{label}: unsupported module; supported are {_SUPPORTED}")


def _fork(a: _Value, b: _Value) -> int:
    """How many ops the two values share (by identity): they forked after them."""
    n = 0
    while n < min(len(a.ops), len(b.ops)) and a.ops[n] is b.ops[n]:
        n += 1
    return n


def _concat(where: str, parts: Any, dim: Any, joined: dict[Any, Any]) -> _Value:
    """``torch.cat(parts, dim)`` along the channels: one ``concat`` op per further part
    (``cat([a, b, c]) = cat([cat([a, b]), c])``), each over the two values' branches
    from where they forked. ``joined`` remembers each pair joined before (by identity):
    a DenseNet block joins ``[x, f1]``, then ``[x, f1, f2]`` with ``f2`` computed from
    the first join; reusing that join's op makes ``f2``'s branch start after it, so no
    op is computed twice."""
    label = f"{where} (cat)"
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, _Value) for p in parts):
        raise InputError(f"{label}: joins a list of tensors")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise InputError(f"{label}: dim must be an int, got {dim!r}")
    out = parts[0]
    for b in parts[1:]:
        rank = len(out.shape) + 1
        if not -rank <= dim < rank or dim % rank != 1:
            raise InputError(
                f"{label}: only along the channels (dim=1) is supported, got dim={dim}"
            )
        key = (id(out), id(b))
        if key in joined:
            out = joined[key][2]
            continue
        n = _fork(out, b)
        prefix = out.ops[:n]
        op = _graph.make_concat(where, "cat", prefix[-1].out_shape, out.ops[n:], b.ops[n:])
        joined[key] = (out, b, _Value((*prefix, op), op.out_shape))  # kept: ids stay theirs
        out = joined[key][2]
    return out


def _residual(where: str, a: _Value, b: _Value) -> _Value:
    n = _fork(a, b)
    if a.shape != b.shape:
        raise InputError(
            f"{where} (add): adds tensors of shapes {shape_str(a.shape)} and {shape_str(b.shape)}"
        )
    prefix = a.ops[:n]
    start = prefix[-1].out_shape if prefix else None
    if start is None:
        raise InputError(f"{where} (add): internal: no common input")  # pragma: no cover
    op = _graph.make_residual(where, "add", start, a.ops[n:], b.ops[n:])
    return _Value((*prefix, op), op.out_shape)


def _scalar_affine(where: str, what: str, args: list[Any], kwargs: dict[str, Any]) -> _Value:
    """``x + c``, ``x - c``, ``c - x``, ``c * x``, ``x / c``, ``-x`` with a number ``c``
    (input scaling in a forward, ``(x - 0.1307) / 0.3081``): a per-channel affine op of
    equal scale and shift on every channel."""
    label = f"{where} ({what})"
    if kwargs:
        raise InputError(f"{label}: unsupported arguments {sorted(kwargs)}")
    tensors = [i for i, a in enumerate(args) if isinstance(a, _Value)]
    if what == "neg" and len(args) == 1 and tensors == [0]:
        scale, shift, x = -1.0, 0.0, args[0]
    else:
        if len(args) != 2 or len(tensors) != 1:
            two = len(tensors) == 2
            raise InputError(
                f"{label}: "
                + (
                    "of two tensors is not supported (only residual additions, and a tensor "
                    "with a number)"
                    if two
                    else "unsupported arguments"
                )
            )
        x, c = args[tensors[0]], args[1 - tensors[0]]
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c):
            raise InputError(f"{label}: only with a finite number, got {c!r}")
        c = float(c)
        at_right = tensors[0] == 0
        if what == "add":
            scale, shift = 1.0, c
        elif what == "sub":
            scale, shift = (1.0, -c) if at_right else (-1.0, c)
        elif what == "mul":
            scale, shift = c, 0.0
        elif at_right and c != 0:  # div: x / c
            scale, shift = 1.0 / c, 0.0
        else:
            raise InputError(f"{label}: only division of a tensor by a nonzero number")
    C = x.shape[0]
    op = _graph.make_channel_affine(where, what, x.shape, np.full(C, scale), np.full(C, shift))
    return x.then(op)


def _selection_conv(where: str, source: str, x: _Value, index: Any) -> _Value:
    """``x[:, c0:c1:cs, h0::hs, w0::ws]`` (strided subsampling and channel slices, as in
    the option-A shortcut of He et al.'s CIFAR ResNets): a convolution whose weights are
    0 and 1 (each output the one input it selects, exactly), kernel ``(h0 + 1, w0 + 1)``
    picking its last tap, stride ``(hs, ws)``."""
    label = f"{where} ({source})"
    idx = tuple(index) if isinstance(index, tuple) else (index,)
    if len(x.shape) != 3 or not 1 <= len(idx) <= 4 or not all(isinstance(i, slice) for i in idx):
        raise InputError(
            f"{label}: indexing a tensor is not supported, except slices of a (C, H, W) "
            "map: x[:, c0:c1, h0::s, w0::s]"
        )
    idx = idx + (slice(None),) * (4 - len(idx))
    if idx[0] != slice(None):
        raise InputError(f"{label}: slices the batch")
    picks = []
    for sl, n in zip(idx[1:], x.shape, strict=True):
        start, stop, step = sl.indices(n)
        if step < 1:
            raise InputError(f"{label}: a negative step reverses the map")
        picks.append(range(start, stop, step))
    channels, rows, cols = picks
    if len(channels) == 0 or len(rows) == 0 or len(cols) == 0:
        raise InputError(f"{label}: selects nothing")
    if len(rows) != len(range(rows.start, x.shape[1], rows.step)) or len(cols) != len(
        range(cols.start, x.shape[2], cols.step)
    ):
        raise InputError(f"{label}: a slice that stops before the map's end is not supported")
    C = x.shape[0]
    weight = np.zeros((len(channels), C, rows.start + 1, cols.start + 1))
    weight[np.arange(len(channels)), list(channels), rows.start, cols.start] = 1.0
    op = _graph.make_conv2d(
        where, source, x.shape, weight, None, (rows.step, cols.step), ((0, 0), (0, 0)), 1, 1
    )
    return x.then(op)


def _pad_op(label: str, where: str, shape: tuple[int, ...], pad: Any, mode: Any, value: Any) -> Op:
    """``F.pad(x, (left, right, top, bottom, front, back))`` with zeros (``ZeroPad2d``,
    ``ConstantPad2d(p, 0)``): a 1x1 convolution with 0/1 weights (channels ``front`` on are
    the input's) and zero padding. ``label`` names the call in messages."""
    if isinstance(pad, (int, np.integer)) and not isinstance(pad, bool):
        pad = (int(pad),) * 4  # ZeroPad2d(p): every side
    if mode != "constant" or value not in (None, 0, 0.0):
        raise InputError(f"{label}: only zero padding (mode='constant', value=0)")
    try:
        p = [int(v) for v in pad]
    except (TypeError, ValueError):
        raise InputError(f"{label}: pad must be a tuple of ints, got {pad!r}") from None
    if len(shape) != 3 or len(p) not in (2, 4, 6) or min(p) < 0:
        raise InputError(
            f"{label}: pads a (C, H, W) map by non-negative amounts (2, 4 or 6 of them), got "
            f"{pad!r} on a tensor of shape {shape_str(shape)}"
        )
    p += [0] * (6 - len(p))
    left, right, top, bottom, front, back = p
    C = shape[0]
    weight = np.zeros((front + C + back, C, 1, 1))
    weight[front + np.arange(C), np.arange(C), 0, 0] = 1.0
    pads = ((top, bottom), (left, right))
    return _graph.make_conv2d(where, "pad", shape, weight, None, 1, pads, 1, 1)


def _flattens(dims: list[Any], shape: tuple[int, ...]) -> bool:
    """Whether ``view`` / ``reshape`` to ``dims`` flattens each sample of ``shape``:
    ``(batch, -1)``, ``(batch, N)`` or ``(-1, N)`` with ``N`` the per-sample size."""
    if len(dims) != 2 or isinstance(dims[1], (_Batch, _Shape)):
        return False
    n = int(np.prod(shape))
    first, second = dims
    if isinstance(first, _Batch):
        return second in (-1, n)
    return first == -1 and second == n


def graph_from_torch(module: Any, input_shape: Any) -> LayerGraph:
    """The layer graph of ``module`` on per-sample inputs of ``input_shape``."""
    if not type(module).__module__.startswith("torch.") and "torch" not in sys.modules:
        raise InputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    shape = _check_input_shape(input_shape)
    torch = sys.modules["torch"]
    fx = importlib.import_module("torch.fx")
    try:
        traced = fx.symbolic_trace(module)
    except Exception as exc:  # torch raises many kinds here
        raise InputError(
            f"module: torch.fx cannot trace its forward ({type(exc).__name__}: {exc}); "
            "write it as nn.Sequential or as plain calls of the supported modules"
        ) from exc
    F = torch.nn.functional
    add_fns = {operator.add, operator.iadd, torch.add}
    arith_fns = {}  # x + c, x - c, c - x, c * x, x / c, -x: a per-channel affine op
    for fns, what in (
        ((operator.add, operator.iadd, torch.add), "add"),
        ((operator.sub, operator.isub, torch.sub), "sub"),
        ((operator.mul, operator.imul, torch.mul), "mul"),
        ((operator.truediv, operator.itruediv, torch.div), "div"),
        ((operator.neg, torch.neg), "neg"),
    ):
        arith_fns.update(dict.fromkeys(fns, what))
    int_fns = {operator.mul: operator.mul, operator.floordiv: operator.floordiv,
               operator.add: operator.add, operator.sub: operator.sub}  # fmt: skip
    flatten_fns = {torch.flatten}
    functional = {}  # function -> its name in _SIGNATURES
    for name, owners in (
        ("relu", (torch, F)),
        ("leaky_relu", (F,)),
        ("hardtanh", (F,)),
        ("relu6", (F,)),
        ("hardsigmoid", (F,)),
        ("tanh", (torch, F)),
        ("sigmoid", (torch, F)),
        ("max_pool2d", (torch, F)),
        ("avg_pool2d", (F,)),
        ("adaptive_avg_pool2d", (F,)),
        ("adaptive_max_pool2d", (F,)),
    ):
        for owner in owners:
            functional[getattr(owner, name)] = name
    cat_fns = {getattr(torch, n) for n in ("cat", "concat", "concatenate") if hasattr(torch, n)}
    normalisers = {
        F.softmax: "softmax",
        torch.softmax: "softmax",
        F.log_softmax: "log_softmax",
        torch.log_softmax: "log_softmax",
    }
    for name in ("dropout", "dropout1d", "dropout2d", "alpha_dropout", "feature_alpha_dropout"):
        if hasattr(F, name):
            functional[getattr(F, name)] = "dropout"
    # every value starts with this no-op, so two branches forked at the input share it
    marker = Op("flatten", "input", "input", shape, shape)
    start = _Value((marker,), shape)
    values: dict[Any, Any] = {}
    seen_input = False
    result: _Value | None = None
    final = None  # a softmax / log_softmax left out at the output
    joined: dict[Any, Any] = {}  # the concatenations so far (see _concat)
    for node in traced.graph.nodes:
        # a function node is named after the module whose forward calls it: layer1.add
        stack = node.meta.get("nn_module_stack") or {}
        path = next(reversed(stack.values()))[0] if stack else ""
        where = f"{path}.{node.name}" if path else node.name
        if node.op == "placeholder":
            if seen_input:
                raise InputError(f"module: forward takes more than one tensor ({where})")
            seen_input = True
            values[node] = start
            continue
        if node.op == "output":
            out = values.get(node.args[0])
            if isinstance(out, _Normalised):  # a final softmax / log_softmax: left out
                final, out = out.kind, out.value
                if out.shape == (1,):
                    _convert.refuse_single_class_softmax(f"module ({final})")
            if not isinstance(out, _Value):
                raise InputError("module: forward must return one tensor")
            result = out
            continue
        if node.op == "get_attr":
            raise InputError(
                f"{node.target}: forward reads a parameter or buffer directly (a functional "
                "call such as F.conv2d(x, self.weight)); call the module instead"
            )
        if any(a not in values for a in node.all_input_nodes):
            raise InputError(f"{where}: uses a value fastmem does not follow")  # pragma: no cover
        # the traced values in place of the nodes, also inside tuples (x.view((n, -1)))
        args = list(fx.node.map_arg(tuple(node.args), values.__getitem__))
        kwargs = dict(fx.node.map_arg(dict(node.kwargs), values.__getitem__))
        for a in [*args, *kwargs.values()]:
            if isinstance(a, _Normalised):
                raise InputError(
                    f"{where}: uses the result of a {a.kind}; softmax / log_softmax is "
                    "supported only as the forward's last operation (left out: fastmem "
                    "networks output logits)"
                )
        if node.op == "call_module":
            where = str(node.target)
            mod = traced.get_submodule(node.target)
            x = args[0] if args else None
            kind = type(mod).__name__
            if kind in ("Softmax", "LogSoftmax") and len(args) == 1 and not kwargs:
                act = "softmax" if kind == "Softmax" else "log_softmax"
                values[node] = _normalise(f"{where} ({kind})", act, x, mod.dim)
                continue
            if len(args) != 1 or kwargs or not isinstance(x, _Value):
                raise InputError(f"{where} ({type(mod).__name__}): must be called on one tensor")
            values[node] = x.then(_module_op(where, mod, x.shape))
            continue
        if (
            node.op == "call_function"
            and node.target in int_fns
            and not any(isinstance(a, (_Value, _Batch, _Shape)) for a in args)
        ):
            # arithmetic on sizes (x.size(1) * x.size(2) * ...): per-sample sizes are known
            values[node] = int_fns[node.target](*args)
            continue
        if (
            node.op == "call_function"
            and node.target in add_fns
            and all(isinstance(a, _Value) for a in args)
        ):
            if len(args) != 2 or kwargs:
                raise InputError(f"{where} (add): only the sum of two tensors is supported")
            values[node] = _residual(where, args[0], args[1])
            continue
        if node.op == "call_function" and node.target in arith_fns:
            values[node] = _scalar_affine(where, arith_fns[node.target], args, kwargs)
            continue
        name = (
            node.target
            if node.op == "call_method"
            else getattr(node.target, "__name__", str(node.target))
        )
        x = args[0] if args else None
        if node.op == "call_function" and node.target is operator.getitem:
            if isinstance(x, _Shape) and len(args) == 2:
                values[node] = x.dim(args[1], where)
                continue
            if isinstance(x, _Value) and len(args) == 2:
                values[node] = _selection_conv(where, "getitem", x, args[1])
                continue
            raise InputError(f"{where} (getitem): indexing a tensor is not supported")
        if node.op == "call_function" and node.target is getattr:
            if isinstance(x, _Value) and args[1:] == ["shape"]:
                values[node] = _Shape(x.shape)
                continue
            raise InputError(f"{where} (getattr): reads {args[1:]!r} of a tensor; only .shape")
        if node.op == "call_method" and name == "size" and isinstance(x, _Value):
            dims = list(args[1:]) + ([kwargs["dim"]] if "dim" in kwargs else [])
            values[node] = _Shape(x.shape) if not dims else _Shape(x.shape).dim(dims[0], where)
            continue
        if node.op == "call_function" and node.target in cat_fns:
            rest = dict(zip(("dim",), args[1:], strict=False))
            rest.update(kwargs)
            if set(rest) - {"dim"}:
                raise InputError(f"{where} (cat): unsupported arguments {sorted(rest)}")
            values[node] = _concat(where, x, rest.get("dim", 0), joined)
            continue
        if name in ("stack", "hstack", "vstack", "dstack"):
            raise InputError(
                f"{where} ({name}): unsupported operation: stacking tensors adds a dimension; "
                "torch.cat(..., dim=1) along the channels is supported"
            )
        if not isinstance(x, _Value):
            raise InputError(f"{where} ({name}): unsupported operation")
        final_fn = normalisers.get(node.target) if node.op == "call_function" else None
        if final_fn or (node.op == "call_method" and name in ("softmax", "log_softmax")):
            act = final_fn or name
            rest = dict(zip(("dim", "_stacklevel", "dtype"), args[1:], strict=False))
            rest.update(kwargs)
            if set(rest) - {"dim", "_stacklevel", "dtype"} or rest.get("dtype") is not None:
                raise InputError(f"{where} ({act}): unsupported arguments {sorted(rest)}")
            values[node] = _normalise(where, act, x, rest.get("dim"))
            continue
        if node.op == "call_function" and node.target is F.pad:
            a = dict(zip(("pad", "mode", "value"), args[1:], strict=False))
            a.update(kwargs)
            if set(a) - {"pad", "mode", "value"} or "pad" not in a:
                raise InputError(f"{where} (pad): unsupported arguments {sorted(a)}")
            mode, value = a.get("mode", "constant"), a.get("value")
            values[node] = x.then(_pad_op(f"{where} (pad)", where, x.shape, a["pad"], mode, value))
            continue
        if node.op == "call_function" and node.target in functional:
            fname = functional[node.target]
            a = _bind(where, fname, args, dict(kwargs))
            values[node] = x.then(_functional_op(where, fname, a, x.shape))
            continue
        if node.op == "call_method" and name in ("relu", "tanh", "sigmoid"):
            if len(args) != 1 or kwargs:
                raise InputError(f"{where} ({name}): unsupported arguments")
            values[node] = x.then(_graph.make_act(where, name, x.shape, name, 0.0))
            continue
        flat = (node.op == "call_function" and node.target in flatten_fns) or (
            node.op == "call_method" and name == "flatten"
        )
        if flat:
            dims = list(args[1:]) + [kwargs.get(k) for k in ("start_dim", "end_dim") if k in kwargs]
            if dims not in ([1], [1, -1]):
                raise InputError(f"{where} (flatten): only flatten(x, 1) is supported, got {dims}")
            values[node] = x.then(
                _graph.make_flatten(where, "flatten", x.shape) if len(x.shape) > 1 else None
            )
            continue
        reshape = (node.op == "call_method" and name in ("view", "reshape")) or (
            node.op == "call_function" and node.target is torch.reshape
        )
        if reshape:
            dims = list(args[1:])
            if "shape" in kwargs or "size" in kwargs:
                dims = [kwargs.get("shape", kwargs.get("size"))]
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = list(dims[0])
            if _flattens(dims, x.shape):
                values[node] = x.then(
                    _graph.make_flatten(where, name, x.shape) if len(x.shape) > 1 else None
                )
                continue
            raise InputError(
                f"{where} ({name}): only flattening each sample is supported "
                f"(x.{name}(x.size(0), -1), x.{name}(-1, {int(np.prod(x.shape))})); got "
                f"{[d if not isinstance(d, _Batch) else 'batch' for d in dims]}"
            )
        if node.op == "call_method" and name == "mean" and len(x.shape) == 3:
            dims = args[1:2] or [kwargs.get("dim")]
            keep = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                spatial = sorted(int(d) % 4 for d in dims[0] if isinstance(d, int))
                if spatial == [2, 3] and set(kwargs) <= {"dim", "keepdim"}:
                    # global average pooling (x.mean((2, 3))): a pool over the whole map
                    _, H, W = x.shape
                    pool = _graph.make_pool(
                        "avgpool2d", where, "mean", x.shape, (H, W), (H, W), ((0, 0), (0, 0))
                    )
                    x = x.then(pool)
                    if not keep:
                        x = x.then(_graph.make_flatten(where, "mean", x.shape))
                    values[node] = x
                    continue
            raise InputError(
                f"{where} (mean): only the mean over the spatial dimensions, x.mean((2, 3)), "
                "is supported"
            )
        if node.op == "call_method" and name == "contiguous":
            values[node] = x
            continue
        if name in ("hardswish", "gelu", "silu", "elu", "softplus"):
            raise InputError(
                f"{where} ({name}): not supported; the activations are relu, leaky_relu, "
                "hardtanh / relu6 / hardsigmoid (clamps), tanh and sigmoid"
            )
        raise InputError(f"{where} ({name}): unsupported operation; supported are {_SUPPORTED}")
    if result is None:
        raise InputError("module: forward returns nothing")  # pragma: no cover
    ops = _drop_marker(result.ops, marker)
    if not ops:
        raise InputError("module: computes no operation")
    if len(ops[-1].out_shape) != 1:
        raise InputError(
            f"module: its output has per-sample shape {shape_str(ops[-1].out_shape)}; fastmem "
            "networks output a flat vector of logits (end with Flatten and Linear)"
        )
    graph = LayerGraph(ops, shape)
    _check_against_torch(module, graph, torch, final)
    return graph


def _drop_marker(ops: tuple[Op, ...], marker: Op) -> tuple[Op, ...]:
    out = []
    for op in ops:
        if op is marker:
            continue
        if op.kind == "residual":
            branches = tuple(_drop_marker(br, marker) for br in op.branches)
            op = Op(op.kind, op.name, op.source, op.in_shape, op.out_shape, {}, {}, branches)
        out.append(op)
    return tuple(out)


def _check_against_torch(module: Any, graph: LayerGraph, torch: Any, final=None) -> None:
    """The graph must compute the module's own float64 forward (a guard against any
    import mistake; the message asks for a report); ``final``: the softmax or
    log_softmax the module applies to the graph's logits."""
    from ._backend import select_backend

    ref = copy.deepcopy(module).double().eval()
    gen = np.random.default_rng(0)
    # three inputs through the module and the graph (several copies of each layer's output)
    check_allocation(
        3.0 * 8 * 4 * max([graph.input_dim, *(int(op.size) for op in _graph.walk(graph.ops))]),
        "the import check's forward passes of three inputs",
        "input_shape",
    )
    X = gen.normal(size=(3, graph.input_dim))
    with torch.no_grad():
        want = ref(torch.from_numpy(X.reshape(3, *graph.input_shape))).reshape(3, -1).numpy()
    got = _graph.forward(graph, X, select_backend("cpu"))
    if final is not None:
        got = softmax_rows(got, final)
    scale = max(1.0, float(np.abs(want).max()))
    diff = np.abs(got - want).max() if want.shape == got.shape else "in shape"
    if want.shape != got.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-9 * scale):
        raise InputError(
            "module: the imported layer graph does not reproduce the module's own forward "
            f"(largest difference {diff}); "
            "please report this with the module"
        )

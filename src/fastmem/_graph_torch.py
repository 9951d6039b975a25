"""Import a torch module into the layer model (``fastmem._graph``) by ``torch.fx`` tracing.

The module's ``forward`` is traced symbolically (``torch.fx.symbolic_trace``); every node
must be one of the supported operations: the modules ``Linear``, ``Conv2d``, ``AvgPool2d``,
``MaxPool2d``, eval-mode ``BatchNorm1d`` / ``BatchNorm2d`` (kept as a per-channel affine
map), ``Flatten``, ``Identity`` / ``Dropout`` (dropped), ``ReLU``, ``LeakyReLU``,
``Hardtanh(-1, 1)``, ``Tanh``, ``Sigmoid``; the functions ``torch.relu`` / ``F.relu`` /
``Tensor.relu``, ``torch.tanh``, ``torch.sigmoid``, ``torch.flatten(x, 1)`` /
``x.flatten(1)`` / ``x.view(x.size(0), -1)``, and the addition of two tensors that come
from one common tensor (a residual block: ``out = body(x) + shortcut(x)``). Anything
else raises ``InputError`` naming the node and why. The imported graph is checked
against the module's own float64 forward on random inputs before it is returned.
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
    "Linear, Conv2d, AvgPool2d, MaxPool2d, BatchNorm1d, BatchNorm2d (eval mode), Flatten, "
    "Identity, Dropout, ReLU, LeakyReLU, Hardtanh(-1, 1), Tanh, Sigmoid, and residual "
    "additions"
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

    def then(self, op: Op | None) -> _Value:
        if op is None:
            return self
        return _Value((*self.ops, op), op.out_shape)


class _Batch:
    """``x.size(0)``: only good for ``x.view(x.size(0), -1)``."""


def _module_op(where: str, mod: Any, shape: tuple[int, ...]) -> Op | None:
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
    if kind in ("MaxPool2d", "AvgPool2d"):
        if mod.ceil_mode:
            raise InputError(f"{label}: ceil_mode=True is not supported")
        if kind == "MaxPool2d" and mod.return_indices:
            raise InputError(f"{label}: return_indices=True is not supported")
        ph, pw = _graph._pair(mod.padding, "padding", label)
        return _graph.make_pool(
            "maxpool2d" if kind == "MaxPool2d" else "avgpool2d",
            where,
            kind,
            shape,
            mod.kernel_size,
            mod.stride,
            ((ph, ph), (pw, pw)),
            getattr(mod, "dilation", 1),
            count_include_pad=getattr(mod, "count_include_pad", True),
            divisor_override=getattr(mod, "divisor_override", None),
        )
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
    if kind in _ACT_MODULES:
        if kind == "Hardtanh" and (mod.min_val != -1.0 or mod.max_val != 1.0):
            raise InputError(
                f"{label}: only Hardtanh(-1, 1) is supported, got "
                f"Hardtanh({mod.min_val}, {mod.max_val})"
            )
        slope = float(mod.negative_slope) if kind == "LeakyReLU" else 0.0
        return _graph.make_act(where, kind, shape, _ACT_MODULES[kind], slope)
    if kind == "AdaptiveAvgPool2d":
        raise InputError(f"{label}: not supported yet; use AvgPool2d with an explicit kernel_size")
    raise InputError(f"{label}: unsupported module; supported are {_SUPPORTED}")


def _residual(where: str, a: _Value, b: _Value) -> _Value:
    n = 0
    while n < min(len(a.ops), len(b.ops)) and a.ops[n] is b.ops[n]:
        n += 1
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
    relu_fns = {torch.relu, F.relu}
    add_fns = {operator.add, operator.iadd, torch.add}
    flatten_fns = {torch.flatten}
    smooth_fns = {
        torch.tanh: "tanh",
        torch.sigmoid: "sigmoid",
        F.tanh: "tanh",
        F.sigmoid: "sigmoid",
    }
    # every value starts with this no-op, so two branches forked at the input share it
    marker = Op("flatten", "input", "input", shape, shape)
    start = _Value((marker,), shape)
    values: dict[Any, Any] = {}
    seen_input = False
    result: _Value | None = None
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
            out = node.args[0]
            if not isinstance(values.get(out), _Value):
                raise InputError("module: forward must return one tensor")
            result = values[out]
            continue
        if node.op == "get_attr":
            raise InputError(
                f"{node.target}: forward reads a parameter or buffer directly (a functional "
                "call such as F.conv2d(x, self.weight)); call the module instead"
            )
        args = [values.get(a, a) if isinstance(a, fx.Node) else a for a in node.args]
        if any(isinstance(a, fx.Node) and a not in values for a in node.args):
            raise InputError(f"{where}: uses a value fastmem does not follow")  # pragma: no cover
        if node.op == "call_module":
            where = str(node.target)
            mod = traced.get_submodule(node.target)
            x = args[0] if args else None
            if len(args) != 1 or node.kwargs or not isinstance(x, _Value):
                raise InputError(f"{where} ({type(mod).__name__}): must be called on one tensor")
            values[node] = x.then(_module_op(where, mod, x.shape))
            continue
        if node.op == "call_function" and node.target in add_fns:
            if len(args) != 2 or node.kwargs or not all(isinstance(a, _Value) for a in args):
                raise InputError(f"{where} (add): only the sum of two tensors is supported")
            values[node] = _residual(where, args[0], args[1])
            continue
        name = (
            node.target
            if node.op == "call_method"
            else getattr(node.target, "__name__", str(node.target))
        )
        x = args[0] if args else None
        if node.op == "call_method" and name == "size" and args[1:] == [0]:
            values[node] = _Batch()
            continue
        if not isinstance(x, _Value):
            raise InputError(f"{where} ({name}): unsupported operation")
        if (node.op == "call_function" and node.target in relu_fns) or (
            node.op == "call_method" and name == "relu"
        ):
            if len(args) != 1 or node.kwargs.get("inplace", False) not in (False, True):
                raise InputError(f"{where} (relu): unsupported arguments")
            values[node] = x.then(_graph.make_act(where, "relu", x.shape, "relu", 0.0))
            continue
        if node.op == "call_function" and node.target in smooth_fns:
            act = smooth_fns[node.target]
            values[node] = x.then(_graph.make_act(where, act, x.shape, act, 0.0))
            continue
        flat = (node.op == "call_function" and node.target in flatten_fns) or (
            node.op == "call_method" and name == "flatten"
        )
        if flat:
            dims = list(args[1:]) + [
                node.kwargs.get(k) for k in ("start_dim", "end_dim") if k in node.kwargs
            ]
            if dims not in ([1], [1, -1]):
                raise InputError(f"{where} (flatten): only flatten(x, 1) is supported, got {dims}")
            values[node] = x.then(
                _graph.make_flatten(where, "flatten", x.shape) if len(x.shape) > 1 else None
            )
            continue
        if node.op == "call_method" and name in ("view", "reshape"):
            if len(args) == 3 and isinstance(args[1], _Batch) and args[2] == -1:
                values[node] = x.then(
                    _graph.make_flatten(where, name, x.shape) if len(x.shape) > 1 else None
                )
                continue
            raise InputError(f"{where} ({name}): only x.{name}(x.size(0), -1) is supported")
        if node.op == "call_method" and name == "contiguous":
            values[node] = x
            continue
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
    _check_against_torch(module, graph, torch)
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


def _check_against_torch(module: Any, graph: LayerGraph, torch: Any) -> None:
    """The graph must compute the module's own float64 forward (a guard against any
    import mistake; the message asks for a report)."""
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
    scale = max(1.0, float(np.abs(want).max()))
    diff = np.abs(got - want).max() if want.shape == got.shape else "in shape"
    if want.shape != got.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-9 * scale):
        raise InputError(
            "module: the imported layer graph does not reproduce the module's own forward "
            f"(largest difference {diff}); "
            "please report this with the module"
        )

"""Import networks from PyTorch and scikit-learn (framework modules are never
imported here: the objects passed in are inspected by class name)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["from_sklearn", "from_torch"]

_SKIPPED = {"Identity", "Flatten", "Dropout", "Dropout1d", "AlphaDropout"}
_TORCH_ACTIVATIONS = {
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "Hardtanh": "hardtanh",
    "ReLU6": "relu6",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
}
# Left out where they end the network: it outputs the logits they normalise.
_NORMALISERS = {"Softmax", "LogSoftmax"}
# Lowered to dense affine maps when from_torch is given the per-sample input_shape.
_NEEDS_SHAPE = {"Conv2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d"}
_SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid"}


def torch_activation_name(where: str, kind: str, layer: Any, activations: dict[str, str]) -> str:
    """The activation kind of torch module ``layer`` (class name ``kind``, a key of
    ``activations``): ``Hardtanh(-1, 1)`` is hardtanh, ``Hardtanh(0, 6)`` relu6 (as
    ``ReLU6``); other bounds raise ``InputError`` (the layer model takes them)."""
    if kind == "Hardtanh":
        bounds = (float(layer.min_val), float(layer.max_val))
        if bounds not in ((-1.0, 1.0), (0.0, 6.0)):
            raise InputError(
                f"{where} (Hardtanh): only Hardtanh(-1, 1) and Hardtanh(0, 6) (ReLU6) are "
                f"supported here, got Hardtanh({layer.min_val}, {layer.max_val})"
            )
        return "relu6" if bounds == (0.0, 6.0) else "hardtanh"
    return activations[kind]


def _flatten_sequential(module: Any, prefix: str) -> list[tuple[str, Any]]:
    name = type(module).__name__
    if name == "Sequential":
        out: list[tuple[str, Any]] = []
        for key, child in module.named_children():
            out.extend(_flatten_sequential(child, f"{prefix}[{key}]"))
        return out
    return [(prefix, module)]


def _batchnorm_affine(
    where: str, layer: Any, kind: str = "BatchNorm1d"
) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` with ``layer(x) == s * x + t`` per feature (per channel for BatchNorm2d),
    for an eval-mode BatchNorm; the one home of this fact for both import paths."""
    if layer.training:
        raise InputError(
            f"{where} ({kind}): in training mode it normalizes by the statistics of "
            "each batch, which is not a fixed function of one input; call .eval() first"
        )
    if layer.running_mean is None or layer.running_var is None:
        raise InputError(
            f"{where} ({kind}): has no running statistics (track_running_stats=False), "
            "so even in eval mode it normalizes by batch statistics and cannot be folded "
            "into an affine layer"
        )
    mean = layer.running_mean.detach().cpu().double().numpy()
    var = layer.running_var.detach().cpu().double().numpy()
    s = 1.0 / np.sqrt(var + float(layer.eps))
    t = -mean * s
    if layer.weight is not None:
        gamma = layer.weight.detach().cpu().double().numpy()
        s, t = gamma * s, gamma * t
    if layer.bias is not None:
        t = t + layer.bias.detach().cpu().double().numpy()
    return s, t


def _refuse_complex(where: str, layer: Any) -> None:
    """A complex parameter or buffer would lose its imaginary part in ``.double()``; one on
    the meta device has no values."""
    named = [*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]
    for name, t in named:
        if t is not None and t.is_meta:
            raise InputError(
                f"{where}.{name}: is on the meta device (a shape without values); load the "
                "module's weights first (e.g. load_state_dict(..., assign=True))"
            )
        if t is not None and t.is_complex():
            raise InputError(
                f"{where}.{name}: has complex dtype {t.dtype}; fastmem networks are real"
            )


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) not in (1, 3)
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
        or not all(s >= 1 for s in shape)
    ):
        raise InputError(
            f"input_shape: expected the per-sample shape (C, H, W) or (d,) as a tuple of "
            f"positive ints, got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


def refuse_single_class_softmax(where: str) -> None:
    """A softmax over one output is the constant 1 (log_softmax: 0), one class: without
    it, the one logit would be read as a binary classifier's (class = logit > 0), other
    classes than the module's. Refused."""
    raise InputError(
        f"{where}: a softmax over a single output is a constant (one class); fastmem "
        "would read the one logit before it as a binary classifier (class 1 where it is "
        "> 0). Remove the softmax (a binary classifier with one logit), or give the last "
        "layer one output per class"
    )


def from_torch(
    module: Any, input_shape: Any = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[float]]:
    """Weights, biases, activations and slopes of a torch ``nn.Sequential``.

    ``BatchNorm1d`` layers (eval mode) are folded into the adjacent ``Linear``:
    the preceding one when they directly follow it, else the following one. With
    ``input_shape`` the module is lowered by :func:`fastmem._lowering.lower_torch`
    (convolutions, average pooling, BatchNorm2d as dense affine maps).
    """
    torch_nn = type(module).__module__
    if not torch_nn.startswith("torch."):
        raise InputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    layers = _flatten_sequential(module, "module")
    stripped = None  # the softmax left out, named
    if layers and type(layers[-1][1]).__name__ in _NORMALISERS:
        # a final Softmax / LogSoftmax over the classes is left out: the network outputs
        # the logits it normalises (the same classes and class margins)
        where, last = layers[-1]
        if getattr(last, "dim", None) not in (1, -1, None):
            raise InputError(
                f"{where} ({type(last).__name__}): only over the classes (dim=1), got "
                f"dim={last.dim!r}"
            )
        stripped = f"{where} ({type(last).__name__})"
        layers = layers[:-1]
    for where, layer in layers:
        _refuse_complex(where, layer)
    if input_shape is not None:
        from ._lowering import lower_torch

        out = lower_torch(layers, _check_input_shape(input_shape), _TORCH_ACTIVATIONS)
    else:
        out = _dense_layers(layers)
    if stripped is not None and out[0][-1].shape[0] < 2:
        refuse_single_class_softmax(stripped)
    return out


def _dense_layers(
    layers: list[tuple[str, Any]],
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[float]]:
    """:func:`from_torch` without ``input_shape``: ``Linear`` layers, activations and
    ``BatchNorm1d`` (folded)."""
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[str] = []
    slopes: list[float] = []
    pending_linear = False  # the last affine layer has no activation yet
    # BatchNorm maps (where, s, t) waiting for the next Linear: they came at the input or
    # after an activation, where there is no preceding affine layer to fold them into.
    pending_bn: list[tuple[str, np.ndarray, np.ndarray]] = []
    for where, layer in layers:
        kind = type(layer).__name__
        if kind in _SKIPPED:
            if kind == "Flatten" and pending_linear:
                raise InputError(f"{where} (Flatten): only supported before the first Linear")
            if kind == "Flatten" and pending_bn:
                raise InputError(
                    f"{pending_bn[0][0]} (BatchNorm1d): before a Flatten it normalizes "
                    "channels of a multi-dimensional input; only BatchNorm1d on features "
                    "(after the Flatten) can be folded"
                )
            continue
        if kind == "BatchNorm1d":
            s, t = _batchnorm_affine(where, layer)
            if pending_linear:
                if s.shape[0] != weights[-1].shape[0]:
                    raise InputError(
                        f"{where} (BatchNorm1d): has {s.shape[0]} features but the Linear "
                        f"before it has {weights[-1].shape[0]} outputs"
                    )
                # BN(W x + b) = (s * W) x + (s * b + t): exact up to rounding.
                weights[-1] = s[:, None] * weights[-1]
                biases[-1] = s * biases[-1] + t
            else:
                pending_bn.append((where, s, t))
            continue
        if kind == "Linear":
            w = layer.weight.detach().cpu().double().numpy()
            b = (
                layer.bias.detach().cpu().double().numpy()
                if layer.bias is not None
                else np.zeros(w.shape[0])
            )
            for bn_where, s, t in reversed(pending_bn):
                # W (s * x + t) + b = (W * s) x + (W t + b), folding the BN nearest W first.
                if s.shape[0] != w.shape[1]:
                    raise InputError(
                        f"{bn_where} (BatchNorm1d): has {s.shape[0]} features but the "
                        f"Linear after it ({where}) takes {w.shape[1]} inputs"
                    )
                b = w @ t + b
                w = w * s[None, :]
            pending_bn = []
            if pending_linear:
                # Two affine maps in a row are one affine map.
                b = w @ biases[-1] + b
                w = w @ weights[-1]
                weights[-1], biases[-1] = w, b
            else:
                weights.append(w)
                biases.append(b)
            pending_linear = True
            continue
        if kind in _TORCH_ACTIVATIONS:
            if pending_bn:
                raise InputError(
                    f"{pending_bn[0][0]} (BatchNorm1d): cannot be folded: it does not "
                    f"directly follow a Linear layer and the next layer, {where} ({kind}), "
                    "is not a Linear layer either"
                )
            if not pending_linear:
                raise InputError(f"{where} ({kind}): an activation must follow a Linear layer")
            acts.append(torch_activation_name(where, kind, layer, _TORCH_ACTIVATIONS))
            slopes.append(float(layer.negative_slope) if kind == "LeakyReLU" else 0.0)
            pending_linear = False
            continue
        if kind in _NEEDS_SHAPE:
            raise InputError(
                f"{where} ({kind}): unsupported without input_shape; pass "
                "Network.from_torch(module, input_shape=(C, H, W)) to lower it to a dense layer"
            )
        raise InputError(
            f"{where} ({kind}): unsupported layer; supported are Linear, ReLU, LeakyReLU, "
            "Hardtanh(-1, 1), ReLU6, Tanh, Sigmoid, BatchNorm1d, Identity, Flatten, Dropout"
        )
    if pending_bn:
        raise InputError(
            f"{pending_bn[0][0]} (BatchNorm1d): cannot be folded: it does not directly follow "
            "a Linear layer and no Linear layer follows it"
        )
    if not weights:
        raise InputError("module: contains no Linear layer")
    if not pending_linear:
        raise InputError(
            f"module: must end with a Linear layer (the output is linear), ends with {acts[-1]}"
        )
    return weights, biases, acts, slopes


def from_sklearn(estimator: Any) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Weights, biases and activations of a fitted ``MLPClassifier``/``MLPRegressor``."""
    kind = type(estimator).__name__
    if kind not in ("MLPClassifier", "MLPRegressor"):
        raise InputError(f"estimator: expected MLPClassifier or MLPRegressor, got {kind}")
    if not hasattr(estimator, "coefs_"):
        raise InputError(f"estimator: this {kind} is not fitted (call fit first)")
    act = estimator.activation
    weights = [np.asarray(c, dtype=np.float64).T for c in estimator.coefs_]
    biases = [np.asarray(b, dtype=np.float64) for b in estimator.intercepts_]
    if act == "identity":
        w, b = weights[0], biases[0]
        for w_next, b_next in zip(weights[1:], biases[1:], strict=True):
            w, b = w_next @ w, w_next @ b + b_next
        return [w], [b], []
    if act not in _SKLEARN_ACTIVATIONS:
        raise InputError(
            f"estimator: unsupported activation {act!r}; use 'relu', 'tanh', 'logistic' "
            "or 'identity'"
        )
    return weights, biases, [_SKLEARN_ACTIVATIONS[act]] * (len(weights) - 1)

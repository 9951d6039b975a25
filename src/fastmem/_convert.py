"""Import networks from PyTorch and scikit-learn (framework modules are never
imported here: the objects passed in are inspected by class name)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["from_sklearn", "from_torch"]

_SKIPPED = {"Identity", "Flatten", "Dropout", "Dropout1d", "AlphaDropout"}


def _flatten_sequential(module: Any, prefix: str) -> list[tuple[str, Any]]:
    name = type(module).__name__
    if name == "Sequential":
        out: list[tuple[str, Any]] = []
        for key, child in module.named_children():
            out.extend(_flatten_sequential(child, f"{prefix}[{key}]"))
        return out
    return [(prefix, module)]


def from_torch(module: Any) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[float]]:
    """Weights, biases, activations and slopes of a torch ``nn.Sequential``."""
    torch_nn = type(module).__module__
    if not torch_nn.startswith("torch."):
        raise InputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    layers = _flatten_sequential(module, "module")
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[str] = []
    slopes: list[float] = []
    pending_linear = False  # the last affine layer has no activation yet
    for where, layer in layers:
        kind = type(layer).__name__
        if kind in _SKIPPED:
            if kind == "Flatten" and pending_linear:
                raise InputError(f"{where} (Flatten): only supported before the first Linear")
            continue
        if kind == "Linear":
            w = layer.weight.detach().cpu().double().numpy()
            b = (
                layer.bias.detach().cpu().double().numpy()
                if layer.bias is not None
                else np.zeros(w.shape[0])
            )
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
        if kind in ("ReLU", "LeakyReLU", "Hardtanh"):
            if not pending_linear:
                raise InputError(f"{where} ({kind}): an activation must follow a Linear layer")
            if kind == "Hardtanh" and (layer.min_val != -1.0 or layer.max_val != 1.0):
                raise InputError(
                    f"{where} (Hardtanh): only Hardtanh(-1, 1) is supported, got "
                    f"Hardtanh({layer.min_val}, {layer.max_val})"
                )
            acts.append({"ReLU": "relu", "LeakyReLU": "leaky_relu", "Hardtanh": "hardtanh"}[kind])
            slopes.append(float(layer.negative_slope) if kind == "LeakyReLU" else 0.0)
            pending_linear = False
            continue
        raise InputError(
            f"{where} ({kind}): unsupported layer; supported are Linear, ReLU, LeakyReLU, "
            "Hardtanh(-1, 1), Identity, Flatten, Dropout"
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
    if act != "relu":
        raise InputError(
            f"estimator: activation {act!r} is not piecewise linear; use 'relu' or 'identity'"
        )
    return weights, biases, ["relu"] * (len(weights) - 1)

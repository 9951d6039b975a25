"""Lower a torch ``nn.Sequential`` over images to a dense MLP, exactly.

Every affine operation (``Linear``, ``Conv2d``, ``AvgPool2d`` (``AdaptiveAvgPool2d`` where
its windows are equal), eval-mode ``BatchNorm1d`` /
``BatchNorm2d``, ``Flatten``) is written as the dense matrix ``M`` and bias ``b`` of its
action on the per-sample tensor flattened in PyTorch's (C, H, W) order; consecutive affine
operations are composed into one matrix, and each element-wise activation closes a layer.
The matrix entries of a convolution are the kernel weights themselves (placed by index
arithmetic, no arithmetic on them), those of an average pool ``1 / divisor``; BatchNorm
scales rows. Each lowered operation is checked against the module's own float64 forward on
random inputs before it is used. torch is never imported here: it is already loaded,
since the module passed in is a torch module.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import numpy as np

from ._convert import _batchnorm_affine, torch_activation_name
from ._validate import available_memory
from .errors import InputError

__all__ = ["lower_torch"]

_DROPPED = {"Identity", "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout"}
_NOT_YET = {
    "MaxPool1d": "not supported (1-d pooling; the layer model pools 2-d maps: MaxPool2d)",
}


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def _pair(v: Any, what: str, where: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(v)
    if len(t) != 2:
        raise InputError(f"{where}: {what} must be an int or a pair, got {v!r}")
    return (int(t[0]), int(t[1]))


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class _Affine:
    """The affine map ``x -> A x + c`` from the last layer's output, kept lazily.

    ``A`` is None with ``diag`` None for the identity, None with ``diag`` set for a
    diagonal map (BatchNorm before any dense operation), else dense.
    """

    def __init__(self, n: int, budget: int) -> None:
        self.n_in = n
        self.n_out = n
        self.A: np.ndarray | None = None
        self.diag: np.ndarray | None = None
        # the offset, None while zero: nothing input-sized is allocated before the first
        # module has checked the input shape (a huge input_shape is refused there)
        self.c: np.ndarray | None = None
        self.budget = budget
        self.empty = True  # no affine operation since the last activation

    def _check_bytes(self, rows: int, cols: int, where: str, what: str) -> None:
        need = 8 * rows * cols
        if need > self.budget:
            raise InputError(
                f"{where}: lowering it to a dense matrix needs {_gib(need)} for the "
                f"{rows} x {cols} float64 {what}, more than the limit of {_gib(self.budget)} "
                "(half the memory available); use a smaller input_shape or network"
            )

    def dense(self, M: np.ndarray, b: np.ndarray) -> None:
        if self.A is not None:
            self.A = M @ self.A
        elif self.diag is not None:
            self.A = M * self.diag[None, :]
        else:
            self.A = M
        self.c = b.copy() if self.c is None else M @ self.c + b
        self.n_out = M.shape[0]
        self.diag = None
        self.empty = False

    def scale(self, s: np.ndarray, t: np.ndarray) -> None:
        if self.A is not None:
            self.A = s[:, None] * self.A
        elif self.diag is not None:
            self.diag = s * self.diag
        else:
            self.diag = s.copy()
        self.c = t.copy() if self.c is None else s * self.c + t
        self.empty = False

    def matrix(self, where: str) -> tuple[np.ndarray, np.ndarray]:
        c = np.zeros(self.n_out) if self.c is None else self.c
        if self.A is not None:
            return self.A, c
        if self.diag is not None:
            self._check_bytes(self.n_out, self.n_in, where, "diagonal matrix")
            return np.diag(self.diag), c
        self._check_bytes(self.n_in, self.n_in, where, "identity matrix")
        return np.eye(self.n_in), c


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _conv2d(where: str, layer: Any, shape: tuple[int, ...], acc: _Affine):
    if len(shape) != 3:
        raise InputError(
            f"{where} (Conv2d): takes a (C, H, W) tensor per sample, got {_shape_str(shape)}"
        )
    if layer.padding_mode != "zeros":
        raise InputError(
            f"{where} (Conv2d): padding_mode={layer.padding_mode!r} is not supported (only 'zeros')"
        )
    C, H, W = shape
    w = _np(layer.weight)
    c_out, c_in_g, kh, kw = w.shape
    if c_out == 0:
        raise InputError(f"{where} (Conv2d): has no outputs (out_channels = 0)")
    groups = int(layer.groups)
    if C != c_in_g * groups:
        raise InputError(
            f"{where} (Conv2d): expects {c_in_g * groups} input channels, got a tensor "
            f"of shape {_shape_str(shape)}"
        )
    sh, sw = _pair(layer.stride, "stride", where)
    dh, dw = _pair(layer.dilation, "dilation", where)
    if isinstance(layer.padding, str):
        if layer.padding == "valid":
            pads = ((0, 0), (0, 0))
        else:  # 'same' (stride 1): torch puts the odd extra padding at the end
            tot = (dh * (kh - 1), dw * (kw - 1))
            pads = ((tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2))
    else:
        ph, pw = _pair(layer.padding, "padding", where)
        pads = ((ph, ph), (pw, pw))
    Ho = (H + pads[0][0] + pads[0][1] - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + pads[1][0] + pads[1][1] - dw * (kw - 1) - 1) // sw + 1
    if Ho < 1 or Wo < 1:
        raise InputError(
            f"{where} (Conv2d): kernel {kh}x{kw} (dilation {dh}x{dw}) does not fit the "
            f"padded input of shape {_shape_str(shape)}"
        )
    n_in, n_out = C * H * W, c_out * Ho * Wo
    acc._check_bytes(n_out, n_in, f"{where} (Conv2d)", "matrix")
    acc._check_bytes(n_out, acc.n_in, f"{where} (Conv2d)", "composed matrix")
    M = np.zeros((n_out, n_in))
    o = np.arange(c_out)[:, None, None, None, None, None]
    i = np.arange(Ho)[None, :, None, None, None, None]
    j = np.arange(Wo)[None, None, :, None, None, None]
    ci = np.arange(c_in_g)[None, None, None, :, None, None]
    ki = np.arange(kh)[None, None, None, None, :, None]
    kj = np.arange(kw)[None, None, None, None, None, :]
    r = i * sh - pads[0][0] + ki * dh
    s = j * sw - pads[1][0] + kj * dw
    ch = (o // (c_out // groups)) * c_in_g + ci
    row = (o * Ho + i) * Wo + j
    col = (ch * H + r) * W + s
    inside = (r >= 0) & (r < H) & (s >= 0) & (s < W)
    shape6 = (c_out, Ho, Wo, c_in_g, kh, kw)
    inside = np.broadcast_to(inside, shape6)
    vals = np.broadcast_to(w[:, None, None, :, :, :], shape6)
    # Distinct (ki, kj) of one output reach distinct inputs: plain assignment, no sums.
    M[np.broadcast_to(row, shape6)[inside], np.broadcast_to(col, shape6)[inside]] = vals[inside]
    b = np.repeat(_np(layer.bias), Ho * Wo) if layer.bias is not None else np.zeros(n_out)
    return M, b, (c_out, Ho, Wo)


def _avgpool2d(where: str, layer: Any, shape: tuple[int, ...], acc: _Affine):
    kind = type(layer).__name__
    if len(shape) != 3:
        raise InputError(
            f"{where} ({kind}): takes a (C, H, W) tensor per sample, got {_shape_str(shape)}"
        )
    C, H, W = shape
    if kind == "AdaptiveAvgPool2d":  # equal windows: an AvgPool2d (fastmem._graph)
        from ._graph import adaptive_pool_kernel

        kh, kw = adaptive_pool_kernel(f"{where} ({kind})", layer.output_size, shape)
        sh, sw, ph, pw = kh, kw, 0, 0
        divisor_override, count_include_pad = None, True
    else:
        if layer.ceil_mode:
            raise InputError(f"{where} (AvgPool2d): ceil_mode=True is not supported")
        kh, kw = _pair(layer.kernel_size, "kernel_size", where)
        stride = layer.stride if layer.stride is not None else layer.kernel_size
        sh, sw = _pair(stride, "stride", where)
        ph, pw = _pair(layer.padding, "padding", where)
        divisor_override, count_include_pad = layer.divisor_override, layer.count_include_pad
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
    if Ho < 1 or Wo < 1:
        raise InputError(
            f"{where} (AvgPool2d): kernel {kh}x{kw} does not fit the padded input of shape "
            f"{_shape_str(shape)}"
        )
    n_in, n_out = C * H * W, C * Ho * Wo
    acc._check_bytes(n_out, n_in, f"{where} (AvgPool2d)", "matrix")
    acc._check_bytes(n_out, acc.n_in, f"{where} (AvgPool2d)", "composed matrix")
    c = np.arange(C)[:, None, None, None, None]
    i = np.arange(Ho)[None, :, None, None, None]
    j = np.arange(Wo)[None, None, :, None, None]
    r = i * sh - ph + np.arange(kh)[None, None, None, :, None]
    s = j * sw - pw + np.arange(kw)[None, None, None, None, :]
    shape5 = (C, Ho, Wo, kh, kw)
    inside = np.broadcast_to((r >= 0) & (r < H) & (s >= 0) & (s < W), shape5)
    if divisor_override:
        div = np.full((Ho, Wo), float(divisor_override))
    elif count_include_pad:
        div = np.full((Ho, Wo), float(kh * kw))
    else:
        div = inside[0].sum(axis=(2, 3)).astype(np.float64)
    row = (c * Ho + i) * Wo + j
    col = (c * H + r) * W + s
    M = np.zeros((n_out, n_in))
    vals = np.broadcast_to((1.0 / div)[None, :, :, None, None], shape5)
    M[np.broadcast_to(row, shape5)[inside], np.broadcast_to(col, shape5)[inside]] = vals[inside]
    return M, np.zeros(n_out), (C, Ho, Wo)


def _check_against_torch(where: str, kind: str, layer: Any, shape, M, b, rng) -> None:
    """The lowered map reproduces the module's own float64 forward on random inputs."""
    torch = sys.modules["torch"]  # loaded: ``layer`` is a torch module
    x = rng.normal(size=(2, *shape))
    with torch.no_grad():
        want = copy.deepcopy(layer).cpu().double().eval()(torch.from_numpy(x)).numpy()
    xf = x.reshape(2, -1)
    got = xf @ M.T + b
    scale = np.abs(xf) @ np.abs(M).T + np.abs(b) + np.finfo(np.float64).tiny
    err = float(np.max(np.abs(got - want.reshape(2, -1)) / scale))
    if not err <= 1e-12:
        raise InputError(
            f"{where} ({kind}): its lowered dense matrix does not reproduce the module's "
            f"forward (relative error {err:.3g}); a subclass with its own forward?"
        )


def lower_torch(
    layers: list[tuple[str, Any]],
    input_shape: tuple[int, ...],
    activations: dict[str, str],
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[float]]:
    """Weights, biases, activations and slopes of the flattened module list ``layers``."""
    shape = tuple(input_shape)
    budget = available_memory()[0] // 2
    acc = _Affine(int(np.prod(shape)), budget)
    rng = np.random.default_rng(0)
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[str] = []
    slopes: list[float] = []
    for where, layer in layers:
        kind = type(layer).__name__
        if kind in _DROPPED:
            continue
        if kind == "Flatten":
            if (layer.start_dim, layer.end_dim) != (1, -1):
                raise InputError(
                    f"{where} (Flatten): only Flatten(start_dim=1, end_dim=-1) is supported"
                )
            shape = (int(np.prod(shape)),)
            continue
        if kind in ("Conv2d", "AvgPool2d", "AdaptiveAvgPool2d"):
            lower = _conv2d if kind == "Conv2d" else _avgpool2d
            M, b, new_shape = lower(where, layer, shape, acc)
            _check_against_torch(where, kind, layer, shape, M, b, rng)
            acc.dense(M, b)
            shape = new_shape
            continue
        if kind == "Linear":
            if len(shape) != 1:
                raise InputError(
                    f"{where} (Linear): takes a flat tensor per sample, got shape "
                    f"{_shape_str(shape)}; put a Flatten before it"
                )
            w = _np(layer.weight)
            if w.shape[0] == 0:
                raise InputError(f"{where} (Linear): has no outputs (out_features = 0)")
            if w.shape[1] != shape[0]:
                raise InputError(
                    f"{where} (Linear): takes {w.shape[1]} inputs, got {shape[0]} features"
                )
            acc._check_bytes(w.shape[0], acc.n_in, f"{where} (Linear)", "composed matrix")
            b = _np(layer.bias) if layer.bias is not None else np.zeros(w.shape[0])
            acc.dense(w, b)
            shape = (w.shape[0],)
            continue
        if kind in ("BatchNorm1d", "BatchNorm2d"):
            want_ndim = 1 if kind == "BatchNorm1d" else 3
            if len(shape) != want_ndim:
                raise InputError(
                    f"{where} ({kind}): takes a "
                    f"{'flat' if want_ndim == 1 else '(C, H, W)'} tensor per sample, got "
                    f"shape {_shape_str(shape)}"
                )
            s, t = _batchnorm_affine(where, layer, kind)
            if s.shape[0] != shape[0]:
                raise InputError(
                    f"{where} ({kind}): has {s.shape[0]} features, got a tensor of shape "
                    f"{_shape_str(shape)}"
                )
            per = int(np.prod(shape[1:]))
            acc.scale(np.repeat(s, per), np.repeat(t, per))
            continue
        if kind in activations:
            if acc.empty:
                raise InputError(
                    f"{where} ({kind}): an activation must follow an affine layer (Linear, "
                    "Conv2d, AvgPool2d, BatchNorm)"
                )
            name = torch_activation_name(where, kind, layer, activations)
            M, c = acc.matrix(f"{where} ({kind})")
            weights.append(M)
            biases.append(c)
            acts.append(name)
            slopes.append(float(layer.negative_slope) if kind == "LeakyReLU" else 0.0)
            acc = _Affine(M.shape[0], budget)
            continue
        if kind in _NOT_YET:
            raise InputError(f"{where} ({kind}): {_NOT_YET[kind]}")
        raise InputError(
            f"{where} ({kind}): not supported yet; supported are Linear, Conv2d, AvgPool2d, "
            "BatchNorm1d/2d (eval mode), Flatten, Identity, Dropout and the activations "
            + ", ".join(sorted(activations))
        )
    if acc.empty:
        if not weights:
            raise InputError("module: contains no affine layer")
        raise InputError(
            f"module: must end with an affine layer (the output is linear), ends with {acts[-1]}"
        )
    M, c = acc.matrix("module")
    weights.append(M)
    biases.append(c)
    return weights, biases, acts, slopes

"""Weight norms and path norms of a network (shared by every construction)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import InputError
from ..network import Network


def _exponent(W: np.ndarray) -> int:
    """``e`` with ``max |W| * 2**-e`` in [0.5, 1) (0 for an empty or zero ``W``)."""
    top = float(np.abs(W).max()) if W.size else 0.0
    return math.frexp(top)[1] if top > 0 and math.isfinite(top) else 0


def _fro(W: np.ndarray) -> float:
    """Frobenius norm computed on ``W * 2**-e`` (exact scaling): its squares neither
    overflow (entries above ~1e154) nor underflow; Inf only if the norm itself is."""
    e = _exponent(W)
    return _ldexp(float(np.linalg.norm(np.ldexp(W, -e))), e)


def _ldexp(x: float, e: int) -> float:
    try:
        return math.ldexp(x, e)
    except OverflowError:
        return math.inf


def _spectral(W: np.ndarray) -> float:
    if W.size == 0:
        return 0.0
    if min(W.shape) == 1:
        return _fro(W)
    e = _exponent(W)
    Ws = np.ldexp(W, -e)
    g = Ws.T @ Ws if W.shape[0] >= W.shape[1] else Ws @ Ws.T
    return _ldexp(float(math.sqrt(max(float(np.linalg.eigvalsh(g)[-1]), 0.0))), e)


def weight_norms(network: Network, *, spectral: list[float | None] | None = None) -> dict[str, Any]:
    """Per-layer norms and path norms of a network (see :class:`Construction`).

    Parameters
    ----------
    network : Network
    spectral : list of float or None, optional
        Known spectral norms per layer (None entries are computed).

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> from fastmem.memorize import weight_norms
    >>> net = fastmem.Network.from_arrays([np.array([[3.0, -4.0]]), np.array([[2.0]])],
    ...                                   [np.zeros(1), np.zeros(1)])
    >>> n = weight_norms(net)
    >>> n["layers"][0]["l2"], n["path_l1"]
    (5.0, 14.0)
    """
    if not isinstance(network, Network):
        raise InputError(f"network: must be a fastmem.Network, got {type(network).__name__}")
    host = network.to("cpu")
    spectral = _check_spectral(spectral, host.n_layers)
    layers = []
    for i, (W, b) in enumerate(zip(host.weights, host.biases, strict=True)):
        a = np.abs(W)
        known = spectral[i] if spectral is not None else None
        layers.append(
            {
                "shape": list(W.shape),
                "max_abs": float(a.max()) if a.size else 0.0,
                "l1": float(a.sum()),
                "l2": float(known) if known is not None else _spectral(W),
                "fro": _fro(W),
                "bias_max_abs": float(np.abs(b).max()) if b.size else 0.0,
            }
        )
    # path norms: v1 = |W_L| ... |W_1| 1 and v2 = W_L^2 ... W_1^2 1, each kept as
    # (v * 2**-E, E) with power-of-two scalings (exact) so that neither the products of
    # large nor of small weights leave the float range before the end
    v1, v2 = np.ones(host.widths[0]), np.ones(host.widths[0])
    e1 = e2 = 0
    for W in host.weights:
        e = _exponent(W)
        Ws = np.ldexp(W.astype(np.float64), -e)
        v1, v2 = np.abs(Ws) @ v1, (Ws * Ws) @ v2
        f1, f2 = _exponent(v1), _exponent(v2)
        v1, v2 = np.ldexp(v1, -f1), np.ldexp(v2, -f2)
        e1 += e + f1
        e2 += 2 * e + f2
    path_l2 = _ldexp(math.sqrt(_ldexp(float(v2.sum()), e2 % 2)), e2 // 2)
    return {"layers": layers, "path_l1": _ldexp(float(v1.sum()), e1), "path_l2": path_l2}


def _check_spectral(spectral: Any, n_layers: int) -> list[float | None] | None:
    """``spectral`` as a list of ``n_layers`` entries, each None or a finite float >= 0."""
    if spectral is None:
        return None
    if isinstance(spectral, (str, bytes)) or not hasattr(spectral, "__len__"):
        raise InputError(
            f"spectral: must be a list of {n_layers} numbers or None, got {spectral!r}"
        )
    if len(spectral) != n_layers:
        raise InputError(f"spectral: has {len(spectral)} entries for {n_layers} layers")
    out: list[float | None] = []
    for i, v in enumerate(spectral):
        if v is None:
            out.append(None)
            continue
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        if not ok:
            raise InputError(f"spectral[{i}]: must be None or a finite number >= 0, got {v!r}")
        out.append(float(v))
    return out


def _rank_one_norms(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """:func:`weight_norms` of ``[1 a^T, w^T]`` in O(n + d) (W1 is never read)."""
    n = w.shape[0]
    na = float(np.linalg.norm(a))
    nw = float(np.linalg.norm(w))
    l1a = float(np.abs(a).sum())
    l1w = float(np.abs(w).sum())
    layers = [
        {
            "shape": [n, a.shape[0]],
            "max_abs": float(np.abs(a).max()),
            "l1": n * l1a,
            "l2": math.sqrt(n) * na,
            "fro": math.sqrt(n) * na,
            "bias_max_abs": float(np.abs(b).max()),
        },
        {
            "shape": [1, n],
            "max_abs": float(np.abs(w).max()),
            "l1": l1w,
            "l2": nw,
            "fro": nw,
            "bias_max_abs": 0.0,
        },
    ]
    return {"layers": layers, "path_l1": l1w * l1a, "path_l2": nw * na}

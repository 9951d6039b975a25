"""Weight norms and path norms of a network (shared by every construction)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..network import Network


def _spectral(W: np.ndarray) -> float:
    if W.size == 0:
        return 0.0
    if min(W.shape) == 1:
        return float(np.linalg.norm(W))
    g = W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T
    return float(math.sqrt(max(float(np.linalg.eigvalsh(g)[-1]), 0.0)))


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
    host = network.to("cpu")
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
                "fro": float(np.linalg.norm(W)),
                "bias_max_abs": float(np.abs(b).max()) if b.size else 0.0,
            }
        )
    v1 = np.ones(host.widths[0])
    v2 = np.ones(host.widths[0])
    with np.errstate(over="ignore", invalid="ignore"):
        for W in host.weights:
            v1 = np.abs(W) @ v1
            v2 = (W * W) @ v2
    return {
        "layers": layers,
        "path_l1": float(v1.sum()),
        "path_l2": float(math.sqrt(v2.sum())) if np.isfinite(v2.sum()) else math.inf,
    }


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

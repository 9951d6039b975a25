"""The :class:`Construction` result and the input checks shared by every construction."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import select_backend, to_device
from .._json import jsonable
from .._validate import array_device, as_float_array
from ..errors import InputError
from ..network import Network

_EPS = float(np.finfo(np.float64).eps)


# ----------------------------------------------------------------- the result
@dataclass(frozen=True)
class Construction:
    """A memorizing network and how trustworthy it is.

    Attributes
    ----------
    method : str
        ``"two_layer"``, ``"deep"``, ``"hardtanh_three_layer"``,
        ``"random_threshold"`` or ``"min_norm"``.
    network : Network
        float64 network whose ``forward`` reproduces the labels.
    residual : float
        Regression constructions: ``max_i |f(x_i) - y_i|`` measured by
        evaluating the network in float64. Classification
        (:func:`random_threshold`): the number of misclassified training points.
    condition : float or None
        Estimate of the 1-norm condition number of the linear system solved
        (None when the construction solves none).
    min_gap : float or None
        Smallest gap between consecutive sorted projections (constructions that
        project the data on a line), else None.
    norms : dict
        ``"layers"``: one dict per affine layer with ``max_abs``, ``l1``
        (entrywise sum of absolute values), ``l2`` (spectral norm), ``fro``
        (Frobenius) of the weight matrix and ``bias_max_abs``; ``"path_l1"`` /
        ``"path_l2"``: the l1 / l2 path norms (sum over input-output paths of
        the product of absolute / squared weights, the latter square-rooted).
    backend : str
        Kernel backend that ran (``"cpp"``, ``"numba"``, ``"cuda"``), or
        ``"numpy"`` for the constructions that run no fastmem kernel
        (:func:`min_norm`, :func:`hardtanh_three_layer`: host LAPACK).
    interpolates : bool
        Whether every training point is reproduced (regression: residual
        within the tolerance; classification: no misclassified point).
    params : dict
        The parameters used (and data sizes).
    details : dict
        Construction-specific extras (projection direction, widths before and
        after pruning, ...).
    """

    method: str
    network: Network
    residual: float
    condition: float | None
    min_gap: float | None
    norms: dict[str, Any]
    backend: str
    interpolates: bool
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (the network itself is described by its widths)."""
        return jsonable(
            {
                "method": self.method,
                "widths": list(self.network.widths),
                "activation": list(self.network.activation),
                "residual": self.residual,
                "condition": self.condition,
                "min_gap": self.min_gap,
                "norms": self.norms,
                "backend": self.backend,
                "interpolates": self.interpolates,
                "params": self.params,
                "details": self.details,
            }
        )


# ---------------------------------------------------------------- validation


# The constructions multiply data by weights of the data's inverse scale and sum such
# products: within this range of magnitudes nothing over- or underflows in float64.
SCALE_RANGE = (1e-150, 1e150)


def _check_scale(a: Any, name: str, xp: Any) -> None:
    """`InputError` naming ``name`` when its largest magnitude is outside SCALE_RANGE."""
    peak = float(xp.abs(a).max()) if a.size else 0.0
    lo, hi = SCALE_RANGE
    if peak > hi or 0.0 < peak < lo:
        raise InputError(
            f"{name}: its largest magnitude is {peak:.3g}; the constructions work on values "
            f"whose largest magnitude lies in [{lo:g}, {hi:g}] (outside it their float64 "
            f"products over- or underflow): rescale {name} (they are scale-covariant)"
        )


def _setup(X: Any, backend: str | None, *, scale: bool = False) -> tuple[Any, Any]:
    device = array_device(X)
    be = select_backend(device, backend)
    X = as_float_array(X, "X", ndim=2, dtype=np.float64, xp=np if device == "cpu" else be.xp)
    if scale:
        _check_scale(X, "X", np if device == "cpu" else be.xp)
    return to_device(X, be.device), be


def _targets(y: Any, n: int, xp: Any, *, allow_2d: bool = False, scale: bool = False) -> Any:
    arr = y
    try:
        ndim = np.ndim(arr) if not hasattr(arr, "ndim") else arr.ndim
    except (TypeError, ValueError) as exc:
        raise InputError(f"y: cannot be converted to an array ({exc})") from exc
    if ndim not in ((1, 2) if allow_2d else (1,)):
        want = "(n,) or (n, k)" if allow_2d else "(n,)"
        raise InputError(f"y: expected shape {want}, got shape {np.shape(arr)}")
    y = as_float_array(
        arr, "y", ndim=ndim, dtype=np.float64, xp=np if array_device(arr) == "cpu" else xp
    )
    if y.shape[0] != n:
        raise InputError(f"y: has {y.shape[0]} entries but X has {n} rows")
    if scale:
        _check_scale(y, "y", np if array_device(y) == "cpu" else xp)
    return xp.asarray(y)


def _check_on_ill(on_ill: str) -> None:
    if on_ill not in ("raise", "warn"):
        raise InputError(f"on_ill: must be 'raise' or 'warn', got {on_ill!r}")


def _check_tol(tol: Any) -> float:
    if not isinstance(tol, numbers.Real) or isinstance(tol, bool) or not tol > 0:
        raise InputError(f"tol: must be a number > 0, got {tol!r}")
    if not math.isfinite(float(tol)):
        raise InputError(f"tol: must be finite, got {tol!r}")
    return float(tol)

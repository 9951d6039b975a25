"""Verification shared by the constructions: residual against the tolerance, class margins."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import to_device
from ..errors import InputError, report_ill_conditioned


def _check_residual(
    method: str,
    residual: float,
    scale: float,
    tol: float,
    condition: float,
    on_ill: str,
    error_estimate: float = 0.0,
) -> bool:
    ok = residual + error_estimate <= tol * scale
    if not ok:
        extra = (
            f" plus an estimated float64 evaluation error of {error_estimate:.3g}"
            if error_estimate
            else ""
        )
        msg = (
            f"{method}: the constructed network misses the labels by {residual:.3g}{extra} "
            f"(> tol * max|y| = {tol * scale:.3g}); the structured system is too "
            f"ill-conditioned (1-norm condition estimate {condition:.3g}) for float64"
        )
        report_ill_conditioned(
            msg, condition=condition, residual=residual, on_ill=on_ill, stacklevel=3
        )
    return ok


_TASKS = ("auto", "regress", "classify")


def _resolve_task(task: Any, y: Any, xp: Any) -> tuple[str, Any]:
    """``"auto"`` -> ``"classify"`` exactly when every label is -1 or +1, else ``"regress"``.

    Returns the task and, for ``"classify"``, the sorted class values (on the host).
    """
    if task not in _TASKS:
        raise InputError(f"task: must be one of {_TASKS}, got {task!r}")
    if task == "regress":
        return task, None
    classes = np.unique(np.asarray(to_device(y, "cpu")))
    if task == "auto":
        if not np.all(np.abs(classes) == 1.0):
            return "regress", None
        task = "classify"
    return task, classes


def _margins(f: Any, y: Any, classes: np.ndarray, xp: Any) -> Any:
    """Distance of each output ``f_i`` to the edge of its label's class cell.

    A point belongs to the class value nearest to its output (for +-1 labels: the sign), so the
    cell of class value ``c_k`` is ``((c_(k-1) + c_k) / 2, (c_k + c_(k+1)) / 2)`` (unbounded at
    the ends). The margin is positive exactly when the point keeps its class.
    """
    cl = xp.asarray(classes)
    k = xp.searchsorted(cl, y)
    inf = xp.asarray([math.inf])
    lo_edge = xp.concatenate([-inf, (cl[:-1] + cl[1:]) / 2])
    hi_edge = xp.concatenate([(cl[:-1] + cl[1:]) / 2, inf])
    return xp.minimum(f - lo_edge[k], hi_edge[k] - f)


def _check_classes(
    method: str,
    margins: Any,
    est: Any,
    condition: float,
    residual: float,
    on_ill: str,
) -> bool:
    """Every point must keep its class with a margin above its estimated evaluation error."""
    slack = margins - est
    worst = int(slack.argmin())
    ok = bool(slack[worst] > 0)
    if not ok:
        bad = int((slack <= 0).sum())
        msg = (
            f"{method}: {bad} point(s) do not keep their class with a margin above the "
            f"estimated float64 evaluation error; worst: margin {float(margins[worst]):.3g} "
            f"vs estimated error {float(est[worst]):.3g} (1-norm condition estimate "
            f"{condition:.3g}, max |f(x_i) - y_i| = {residual:.3g})"
        )
        report_ill_conditioned(
            msg, condition=condition, residual=residual, on_ill=on_ill, stacklevel=3
        )
    return ok

"""Verification shared by the constructions: the residual check against the tolerance."""

from __future__ import annotations

from ..errors import report_ill_conditioned


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

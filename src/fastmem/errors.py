"""Exceptions and warnings raised by fastmem."""

from __future__ import annotations

import warnings

__all__ = [
    "BackendError",
    "ConditioningError",
    "ConditioningWarning",
    "InputError",
    "report_ill_conditioned",
]


class InputError(ValueError):
    """An argument has the wrong shape, dtype, values or device.

    The message names the argument and the problem, e.g.
    ``X: expected a 2-D array (n, d), got shape (5,)``.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.eye(2)], [np.zeros(2)])
    >>> try:
    ...     net.forward(np.ones(2))
    ... except fastmem.InputError as exc:
    ...     print(type(exc).__name__, isinstance(exc, ValueError))
    InputError True
    """


class BackendError(RuntimeError):
    """A requested kernel backend is unavailable, with the reason why.

    Raised when ``FASTMEM_BACKEND`` or a ``backend=`` argument names a backend
    that cannot run here (never silently replaced by another one).
    """


class ConditioningError(ArithmeticError):
    """A linear system is too ill-conditioned for the requested accuracy.

    Attributes
    ----------
    condition : float
        Estimate of the condition number (1-norm unless stated otherwise).
    residual : float
        Relative backward error or residual measured on the computed solution
        (``nan`` when no solution was computed).
    """

    def __init__(self, message: str, *, condition: float, residual: float = float("nan")):
        super().__init__(message)
        self.condition = float(condition)
        self.residual = float(residual)


class ConditioningWarning(UserWarning):
    """A linear system is ill-conditioned; the result may be inaccurate.

    Carries the same ``condition`` and ``residual`` attributes as
    :class:`ConditioningError`.
    """

    def __init__(self, message: str, *, condition: float, residual: float = float("nan")):
        super().__init__(message)
        self.condition = float(condition)
        self.residual = float(residual)


def report_ill_conditioned(
    message: str, *, condition: float, residual: float, on_ill: str, stacklevel: int
) -> None:
    """Raise `ConditioningError` (``on_ill="raise"``) or warn with `ConditioningWarning`.

    ``stacklevel`` counts from the caller of this function, as in `warnings.warn`.
    """
    if on_ill == "raise":
        raise ConditioningError(message, condition=condition, residual=residual)
    warnings.warn(
        ConditioningWarning(message, condition=condition, residual=residual),
        stacklevel=stacklevel + 1,
    )

"""Dense solves with conditioning checks, and the 1-norm condition estimator.

:func:`solve` factors ``A`` with LAPACK (LU with partial pivoting, Cholesky, or
uses the triangle as is), solves, and estimates the reciprocal 1-norm condition
number ``rcond = 1 / (||A||_1 ||A^{-1}||_1)`` with LAPACK's ``xGECON`` /
``xPOCON`` / ``xTRCON``, i.e. Hager's method as refined by Higham (1988): a
few solves with the factors, never an SVD. A system whose ``rcond`` falls below
``rcond_min`` raises :class:`~fastmem.ConditioningError` (or warns with
:class:`~fastmem.ConditioningWarning`); both carry the condition estimate and
the backward error.

:func:`onenorm_inverse_estimate` is the same estimator (Higham's Algorithm 4.1,
LAPACK ``xLACON``) driven by user-supplied solves with ``A`` and ``A^T``; the
O(n) structured systems of :mod:`fastmem.memorize` use it.

References
----------
W. W. Hager, "Condition estimates", SIAM J. Sci. Stat. Comput. 5 (1984).
N. J. Higham, "FORTRAN codes for estimating the one-norm of a real or complex
matrix, with applications to condition estimation", ACM TOMS 14 (1988).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._json import jsonable
from ._validate import as_float_array
from ._validate import to_host as _host
from .errors import ConditioningError, InputError, report_ill_conditioned

__all__ = ["Solution", "onenorm_inverse_estimate", "solve"]

_EPS = float(np.finfo(np.float64).eps)
_ASSUME = ("general", "pos", "lower")


@dataclass(frozen=True)
class Solution:
    """Result of :func:`solve`; unpacks as ``x, rcond, backward_error``.

    Attributes
    ----------
    x : ndarray, shape like ``b``
        The computed solution (float64).
    rcond : float
        Estimated reciprocal 1-norm condition number of ``A`` (LAPACK
        ``xGECON``/``xPOCON``/``xTRCON``); 0 for an exactly singular matrix.
    backward_error : float
        Normwise relative backward error
        ``max_k ||b_k - A x_k||_inf / (||A||_inf ||x_k||_inf + ||b_k||_inf)``
        over the columns ``k`` of ``b`` (Rigal-Gaches).
    assume : str
        The structure used: ``"general"``, ``"pos"`` or ``"lower"``.
    """

    x: np.ndarray
    rcond: float
    backward_error: float
    assume: str

    @property
    def condition(self) -> float:
        """Estimated 1-norm condition number ``1 / rcond``."""
        return math.inf if self.rcond == 0 else 1.0 / self.rcond

    def __iter__(self) -> Iterator[Any]:
        yield self.x
        yield self.rcond
        yield self.backward_error

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int | slice) -> Any:
        """``solution[0]`` is ``x``, ``[1]`` ``rcond``, ``[2]`` ``backward_error``."""
        return (self.x, self.rcond, self.backward_error)[index]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary."""
        return jsonable(
            {
                "x": self.x,
                "rcond": self.rcond,
                "condition": self.condition,
                "backward_error": self.backward_error,
                "assume": self.assume,
            }
        )


def _lapack() -> Any:
    try:
        from scipy.linalg import lapack
    except ImportError as exc:  # pragma: no cover - scipy is a dependency
        raise ImportError("fastmem.linalg needs SciPy (pip install scipy)") from exc
    return lapack


def backward_error(A: np.ndarray, x: np.ndarray, b: np.ndarray) -> float:
    """Normwise relative backward error of ``x`` for ``A x = b`` (inf-norm)."""
    x2 = x.reshape(x.shape[0], -1)
    b2 = b.reshape(b.shape[0], -1)
    r = b2 - A @ x2
    a_norm = float(np.abs(A).sum(axis=1).max()) if A.size else 0.0
    num = np.abs(r).max(axis=0)
    den = a_norm * np.abs(x2).max(axis=0) + np.abs(b2).max(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 0))
    return float(ratio.max()) if ratio.size else 0.0


def solve(
    A: Any,
    b: Any,
    *,
    assume: str = "general",
    rcond_min: float | None = None,
    on_ill: str = "raise",
) -> Solution:
    """Solve ``A x = b`` with a 1-norm condition estimate and a backward error.

    Parameters
    ----------
    A : array_like (n, n)
        The matrix; cast to float64. CuPy arrays are copied to the host.
    b : array_like (n,) or (n, k)
        Right-hand side(s).
    assume : {"general", "pos", "lower"}
        ``"general"``: LU with partial pivoting (``xGETRF``/``xGETRS``,
        estimate ``xGECON``). ``"pos"``: symmetric positive definite, Cholesky
        of the lower triangle (``xPOTRF``/``xPOTRS``, ``xPOCON``); a matrix
        that is not numerically positive definite is treated as ill-conditioned.
        ``"lower"``: only the lower triangle of ``A`` is used
        (``xTRTRS``, ``xTRCON``).
    rcond_min : float, optional
        Smallest acceptable reciprocal condition estimate; default machine
        epsilon (2.2e-16), i.e. "singular to working precision".
    on_ill : {"raise", "warn"}
        What to do when ``rcond < rcond_min``: raise
        :class:`~fastmem.ConditioningError` or emit a
        :class:`~fastmem.ConditioningWarning` and return the solution. An
        exactly singular matrix (zero pivot) always raises.

    Returns
    -------
    Solution
        ``x``, ``rcond``, ``backward_error`` (unpacks as a 3-tuple).

    Raises
    ------
    InputError
        Non-square ``A``, mismatched ``b``, NaN/Inf, empty input, bad options.
    ConditioningError
        Ill-conditioned or singular system (``condition`` and ``residual``
        attributes: the 1-norm condition estimate and the backward error).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import linalg
    >>> x, rcond, berr = linalg.solve(np.array([[2.0, 0.0], [1.0, 4.0]]), np.array([2.0, 9.0]))
    >>> x
    array([1., 2.])
    >>> bool(berr < 1e-15), round(1 / rcond, 3)
    (True, 2.5)
    >>> linalg.solve(np.array([[1.0, 1.0], [1.0, 1.0 + 1e-17]]), np.ones(2))
    Traceback (most recent call last):
    ...
    fastmem.errors.ConditioningError: A: singular matrix (zero pivot at row 2)
    """
    if assume not in _ASSUME:
        raise InputError(f"assume: must be one of {_ASSUME}, got {assume!r}")
    if on_ill not in ("raise", "warn"):
        raise InputError(f"on_ill: must be 'raise' or 'warn', got {on_ill!r}")
    if rcond_min is None:
        rcond_min = _EPS
    if not (isinstance(rcond_min, numbers.Real) and 0 <= rcond_min < 1):
        raise InputError(f"rcond_min: must be a number in [0, 1), got {rcond_min!r}")
    A = as_float_array(_host(A), "A", ndim=2, dtype=np.float64)
    b_arr = _host(b)
    try:
        ndim = np.ndim(b_arr)
    except (TypeError, ValueError) as exc:
        raise InputError(f"b: cannot be converted to an array ({exc})") from exc
    if ndim not in (1, 2):
        raise InputError(f"b: expected a 1-D (n,) or 2-D (n, k) array, got shape {np.shape(b_arr)}")
    b = as_float_array(b_arr, "b", ndim=ndim, dtype=np.float64)
    n = A.shape[0]
    if A.shape[1] != n:
        raise InputError(f"A: must be square, got shape {A.shape}")
    if b.shape[0] != n:
        raise InputError(f"b: has {b.shape[0]} rows but A is {n} x {n}")
    lapack = _lapack()
    b2 = np.asfortranarray(b.reshape(n, -1))
    if assume == "general":
        anorm = float(np.abs(A).sum(axis=0).max())
        lu, piv, info = lapack.dgetrf(A)
        if info > 0:
            raise ConditioningError(
                f"A: singular matrix (zero pivot at row {info})", condition=math.inf
            )
        rcond, _ = lapack.dgecon(lu, anorm, norm="1")
        x, info = lapack.dgetrs(lu, piv, b2)
        used = A
    elif assume == "pos":
        sym = np.tril(A) + np.tril(A, -1).T
        anorm = float(np.abs(sym).sum(axis=0).max())
        c, info = lapack.dpotrf(A, lower=1, clean=1)
        if info > 0:
            raise ConditioningError(
                f"A: not numerically positive definite (Cholesky failed at row {info})",
                condition=math.inf,
            )
        rcond, _ = lapack.dpocon(c, anorm, uplo="L")
        x, info = lapack.dpotrs(c, b2, lower=1)
        used = sym
    else:
        low = np.tril(A)
        diag = np.diag(low)
        zero = np.flatnonzero(diag == 0)
        if zero.size:
            raise ConditioningError(
                f"A: singular matrix (zero diagonal entry at row {int(zero[0]) + 1})",
                condition=math.inf,
            )
        rcond, _ = lapack.dtrcon(low, norm="1", uplo="L", diag="N")
        x, info = lapack.dtrtrs(low, b2, lower=1)
        used = low
    x = np.ascontiguousarray(x).reshape(b.shape)
    rcond = float(rcond)
    berr = backward_error(used, x, b)
    if not np.isfinite(x).all():
        raise ConditioningError(
            "A: the solution overflowed (the system is numerically singular)",
            condition=math.inf if rcond == 0 else 1.0 / rcond,
            residual=berr,
        )
    if rcond < rcond_min:
        cond = math.inf if rcond == 0 else 1.0 / rcond
        msg = (
            f"A: ill-conditioned system: 1-norm condition estimate {cond:.3g} exceeds "
            f"1/rcond_min = {1.0 / rcond_min if rcond_min > 0 else math.inf:.3g} "
            f"(backward error {berr:.3g})"
        )
        report_ill_conditioned(msg, condition=cond, residual=berr, on_ill=on_ill, stacklevel=2)
    return Solution(x=x, rcond=rcond, backward_error=berr, assume=assume)


def onenorm_inverse_estimate(
    solve_a: Callable[[Any], Any],
    solve_at: Callable[[Any], Any],
    n: int,
    *,
    xp: Any = np,
    max_iter: int = 5,
) -> float:
    """Estimate ``||A^{-1}||_1`` from solves with ``A`` and ``A^T`` (Hager-Higham).

    Higham's refinement of Hager's method (LAPACK ``xLACON``): a gradient
    ascent of the convex function ``x -> ||A^{-1} x||_1`` over the unit
    1-norm ball, started at ``(1/n, ..., 1/n)``, at most ``max_iter`` steps,
    plus the extra test vector ``x_i = (-1)^i (1 + i / (n - 1))``. Every
    candidate is an actual value of ``||A^{-1} x||_1 / ||x||_1``, so the
    estimate never exceeds the true norm (up to rounding in the solves); in
    practice it is almost always within a factor 3 of it.

    Parameters
    ----------
    solve_a, solve_at : callable
        ``v -> A^{-1} v`` and ``v -> A^{-T} v`` for 1-D float64 vectors.
    n : int
        Order of ``A``.
    xp : module
        Array module of the vectors (NumPy or CuPy).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem.linalg import onenorm_inverse_estimate
    >>> A = np.array([[4.0, 0.0], [1.0, 0.5]])
    >>> est = onenorm_inverse_estimate(lambda v: np.linalg.solve(A, v),
    ...                                lambda v: np.linalg.solve(A.T, v), 2)
    >>> est, float(np.abs(np.linalg.inv(A)).sum(axis=0).max())
    (2.0, 2.0)
    """
    if n <= 0:
        return 0.0
    x = xp.full(n, 1.0 / n)
    y = solve_a(x)
    if n == 1:
        return float(xp.abs(y).sum())
    est = float(xp.abs(y).sum())
    xi = xp.where(y >= 0, 1.0, -1.0)
    z = solve_at(xi)
    j = int(xp.argmax(xp.abs(z)))
    for _ in range(1, max_iter):
        x = xp.zeros(n)
        x[j] = 1.0
        y = solve_a(x)
        est_old = est
        est = float(xp.abs(y).sum())
        xi_new = xp.where(y >= 0, 1.0, -1.0)
        if bool((xi_new == xi).all()) or est <= est_old:
            est = max(est, est_old)
            break
        xi = xi_new
        z = solve_at(xi)
        j_last = j
        az = xp.abs(z)
        j = int(xp.argmax(az))
        if float(az[j_last]) == float(az[j]):
            break
    i = xp.arange(n, dtype=np.float64)
    alt = (1.0 + i / (n - 1)) * xp.where(i % 2 == 0, 1.0, -1.0)
    temp = 2.0 * float(xp.abs(solve_a(alt)).sum()) / (3.0 * n)
    return max(est, temp)

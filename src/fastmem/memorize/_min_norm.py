"""The minimum-norm linear interpolant (the limit of gradient descent from zero)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._validate import as_float_array
from .._validate import to_host as _host
from ..errors import ConditioningError, InputError
from ..network import Network
from ._base import _EPS, Construction, _targets
from ._norms import _fro, weight_norms


def min_norm(
    X: Any,
    y: Any,
    *,
    kernel: str = "linear",
    ridge: float = 0.0,
    rcond_min: float | None = None,
) -> Construction:
    """Minimum-norm linear interpolant ``w = X^T alpha`` with ``(K + ridge I) alpha = y``.

    Gradient descent from zero on a linear (or kernel) least-squares problem
    converges to this interpolant. ``K = X X^T`` is factored by Cholesky
    (LAPACK ``xPOTRF``) with its 1-norm condition estimated by ``xPOCON``.
    Fallback, documented: when ``K`` is singular to working precision
    (Cholesky fails or ``rcond < rcond_min``, e.g. n > d), the minimum-norm
    least-squares solution is computed from ``X`` itself by a complete
    orthogonal decomposition (LAPACK ``xGELSY``: QR with column pivoting, a
    rank-revealing factorization; rank cut at ``rcond_min``), which equals
    ``pinv(X) y`` and never squares the condition number. With
    ``ridge > 0`` the ridge solution ``X^T (K + ridge I)^{-1} y`` is returned
    (it does not interpolate).

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,) or (n, k)
    kernel : {"linear"}
        Only the linear kernel yields a :class:`~fastmem.Network`.
    ridge : float
        Non-negative diagonal shift.
    rcond_min : float, optional
        Below this reciprocal condition estimate ``K`` counts as singular;
        default ``n * eps``.

    Returns
    -------
    Construction
        ``network``: one linear layer ``x -> w^T x`` (no hidden layer);
        ``details``: ``solver`` (``"cholesky"`` or ``"gelsy"``), ``rank``,
        ``norm`` (``||w||_2``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(5, 20)), rng.normal(size=5)
    >>> res = memorize.min_norm(X, y)
    >>> w = res.network.weights[0][0]
    >>> bool(np.allclose(w, np.linalg.lstsq(X, y, rcond=None)[0]))
    True
    >>> res.details["solver"]
    'cholesky'
    """
    from scipy.linalg import lstsq

    from ..linalg import solve

    if kernel != "linear":
        raise InputError(f"kernel: only 'linear' is supported, got {kernel!r}")
    if not isinstance(ridge, numbers.Real) or not math.isfinite(ridge) or ridge < 0:
        raise InputError(f"ridge: must be a finite number >= 0, got {ridge!r}")
    X = as_float_array(_host(X), "X", ndim=2, dtype=np.float64)
    n, d = X.shape
    y = _targets(_host(y), n, np, allow_2d=True)
    y2 = y.reshape(n, -1)
    if rcond_min is None:
        rcond_min = n * _EPS
    # Solved for Xs = X 2**-e (largest entry in [0.5, 1); exact for normal numbers), so
    # that K neither overflows (X near 1e154) nor underflows: with alpha_s solving
    # (Xs Xs^T + ridge 2**-2e I) alpha_s = y, w = X^T alpha = Xs^T alpha_s 2**-e.
    top = float(np.abs(X).max()) if X.size else 0.0
    e = math.frexp(top)[1] if top > 0 else 0
    Xs = np.ldexp(X, -e)
    K = Xs @ Xs.T
    if ridge:
        try:
            K[np.diag_indices(n)] += math.ldexp(float(ridge), -2 * e)
        except OverflowError:
            raise InputError(
                f"ridge: {ridge!r} is beyond the float range relative to X X^T "
                f"(|X| up to {top:.3g}); rescale X or the ridge"
            ) from None
    with np.errstate(over="ignore"):
        try:
            alpha, rcond, _ = solve(K, y2, assume="pos", rcond_min=rcond_min, on_ill="raise")
            W = np.ldexp((Xs.T @ alpha).T, -e)
            solver, rank = "cholesky", n
        except ConditioningError as exc:
            # (K + ridge I) is positive definite for ridge > 0, so this branch means
            # the ridge is below rounding: the unregularised problem is solved.
            rcond = 1.0 / exc.condition if exc.condition and math.isfinite(exc.condition) else 0.0
            sol, _, rank, _ = lstsq(Xs, y2, cond=rcond_min, lapack_driver="gelsy")
            W = np.ldexp(sol.T, -e)
            solver = "gelsy"
    if not np.isfinite(W).all():
        raise InputError(
            f"X: the interpolating weights overflow (|X| up to {top:.3g}: too small); rescale X"
        )
    net = Network.from_arrays([W], [np.zeros(W.shape[0])])
    fx = net.forward(X)
    residual = float(np.abs(fx - y2).max())
    scale = float(np.abs(y2).max()) or 1.0
    condition = math.inf if rcond == 0 else 1.0 / rcond
    return Construction(
        method="min_norm",
        network=net,
        residual=residual,
        condition=condition,
        min_gap=None,
        norms=weight_norms(net),
        backend="numpy",
        interpolates=residual <= 1e-8 * scale,
        params={"kernel": kernel, "ridge": float(ridge), "rcond_min": rcond_min, "n": n, "d": d},
        details={"solver": solver, "rank": int(rank), "norm": _fro(W)},
    )

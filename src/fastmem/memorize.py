"""Explicit memorizing networks, verified, with their conditioning and weight norms.

Constructions (each returns a :class:`Construction` whose ``network`` is a
:class:`fastmem.Network` reproducing the labels on the training points):

:func:`two_layer`
    Zhang, Bengio, Hardt, Recht & Vinyals, "Understanding deep learning
    requires rethinking generalization" (ICLR 2017), Theorem 1: a two-layer
    ReLU network with n hidden neurons, 2n + d weights.
:func:`deep`
    The depth-k version (width O(n/k)) of the same interpolant.
:func:`hardtanh_three_layer`
    Yun, Sra & Jadbabaie, "Small ReLU networks are powerful memorizers"
    (NeurIPS 2019): a three-layer hard-tanh network of widths p and q
    memorizing n <= p*q points.
:func:`random_threshold`
    Dirksen, Finke & Genzel, "Memorization with neural nets: going beyond the
    worst case": a random threshold layer, a second layer built from the
    negative class, pruned by greedy set cover.
:func:`min_norm`
    The minimum-norm linear interpolant through the Gram system ``K alpha = y``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import select_backend, to_device
from ._validate import array_device, as_float_array
from .errors import ConditioningError, InputError, report_ill_conditioned
from .linalg import onenorm_inverse_estimate
from .network import Network

__all__ = [
    "Construction",
    "deep",
    "hardtanh_three_layer",
    "min_norm",
    "random_threshold",
    "two_layer",
    "weight_norms",
]

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
        return {
            "method": self.method,
            "widths": list(self.network.widths),
            "activation": list(self.network.activation),
            "residual": self.residual,
            "condition": self.condition,
            "min_gap": self.min_gap,
            "norms": _jsonable(self.norms),
            "backend": self.backend,
            "interpolates": self.interpolates,
            "params": _jsonable(self.params),
            "details": _jsonable(self.details),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "__cuda_array_interface__") and hasattr(v, "get"):
        v = v.get()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------- validation
def _rng(rng: Any) -> np.random.Generator:
    if rng is None or isinstance(rng, numbers.Integral):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise InputError(f"rng: must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def _setup(X: Any, backend: str | None) -> tuple[Any, Any]:
    device = array_device(X)
    be = select_backend(device, backend)
    X = as_float_array(X, "X", ndim=2, dtype=np.float64, xp=np if device == "cpu" else be.xp)
    return to_device(X, be.device), be


def _targets(y: Any, n: int, xp: Any, *, allow_2d: bool = False) -> Any:
    arr = y
    ndim = np.ndim(arr) if not hasattr(arr, "ndim") else arr.ndim
    if ndim not in ((1, 2) if allow_2d else (1,)):
        want = "(n,) or (n, k)" if allow_2d else "(n,)"
        raise InputError(f"y: expected shape {want}, got shape {np.shape(arr)}")
    y = as_float_array(
        arr, "y", ndim=ndim, dtype=np.float64, xp=np if array_device(arr) == "cpu" else xp
    )
    if y.shape[0] != n:
        raise InputError(f"y: has {y.shape[0]} entries but X has {n} rows")
    return xp.asarray(y)


def _check_on_ill(on_ill: str) -> None:
    if on_ill not in ("raise", "warn"):
        raise InputError(f"on_ill: must be 'raise' or 'warn', got {on_ill!r}")


def _positive_int(v: Any, name: str, minimum: int = 1) -> int:
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {v!r}")
    return int(v)


# ---------------------------------------------------------------------- norms
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


# ------------------------------------------------------ Zhang et al. two-layer
@dataclass(frozen=True)
class _Line:
    """Sorted projections ``c``, interleaved biases ``b`` and the structured system.

    The system is ``A w = y`` with ``A[i, j] = max(c_i - b_j, 0) = c_i - b_j``
    for ``j <= i`` and 0 above the diagonal (``b_1 < c_1 < b_2 < ... < c_n``).
    """

    c: Any
    b: Any
    diag: Any  # c_i - b_i > 0
    xp: Any
    k: Any

    @property
    def n(self) -> int:
        return int(self.c.shape[0])

    def solve(self, r: Any) -> Any:
        """``A^{-1} r`` in O(n): S_i = sum_{j<=i} x_j obeys a first-order recurrence.

        Row i minus row i-1 gives ``(c_i - b_i) x_i = r_i - r_{i-1} - (c_i -
        c_{i-1}) S_{i-1}``, i.e. ``S_i = (1 - dc_i / d_i) S_{i-1} + (r_i -
        r_{i-1}) / d_i``.
        """
        xp = self.xp
        dr = xp.empty_like(r)
        dr[0] = r[0]
        dr[1:] = r[1:] - r[:-1]
        alpha = xp.empty_like(self.c)
        alpha[0] = 0.0
        alpha[1:] = 1.0 - (self.c[1:] - self.c[:-1]) / self.diag[1:]
        beta = xp.ascontiguousarray(dr / self.diag)
        s = xp.empty_like(r)
        self.k.linear_recurrence(alpha, beta, s)
        x = xp.empty_like(s)
        x[0] = s[0]
        x[1:] = s[1:] - s[:-1]
        return x

    def solve_t(self, r: Any) -> Any:
        """``A^{-T} r`` in O(n): the suffix sums Q_j = sum_{i>=j} z_i, run backwards.

        Equation j minus equation j+1: ``(c_j - b_j) z_j = r_j - r_{j+1} -
        (b_{j+1} - b_j) Q_{j+1}``.
        """
        xp = self.xp
        n = self.n
        dr = xp.empty_like(r)
        dr[-1] = r[-1]
        dr[:-1] = r[:-1] - r[1:]
        alpha = xp.empty_like(self.c)
        alpha[-1] = 0.0
        alpha[:-1] = 1.0 - (self.b[1:] - self.b[:-1]) / self.diag[:-1]
        beta = dr / self.diag
        q_rev = xp.empty(n, dtype=np.float64)
        self.k.linear_recurrence(
            xp.ascontiguousarray(alpha[::-1]), xp.ascontiguousarray(beta[::-1]), q_rev
        )
        q = q_rev[::-1]
        z = xp.empty(n, dtype=np.float64)
        z[-1] = q[-1]
        z[:-1] = q[:-1] - q[1:]
        return z

    def norm1(self) -> float:
        """``||A||_1`` exactly in O(n) (translation-invariant, so shifted by c_1)."""
        xp = self.xp
        cc = self.c - self.c[0]
        bb = self.b - self.c[0]
        suffix = xp.cumsum(cc[::-1])[::-1]
        count = xp.arange(self.n, 0, -1, dtype=np.float64)
        return float((suffix - count * bb).max())

    def condition(self) -> float:
        """1-norm condition estimate: ``||A||_1`` times Hager-Higham's ``||A^{-1}||_1``."""
        inv = onenorm_inverse_estimate(self.solve, self.solve_t, self.n, xp=self.xp)
        return self.norm1() * inv

    def evaluate(self, t: Any, w: Any) -> Any:
        """``sum_j w_j relu(t - b_j)`` at every t, O((n + m) log n), double-double sums."""
        xp = self.xp
        out = xp.empty(t.shape[0], dtype=np.float64)
        prefix = xp.empty((self.n + 1, 4), dtype=np.float64)
        self.k.relu_sum_eval(xp.ascontiguousarray(t), self.b, xp.ascontiguousarray(w), prefix, out)
        return out


def _direction(X: Any, xp: Any, projection: Any, tries: int, gen: np.random.Generator) -> Any:
    d = X.shape[1]
    if isinstance(projection, str):
        if projection == "random":
            return xp.asarray(gen.standard_normal(d))
        if projection == "best_of":
            cand = xp.asarray(gen.standard_normal((d, tries)))
            # one contiguous row per candidate: sorting rows is ~2x faster than columns
            P = xp.sort(xp.ascontiguousarray((X @ cand).T), axis=1)
            gaps = (P[:, 1:] - P[:, :-1]).min(axis=1) if X.shape[0] > 1 else xp.zeros(tries)
            return xp.ascontiguousarray(cand[:, int(xp.argmax(gaps))])
        raise InputError(
            f"projection: must be 'random', 'best_of' or a direction vector, got {projection!r}"
        )
    a = as_float_array(
        projection,
        "projection",
        ndim=1,
        dtype=np.float64,
        xp=np if array_device(projection) == "cpu" else xp,
    )
    if a.shape[0] != d:
        raise InputError(f"projection: has {a.shape[0]} entries but X has {d} columns")
    return xp.asarray(a)


def _duplicates_message(X: Any, order: Any, bad: Any, xp: Any) -> str:
    pairs = []
    for i in bad[:5].tolist():
        r1, r2 = sorted((int(order[i]), int(order[i + 1])))
        same = bool(xp.all(X[r1] == X[r2]))
        pairs.append(f"rows {r1} and {r2}" + (" (identical points)" if same else ""))
    more = f" and {len(bad) - 5} more pair(s)" if len(bad) > 5 else ""
    return (
        "X: points project to equal values, so no two-layer construction on this line "
        f"can separate them: {', '.join(pairs)}{more}; remove duplicate points "
        "(or use another projection / rng)"
    )


def _line(X: Any, be: Any, a: Any, theta: float) -> tuple[_Line, Any, Any, float]:
    """Project, sort, check for duplicates, interleave the biases.

    ``b_i = c_(i-1) + theta (c_(i) - c_(i-1))`` for i >= 2 and
    ``b_1 = c_(1) - (c_(n) - c_(1))`` (the data's extent below the first point, so
    the first slope ``y_1 / (c_1 - b_1)`` is of the labels' natural scale).
    """
    xp = be.xp
    t = X @ a
    order = xp.argsort(t, kind="stable") if xp is np else xp.argsort(t)
    c = xp.ascontiguousarray(t[order])
    n = c.shape[0]
    gaps = c[1:] - c[:-1]
    if n > 1:
        bad = xp.flatnonzero(gaps <= 0)
        if bad.size:
            raise InputError(
                _duplicates_message(X, to_device(order, "cpu"), to_device(bad, "cpu"), xp)
            )
        min_gap = float(gaps.min())
    else:
        min_gap = math.inf
    b = xp.empty_like(c)
    if n > 1:
        b[0] = c[0] - (c[-1] - c[0])
        b[1:] = c[:-1] + theta * gaps
    else:
        b[0] = c[0] - 1.0
    # Interior points of gaps of one or two ulps can round onto an endpoint:
    # the triangular system is then singular in float64.
    inside = (b < c).all() and (n == 1 or bool((b[1:] > c[:-1]).all()))
    if not inside:
        raise ConditioningError(
            "X: two projections are adjacent floating-point numbers; no bias fits between "
            "them (the triangular system is singular in float64)",
            condition=math.inf,
        )
    line = _Line(c=c, b=b, diag=c - b, xp=xp, k=be.kernels)
    return line, t, order, min_gap


def _float64_error(X: Any, a: Any, order: Any, line: _Line, w: Any) -> Any:
    """Per-point estimate of the error of evaluating the network in float64.

    ``residual`` is measured with the output layer summed exactly; a float64
    forward pass adds (i) the rounding of the output sum, whose statistical
    size is ``sqrt(n) u sum_j |w_j| relu(t - b_j)`` (Higham & Mary 2019), and
    (ii) a projection that may round differently (another BLAS kernel), of
    statistical size ``sqrt(d) u ||a|| ||x||``, times the slope bound
    ``sum_{b_j < t} |w_j|``. ``u`` is the unit roundoff 2**-53. These are
    estimates, not worst-case bounds (those are ~sqrt(n) times larger and
    would reject networks that evaluate correctly).
    """
    xp = line.xp
    n, d = X.shape
    aw = xp.abs(w)
    h = line.evaluate(line.c, aw)
    g = xp.cumsum(aw)  # at the sorted point c_(i) exactly the neurons j <= i are active
    # |a|.|x| <= ||a|| ||x|| (Cauchy-Schwarz) without a temporary copy of |X|
    proj = (xp.sqrt(xp.einsum("ij,ij->i", X, X)) * float(xp.linalg.norm(a)))[order]
    return (_EPS / 2) * (math.sqrt(n) * xp.abs(h) + math.sqrt(d) * g * proj)


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


def _zhang(
    X: Any,
    y: Any,
    projection: Any,
    tries: int,
    rng: Any,
    backend: str | None,
    bias_position: float,
) -> tuple[Any, Any, _Line, Any, Any, Any, float, np.random.Generator]:
    X, be = _setup(X, backend)
    xp = be.xp
    n, _ = X.shape
    y = _targets(y, n, xp)
    tries = _positive_int(tries, "tries")
    gen = _rng(rng)
    a = _direction(X, xp, projection, tries, gen)
    if not isinstance(bias_position, numbers.Real) or not 0 < bias_position < 1:
        raise InputError(f"bias_position: must be in (0, 1), got {bias_position!r}")
    line, t, order, min_gap = _line(X, be, a, float(bias_position))
    w = line.solve(xp.ascontiguousarray(y[order]))
    return X, be, line, t, y, (a, w, order), min_gap, gen


def two_layer(
    X: Any,
    y: Any,
    *,
    projection: Any = "best_of",
    tries: int = 8,
    rng: Any = None,
    bias_position: float = 0.25,
    tol: float = 1e-8,
    on_ill: str = "raise",
    backend: str | None = None,
) -> Construction:
    """Zhang et al.'s two-layer ReLU network fitting any real labels (Theorem 1).

    The paper: project the points on a direction ``a`` (``c_i = <a, x_i>``,
    distinct with probability 1 for a Gaussian ``a``), sort them, interleave
    biases ``b_1 < c_(1) < b_2 < c_(2) < ... < b_n < c_(n)``, and
    take ``f(x) = sum_j w_j relu(<a, x> - b_j)``. Then
    ``A w = y`` with ``A[i, j] = relu(c_(i) - b_j)`` lower triangular with a
    positive diagonal, hence invertible: 2n + d weights memorize n points.

    Any interleaving is valid; this one puts ``b_i`` a fraction
    ``bias_position`` (default 1/4) into the gap above ``c_(i-1)`` and
    ``b_1 = c_(1) - (c_(n) - c_(1))``. Why not the midpoint: the partial sums
    ``S_i = w_1 + ... + w_i`` (the slopes of the interpolant) obey
    ``S_i = -theta/(1-theta) S_(i-1) + (y_i - y_(i-1)) / ((1-theta)(c_i - c_(i-1)))``;
    at the midpoint (theta = 1/2) the factor is -1, so every perturbation
    (and a steep first slope) persists along the whole line, while theta = 1/4
    damps it by 1/3 per step: on random data the weights are ~10x smaller and
    the condition number ~100x smaller.

    Here the system is solved in O(n) time and memory as a first-order
    linear recurrence (a kernel; the n x n matrix is never formed), the
    network is verified on every training point in O(n log n) (prefix sums of
    ``w`` and ``b w`` in double-double arithmetic plus a binary search: the
    output layer is evaluated exactly, the projection in float64), and the
    1-norm condition number of ``A`` is estimated in O(n) by Hager-Higham
    with structured solves with ``A`` and ``A^T``.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,)
        Real labels.
    projection : {"best_of", "random"} or array_like (d,)
        ``"random"``: one Gaussian direction (the paper). ``"best_of"``: the
        best of ``tries`` Gaussian directions by the minimum gap between
        sorted projections (better conditioned). Or a given direction.
    tries : int
    rng : numpy.random.Generator or int, optional
    bias_position : float in (0, 1)
        Where each bias sits in the gap below its point (see above).
    tol : float
        The network must reproduce the labels to ``tol * max|y|``: the
        residual measured with an exactly summed output layer plus an
        estimate of the float64 evaluation error (``details
        ["float64_error_estimate"]``; statistical sizes ``sqrt(n) u`` of the
        output sum and ``sqrt(d) u`` of the projection, Higham & Mary 2019)
        must stay below it.
    on_ill : {"raise", "warn"}
        When the residual exceeds the tolerance: raise
        :class:`~fastmem.ConditioningError` (carrying the condition estimate and
        the residual) or warn and return the network anyway.
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    Construction
        ``details``: ``direction`` (the ``a`` used), ``order`` (training rows
        in hidden-neuron order).

    Raises
    ------
    InputError
        Bad shapes, NaN/Inf, n = 0, labels of the wrong length, or points with
        equal projections (the message names the rows).
    ConditioningError
        The float64 network misses the labels by more than ``tol * max|y|``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(100, 5)), rng.normal(size=100)
    >>> res = memorize.two_layer(X, y, rng=0)
    >>> res.network.widths
    (5, 100, 1)
    >>> bool(np.abs(res.network.forward(X)[:, 0] - y).max() <= 1e-8 * np.abs(y).max())
    True
    """
    _check_on_ill(on_ill)
    X, be, line, _t, y, (a, w, order), min_gap, _ = _zhang(
        X, y, projection, tries, rng, backend, bias_position
    )
    xp = be.xp
    n, d = X.shape
    # Evaluated at the sorted projections (cache-friendly binary searches);
    # per-point arrays below are in sorted order.
    r = xp.abs(line.evaluate(line.c, w) - y[order])
    est = _float64_error(X, a, order, line, w)
    residual = float(r.max())
    scale = float(xp.abs(y).max()) or 1.0
    condition = line.condition()
    worst = int(xp.argmax(r + est))
    ok = _check_residual(
        "two_layer", float(r[worst]), scale, tol, condition, on_ill, float(est[worst])
    )
    W1 = xp.broadcast_to(a, (n, d))
    net = Network.from_arrays([W1, w.reshape(1, n)], [-line.b, xp.zeros(1)], "relu")
    a_host = to_device(a, "cpu")
    norms = _rank_one_norms(a_host, to_device(w, "cpu"), to_device(line.b, "cpu"))
    return Construction(
        method="two_layer",
        network=net,
        residual=residual,
        condition=condition,
        min_gap=min_gap,
        norms=norms,
        backend=be.name,
        interpolates=ok,
        params={
            "projection": projection if isinstance(projection, str) else "given",
            "tries": tries,
            "tol": tol,
            "n": n,
            "d": d,
        },
        details={
            "direction": a_host,
            "order": to_device(order, "cpu"),
            "float64_error_estimate": float(est.max()),
        },
    )


# ------------------------------------------------------------ depth-k version
def deep(
    X: Any,
    y: Any,
    depth: int,
    *,
    projection: Any = "best_of",
    tries: int = 8,
    rng: Any = None,
    bias_position: float = 0.25,
    tol: float = 1e-8,
    on_ill: str = "raise",
    backend: str | None = None,
) -> Construction:
    """Depth-k memorizing ReLU network of width O(n/k) (Zhang et al., depth corollary).

    Zhang et al. note that the two-layer construction extends to depth k with
    width O(n/k). This builds it from the same interpolant
    ``g(t) = sum_j w_j relu(t - b_j)`` (see :func:`two_layer`): the n hidden
    neurons, in sorted-bias order, are split into ``depth`` consecutive blocks,
    one per hidden layer. Every hidden layer but the last also carries
    ``u = relu(<a, x> - b_1)`` (equal to ``t - b_1`` on the data, since
    ``b_1`` is below every projection), from which the next block computes
    ``relu(u + b_1 - b_j) = relu(t - b_j)``; the partial sum ``s`` of the
    blocks already passed is carried by two neurons ``relu(s)`` and
    ``relu(-s)`` (``s = relu(s) - relu(-s)`` exactly, so no large offset is
    needed). Hidden layer l has ``|B_l| + 3`` neurons at most.

    Parameters
    ----------
    X, y, projection, tries, rng, bias_position, tol, on_ill, backend
        As :func:`two_layer`.
    depth : int
        Number of hidden layers k >= 1 (``depth=1`` is :func:`two_layer`'s
        network); at most n.

    Returns
    -------
    Construction
        ``residual`` measured with :meth:`Network.forward` in float64 on all
        points. The layers are stored dense (``(n/k)^2`` entries each, O(n)
        of them non-zero), so memory is O(n^2 / k) and the verification costs
        O(n^3 / k) flops: meant for n up to a few thousand.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(1)
    >>> X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    >>> res = memorize.deep(X, y, 4, rng=0)
    >>> res.network.widths
    (3, 11, 13, 13, 12, 1)
    >>> bool(res.residual <= 1e-8 * np.abs(y).max())
    True
    """
    _check_on_ill(on_ill)
    depth = _positive_int(depth, "depth")
    X, be, line, _t, y, (a, w, _order), min_gap, _ = _zhang(
        X, y, projection, tries, rng, backend, bias_position
    )
    xp = be.xp
    n, d = X.shape
    if depth > n:
        raise InputError(f"depth: must be at most n = {n} (one neuron per layer), got {depth}")
    b = to_device(line.b, "cpu")
    wh = to_device(w, "cpu")
    ah = to_device(a, "cpu")
    bounds = np.linspace(0, n, depth + 1).round().astype(np.int64)
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    prev: dict[str, Any] = {}  # layout of the previous hidden layer
    for layer in range(depth):
        lo, hi = int(bounds[layer]), int(bounds[layer + 1])
        last = layer == depth - 1
        has_carry = not last
        has_acc = layer >= 1
        width = (1 if has_carry else 0) + (hi - lo) + (2 if has_acc else 0)
        if layer == 0:
            W = np.zeros((width, d))
            W[:] = ah
            bias = np.empty(width)
            col = 0
            if has_carry:
                bias[0] = -b[0]
                col = 1
            bias[col : col + hi - lo] = -b[lo:hi]
        else:
            W = np.zeros((width, prev["width"]))
            bias = np.zeros(width)
            row = 0
            if has_carry:
                W[0, prev["carry"]] = 1.0
                row = 1
            W[row : row + hi - lo, prev["carry"]] = 1.0
            bias[row : row + hi - lo] = b[0] - b[lo:hi]
            row += hi - lo
            # accumulator pair: s = s_prev + sum_{previous block} w_j h_j
            contrib = np.zeros(prev["width"])
            contrib[prev["block"]] = wh[prev["lo"] : prev["hi"]]
            if prev["acc"] is not None:
                contrib[prev["acc"]] = 1.0
                contrib[prev["acc"] + 1] = -1.0
            W[row] = contrib
            W[row + 1] = -contrib
        weights.append(W)
        biases.append(bias)
        first = 1 if has_carry else 0
        prev = {
            "width": width,
            "carry": 0 if has_carry else None,
            "block": slice(first, first + hi - lo),
            "lo": lo,
            "hi": hi,
            "acc": first + hi - lo if has_acc else None,
        }
    out = np.zeros((1, prev["width"]))
    out[0, prev["block"]] = wh[prev["lo"] : prev["hi"]]
    if prev["acc"] is not None:
        out[0, prev["acc"]] = 1.0
        out[0, prev["acc"] + 1] = -1.0
    weights.append(out)
    biases.append(np.zeros(1))
    dev = be.device
    net = Network.from_arrays(
        [to_device(W, dev) for W in weights], [to_device(v, dev) for v in biases], "relu"
    )
    fx = net.forward(X, backend=be.name)[:, 0]
    residual = float(xp.abs(fx - y).max())
    scale = float(xp.abs(y).max()) or 1.0
    condition = line.condition()
    ok = _check_residual("deep", residual, scale, tol, condition, on_ill)
    return Construction(
        method="deep",
        network=net,
        residual=residual,
        condition=condition,
        min_gap=min_gap,
        norms=weight_norms(net),
        backend=be.name,
        interpolates=ok,
        params={
            "depth": depth,
            "projection": projection if isinstance(projection, str) else "given",
            "tries": tries,
            "tol": tol,
            "n": n,
            "d": d,
        },
        details={"direction": ah, "blocks": bounds},
    )


# --------------------------------------------------------------- min-norm
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
    from scipy.linalg import lapack, lstsq

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
    K = X @ X.T
    if ridge:
        K[np.diag_indices(n)] += ridge
    anorm = float(np.abs(K).sum(axis=0).max())
    c, info = lapack.dpotrf(K, lower=1, clean=1)
    rcond = 0.0
    if info == 0:
        rcond = float(lapack.dpocon(c, anorm, uplo="L")[0])
    if info == 0 and rcond >= rcond_min:
        alpha, _ = lapack.dpotrs(c, np.asfortranarray(y2), lower=1)
        W = (X.T @ alpha).T
        solver, rank = "cholesky", n
    else:
        # (K + ridge I) is positive definite for ridge > 0, so this branch means
        # the ridge is below rounding: the unregularised problem is solved.
        sol, _, rank, _ = lstsq(X, y2, cond=rcond_min, lapack_driver="gelsy")
        W = sol.T
        solver = "gelsy"
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
        details={"solver": solver, "rank": int(rank), "norm": float(np.linalg.norm(W))},
    )


def _host(x: Any) -> Any:
    return x.get() if hasattr(x, "__cuda_array_interface__") and hasattr(x, "get") else x


# ------------------------------------------------ Dirksen et al. threshold net
def _unpack_bits(codes: Any, width: int, xp: Any) -> Any:
    """(rows, words) uint64 patterns -> (rows, width) float64 0/1 (bit j of word j//64)."""
    j = xp.arange(width)
    words = codes[:, j // 64]
    return ((words >> (j % 64).astype(np.uint64)) & np.uint64(1)).astype(np.float64)


def _pack_bool(bits: Any, xp: Any) -> Any:
    """(n,) bool -> (ceil(n / 64),) uint64, bit s of word s // 64 (distinct powers: sum = OR)."""
    n = bits.shape[0]
    padded = xp.zeros(-(-n // 64) * 64, dtype=np.uint64)
    padded[:n] = bits.astype(np.uint64)
    powers = xp.left_shift(xp.ones(64, dtype=np.uint64), xp.arange(64, dtype=np.uint64))
    return xp.ascontiguousarray((padded.reshape(-1, 64) * powers).sum(axis=1, dtype=np.uint64))


def _greedy_cover(cover: Any, valid: Any, n_items: int, be: Any) -> list[int]:
    """Greedy set cover: repeatedly take the set covering most uncovered items.

    ``cover`` is (sets, words) bit-packed; ties go to the lowest index. The
    universe is what the valid sets cover together.
    """
    xp = be.xp
    if not bool(valid.any()):
        return []
    # Every valid set covers its own point; a point without a valid set of its
    # own is in the universe when some valid set covers it.
    in_universe = valid.copy()
    orphans = xp.flatnonzero(~valid)
    if orphans.shape[0]:
        cols = cover[xp.flatnonzero(valid)][:, orphans // 64]
        hit = (cols >> (orphans % 64).astype(np.uint64)) & np.uint64(1)
        in_universe[orphans] = hit.any(axis=0)
    uncovered = _pack_bool(in_universe, xp)
    gains = xp.empty(cover.shape[0], dtype=np.int64)
    chosen: list[int] = []
    while True:
        be.kernels.cover_gains(cover, uncovered, gains)
        gains[~valid] = 0
        j = int(xp.argmax(gains))
        if int(gains[j]) == 0:
            return chosen
        chosen.append(j)
        uncovered &= ~cover[j]


def random_threshold(
    X: Any,
    labels: Any,
    *,
    width: int,
    max_bias: float,
    prune: bool = True,
    rng: Any = None,
    backend: str | None = None,
) -> Construction:
    """Dirksen, Finke & Genzel's randomized memorizing threshold network.

    The algorithm (binary case, negative class ``X^-`` = the first label,
    positive class ``X^+`` = the second), with ``sigma(t) = 1[t >= 0]``:

    1. ``phi(x) = sigma(W x + b)``, ``W_i ~ N(0, I_d)``,
       ``b_i ~ U[-max_bias, max_bias]`` (``width`` neurons).
    2. For every negative point ``x^-``: ``U_x = 1[phi(x^-) = 0]`` and
       ``m_x = min_{x^+} <U_x, phi(x^+)>`` (the number of neurons separating
       ``x^-`` from its closest positive point); second layer
       ``psi(z) = sigma(-U z + m / 2)``. Neuron ``x`` fires on ``x^-`` and on no
       positive point when ``m_x > 0``.
    3. ``F(x) = sign(-<1, psi(phi(x))>)``: realised as the output logit
       ``0.5 - <1, psi>`` (positive class when > 0, as :meth:`Network.predict`).

    Pruning: neuron ``x`` covers the negative points it fires on; a minimum
    set of neurons covering every negative point keeps the network
    memorizing. The greedy set-cover approximation (ln n factor) is used; the
    coverage counts are bit-packed popcount kernels. Negative points with
    ``m_x = 0`` (no neuron separates them from some positive point: the
    random layer failed) get no neuron; the network then interpolates only
    if another neuron happens to cover them. Multi-class labels: one-vs-rest,
    sharing the first layer; output logit ``c`` is ``<1, psi_c> - 0.5``
    for the block of neurons built with class ``c`` as the negative class.

    Parameters
    ----------
    X : array_like (n, d)
        Points; the theory assumes them in the unit ball.
    labels : array_like (n,)
        Class labels (any values; sorted unique values are the classes).
    width : int
        First-layer width.
    max_bias : float
        Biases are uniform on ``[-max_bias, max_bias]``.
    prune : bool
        Prune the second layer by greedy set cover.
    rng : numpy.random.Generator or int, optional
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    Construction
        ``residual``: the number of misclassified training points
        (``Network.predict`` against the labels); ``interpolates`` when it is
        0. ``details``: ``classes``, ``width_before`` / ``width_after``
        (second-layer widths before and after pruning, summed over classes),
        ``unseparated`` (negative points with ``m_x = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-0.4, 0.15, (100, 2)), rng.normal(0.4, 0.15, (100, 2))])
    >>> labels = np.repeat([0, 1], 100)
    >>> res = memorize.random_threshold(X, labels, width=400, max_bias=1.0, rng=0)
    >>> res.interpolates, res.details["width_after"] <= res.details["width_before"]
    (True, True)
    >>> bool((res.network.predict(X) == labels).all())
    True
    """
    width = _positive_int(width, "width")
    if not isinstance(max_bias, numbers.Real) or not math.isfinite(max_bias) or max_bias < 0:
        raise InputError(f"max_bias: must be a finite number >= 0, got {max_bias!r}")
    X, be = _setup(X, backend)
    xp = be.xp
    n, d = X.shape
    lab = np.asarray(to_device(labels, "cpu") if array_device(labels) == "cuda" else labels)
    if lab.ndim != 1:
        raise InputError(f"labels: expected a 1-D array (n,), got shape {lab.shape}")
    if lab.shape[0] != n:
        raise InputError(f"labels: has {lab.shape[0]} entries but X has {n} rows")
    if lab.dtype.kind == "f" and not np.isfinite(lab).all():
        raise InputError("labels: contains NaN or Inf")
    classes, idx = np.unique(lab, return_inverse=True)
    if classes.shape[0] < 2:
        raise InputError("labels: need at least two classes")
    gen = _rng(rng)
    W1 = gen.standard_normal((width, d))
    b1 = gen.uniform(-max_bias, max_bias, size=width)
    dev = be.device
    layer1 = Network.from_arrays(
        [to_device(W1, dev), xp.zeros((1, width))],
        [to_device(b1, dev), xp.zeros(1)],
        "threshold",
    )
    codes = xp.ascontiguousarray(layer1.activation_patterns(X, backend=be.name))
    idx_d = to_device(idx, dev)
    n_classes = classes.shape[0]
    groups = [0] if n_classes == 2 else list(range(n_classes))
    rows_w2, rows_b2, owner = [], [], []
    before = after = unseparated = 0
    for g in groups:
        neg_rows = xp.flatnonzero(idx_d == g)
        pos_rows = xp.flatnonzero(idx_d != g)
        neg = xp.ascontiguousarray(codes[neg_rows])
        pos = xp.ascontiguousarray(codes[pos_rows])
        m = xp.empty(neg.shape[0], dtype=np.int64)
        be.kernels.cover_margins(neg, pos, m)
        valid = m > 0
        unseparated += int((~valid).sum())
        before += int(neg.shape[0])
        if prune:
            cover = xp.empty((neg.shape[0], (neg.shape[0] + 63) // 64), dtype=np.uint64)
            be.kernels.cover_matrix(neg, m, cover)
            keep = xp.asarray(_greedy_cover(cover, valid, neg.shape[0], be), dtype=np.int64)
        else:
            keep = xp.flatnonzero(valid)
        after += int(keep.shape[0])
        phi = _unpack_bits(neg[keep], width, xp)
        rows_w2.append(-(1.0 - phi))
        rows_b2.append(m[keep].astype(np.float64) / 2.0)
        owner.append(xp.full(keep.shape[0], g, dtype=np.int64))
    W2 = xp.concatenate(rows_w2, axis=0)
    b2 = xp.concatenate(rows_b2)
    own = xp.concatenate(owner)
    if n_classes == 2:
        W3 = -xp.ones((1, W2.shape[0]))
        b3 = xp.full(1, 0.5)
    else:
        W3 = (own[None, :] == xp.arange(n_classes)[:, None]).astype(np.float64)
        b3 = xp.full(n_classes, -0.5)
    if W2.shape[0] == 0:  # nothing separable: keep a valid (silent) layer
        W2 = xp.zeros((1, width))
        b2 = xp.full(1, -1.0)
        W3 = xp.zeros((W3.shape[0], 1))
    net = Network.from_arrays(
        [to_device(W1, dev), W2, W3], [to_device(b1, dev), b2, b3], "threshold"
    )
    pred = to_device(net.predict(X, backend=be.name), "cpu")
    wrong = int((pred != idx).sum())
    return Construction(
        method="random_threshold",
        network=net,
        residual=float(wrong),
        condition=None,
        min_gap=None,
        norms=weight_norms(net),
        backend=be.name,
        interpolates=wrong == 0,
        params={
            "width": width,
            "max_bias": float(max_bias),
            "prune": bool(prune),
            "n": n,
            "d": d,
        },
        details={
            "classes": classes,
            "width_before": before,
            "width_after": after,
            "unseparated": unseparated,
        },
    )


# ------------------------------------------------ Yun et al. hard-tanh 3-layer
def hardtanh_three_layer(
    X: Any,
    y: Any,
    p: int,
    q: int,
    *,
    projection: Any = "best_of",
    tries: int = 8,
    rng: Any = None,
    tol: float = 1e-8,
    on_ill: str = "raise",
) -> Construction:
    """Yun, Sra & Jadbabaie's three-layer hard-tanh network memorizing n <= p*q points.

    ``f(x) = W3 htanh(W2 htanh(W1 x + b1) + b2) + b3`` with ``htanh(z) =
    clip(z, -1, 1)``, first hidden width ``p``, second hidden width ``q``
    (``q + 1`` when ``q`` is even, see below). The proof's construction:

    1. Project on ``u`` and sort, ``c_1 < ... < c_n``; split the sorted points
       into ``p`` consecutive groups of at most ``q``. First-layer neuron ``g``
       maps the midpoints ``L_g``/``U_g`` below/above group ``g`` to -1/+1:
       ``W1_g = 2 u / (U_g - L_g)``, ``b1_g = -(U_g + L_g) / (U_g - L_g)`` (the
       paper's ``4 u / (c_{jq} + c_{jq+1} - c_{jq-q} - c_{jq-q+1})``). A point
       of group g sees ``(+1, ..., +1, s, -1, ..., -1)`` with ``s`` in (-1, 1) at
       position g.
    2. Second-layer neuron k is responsible for one point (slot) of every
       group. Its weights ``v`` and bias ``e`` satisfy, for every group g,
       ``sum_{l<g} v_l + s_(k,g) v_g - sum_{l>g} v_l + e = t_(k,g)`` (the
       matrix ``M`` of the proof: p equations, p + 1 unknowns), so it outputs
       ``t_(k,g)`` on its own points. ``M`` has a null vector ``nu`` whose
       entries alternate in sign; ``[v; e] = mu + alpha nu`` with ``mu`` a
       particular solution. **alpha**: the smallest value making every
       ``|v_g| >= 2 / ds_g`` with the sign of ``nu_g``, ``ds_g`` the smallest
       gap between the ``s`` slots of group g. Since ``|t| <= 1/2``, neuron k
       is then saturated, at exactly -1 or +1 (``|z| >= 3/2``), on every other
       point of every group: below its own slot on one side, above on the other.
    3. Output weights ``omega_k = omega (-1)^slot`` alternate along the slots
       (even groups use the slots in reverse order, which keeps the
       alternation and keeps ``nu`` of order 1). For an odd number of slots
       the saturated neurons then cancel exactly: ``f(x_i) = omega_k t_(k,g)``
       for the responsible neuron k. With ``t = y / omega_k`` and ``omega`` the
       power of two at least ``2 max|y|`` the output is exact up to the
       rounding of one neuron's pre-activation. With ``q`` even one slot per
       group is left empty: the extra "denoising" neuron of the proof (width
       ``q + 1``). Groups with fewer points get empty slots (target 0), placed
       evenly in the widest gap between the group's ``s`` values and +-1.

    Each ``(p + 1) x (p + 1)`` system (``M`` plus ``v_1 = 0`` for ``mu``,
    ``v_1 = 1`` for ``nu``) is solved by LU; ``condition`` is the largest
    1-norm condition estimate (LAPACK ``xGECON``) over the neurons.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,)
    p, q : int
        Hidden widths; ``p <= n <= p * q``.
    projection, tries, rng, tol, on_ill
        As :func:`two_layer`.

    Returns
    -------
    Construction
        ``details``: ``alpha`` (per second-layer neuron), ``omega``,
        ``direction``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(35, 4)), rng.normal(size=35)
    >>> res = memorize.hardtanh_three_layer(X, y, 5, 7, rng=0)
    >>> res.network.widths, res.network.activation
    ((4, 5, 7, 1), ('hardtanh', 'hardtanh'))
    >>> bool(np.abs(res.network.forward(X)[:, 0] - y).max() <= 1e-8 * np.abs(y).max())
    True
    """
    from .linalg import solve as dense_solve

    _check_on_ill(on_ill)
    p = _positive_int(p, "p")
    q = _positive_int(q, "q")
    X = as_float_array(_host(X), "X", ndim=2, dtype=np.float64)
    n, d = X.shape
    y = _targets(_host(y), n, np)
    if n > p * q:
        raise InputError(f"p, q: p * q = {p * q} is less than the number of points n = {n}")
    if p > n:
        raise InputError(f"p: must be at most n = {n} (one first-layer neuron per group), got {p}")
    tries = _positive_int(tries, "tries")
    gen = _rng(rng)
    be = select_backend("cpu", None)
    a = _direction(X, np, projection, tries, gen)
    line, _t, order, min_gap = _line(X, be, a, 0.5)
    c = np.asarray(line.c)
    delta = min_gap if n > 1 else 1.0
    c_ext = np.concatenate([[c[0] - delta], c, [c[-1] + delta]])
    bounds = np.array([len(g) for g in np.array_split(np.arange(n), p)]).cumsum()
    starts = np.concatenate([[0], bounds[:-1]])
    L = (c_ext[starts] + c_ext[starts + 1]) / 2
    U = (c_ext[bounds] + c_ext[bounds + 1]) / 2
    W1 = (2.0 / (U - L))[:, None] * a[None, :]
    b1 = -(U + L) / (U - L)
    q_eff = q if q % 2 == 1 else q + 1
    ymax = float(np.abs(y).max())
    omega = 2.0 ** math.ceil(math.log2(2 * ymax)) if ymax > 0 else 1.0
    slot_of = np.arange(q_eff)  # neuron k owns slot k (odd groups) or q_eff-1-k (even)
    S = np.empty((p, q_eff))  # slot s-values per group, ascending
    T = np.zeros((p, q_eff))  # target of the neuron owning each slot
    for g in range(p):
        idx = order[starts[g] : bounds[g]]
        s_real = X[idx] @ W1[g] + b1[g]
        m = idx.shape[0]
        v = q_eff - m
        slots_s = s_real
        real = np.ones(q_eff, dtype=bool)
        if v:
            # Empty slots go evenly into the widest of the intervals (-1, s_1),
            # (s_j, s_j+1), (s_m, 1), which keeps the slot spacing (and so alpha) small.
            edges = np.concatenate([[-1.0], s_real, [1.0]])
            j = int(np.argmax(np.diff(edges)))
            fill = edges[j] + (edges[j + 1] - edges[j]) * np.arange(1, v + 1) / (v + 1)
            slots_s = np.concatenate([s_real[:j], fill, s_real[j:]])
            real[j : j + v] = False
        S[g] = slots_s
        sign = (-1.0) ** np.arange(q_eff)  # omega_slot / omega, alternating along slots
        T[g, real] = y[idx] / (omega * sign[real])
    ds = np.diff(S, axis=1).min(axis=1) if q_eff > 1 else np.full(p, 2.0)
    W2 = np.empty((q_eff, p))
    b2 = np.empty(q_eff)
    alphas = np.empty(q_eff)
    condition = 0.0
    for k in range(q_eff):
        slots = np.where(np.arange(p) % 2 == 0, slot_of[k], q_eff - 1 - slot_of[k])
        s = S[np.arange(p), slots]
        t = T[np.arange(p), slots]
        M = np.zeros((p + 1, p + 1))
        M[:p, :p] = np.where(
            np.arange(p)[None, :] < np.arange(p)[:, None],
            1.0,
            np.where(np.arange(p)[None, :] > np.arange(p)[:, None], -1.0, 0.0),
        )
        M[np.arange(p), np.arange(p)] = s
        M[:p, p] = 1.0
        M[p, 0] = 1.0
        rhs = np.zeros((p + 1, 2))
        rhs[:p, 0] = t
        rhs[p, 1] = 1.0
        sol = dense_solve(M, rhs, on_ill=on_ill)
        condition = max(condition, sol.condition)
        mu, nu = sol.x[:, 0], sol.x[:, 1]
        need = (2.0 / ds + np.abs(mu[:p])) / np.abs(nu[:p])
        alpha = float(need.max())
        alphas[k] = alpha
        v = mu + alpha * nu
        W2[k] = v[:p]
        b2[k] = v[p]
    owner_sign = (-1.0) ** slot_of  # neuron k's slot in odd groups is k
    W3 = (omega * owner_sign)[None, :]
    net = Network.from_arrays([W1, W2, W3], [b1, b2, np.zeros(1)], "hardtanh")
    residual = float(np.abs(net.forward(X)[:, 0] - y).max())
    ok = _check_residual("hardtanh_three_layer", residual, ymax or 1.0, tol, condition, on_ill)
    return Construction(
        method="hardtanh_three_layer",
        network=net,
        residual=residual,
        condition=condition,
        min_gap=min_gap,
        norms=weight_norms(net),
        backend="numpy",
        interpolates=ok,
        params={"p": p, "q": q, "tries": tries, "tol": tol, "n": n, "d": d},
        details={"alpha": alphas, "omega": omega, "direction": a, "q_eff": q_eff},
    )

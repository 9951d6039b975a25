"""Zhang, Bengio, Hardt, Recht & Vinyals (ICLR 2017): the two-layer ReLU interpolant and its
depth-k version, solved and verified in O(n) / O(n log n)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import to_device
from .._validate import array_device, as_float_array, check_allocation
from .._validate import as_generator as _rng
from .._validate import positive_int as _positive_int
from ..errors import ConditioningError, InputError
from ..linalg import onenorm_inverse_estimate
from ..network import Network
from ._base import _EPS, Construction, _check_on_ill, _check_tol, _setup, _targets
from ._norms import _rank_one_norms, weight_norms
from ._verify import _check_classes, _check_residual, _margins, _resolve_task


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
            "X, bias_position: two projections are adjacent floating-point numbers, or "
            "bias_position puts a bias on one; no bias fits between them (the triangular "
            "system is singular in float64)",
            condition=math.inf,
        )
    line = _Line(c=c, b=b, diag=c - b, xp=xp, k=be.kernels)
    return line, t, order, min_gap


def _float64_error(X: Any, a: Any, order: Any, line: _Line, w: Any) -> Any:
    """Per-point estimate of the error a float64 forward pass adds to the structured evaluation.

    The structured evaluation sums the output layer exactly; ``Network.forward``
    adds (i) the roundings of ``t - b_j`` and of the output sum, of size ``u h``
    with ``h = sum_j |w_j| relu(t - b_j)``, and (ii) the rounding of the
    projection ``<a, x>``, recomputed by every hidden neuron in its own GEMM
    block (the blocks round differently), of size ``u ||a|| ||x||`` times
    ``g = sum_{b_j < t} |w_j|``. ``u`` = 2**-53. The estimate is
    ``(3/4) u (h + g ||a|| ||x||)``: calibrated on Gaussian data (n = 200 ..
    2e4, d = 8 .. 64, +-1 and Gaussian labels), its maximum over the points is
    1x to 10x the measured maximum of ``|forward - structured|``; it is an
    estimate, not a bound (the worst-case bound is ~sqrt(n) times larger and
    would reject networks that evaluate correctly).
    """
    xp = line.xp
    aw = xp.abs(w)
    h = line.evaluate(line.c, aw)
    g = xp.cumsum(aw)  # at the sorted point c_(i) exactly the neurons j <= i are active
    # |a|.|x| <= ||a|| ||x|| (Cauchy-Schwarz) without a temporary copy of |X|
    proj = (xp.sqrt(xp.einsum("ij,ij->i", X, X)) * float(xp.linalg.norm(a)))[order]
    return (0.75 * _EPS / 2) * (xp.abs(h) + g * proj)


@dataclass(frozen=True)
class _ZhangSetup:
    """What two_layer and deep share: checked data, backend, the sorted line, the weights."""

    X: Any  # (n, d) on the backend's device
    be: Any  # the Backend that runs
    line: _Line  # projections sorted along the direction, biases, the structured solve
    y: Any  # (n,) targets in input order
    a: Any  # (d,) projection direction
    w: Any  # (n,) output weights (sorted order)
    order: Any  # (n,) argsort of the projections
    min_gap: float  # smallest gap between consecutive sorted projections


def _zhang(
    X: Any,
    y: Any,
    projection: Any,
    tries: int,
    rng: Any,
    backend: str | None,
    bias_position: float,
) -> _ZhangSetup:
    X, be = _setup(X, backend, scale=True)
    xp = be.xp
    n, _ = X.shape
    y = _targets(y, n, xp, scale=True)
    tries = _positive_int(tries, "tries")
    check_allocation(16.0 * tries * (n + X.shape[1]), f"{tries} candidate directions", "tries", xp)
    gen = _rng(rng)
    a = _direction(X, xp, projection, tries, gen)
    if not isinstance(bias_position, numbers.Real) or not 0 < bias_position < 1:
        raise InputError(f"bias_position: must be in (0, 1), got {bias_position!r}")
    line, _t, order, min_gap = _line(X, be, a, float(bias_position))
    w = line.solve(xp.ascontiguousarray(y[order]))
    return _ZhangSetup(X, be, line, y, a, w, order, min_gap)


def two_layer(
    X: Any,
    y: Any,
    *,
    projection: Any = "best_of",
    tries: int = 8,
    rng: Any = None,
    bias_position: float = 0.25,
    tol: float = 1e-6,
    task: str = "auto",
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
        Regression: the measured residual ``max_i |f(x_i) - y_i|`` (output
        layer summed exactly, O(n log n); tested to agree with
        :meth:`Network.forward` for n <= 2e4 up to the float64 evaluation
        error) must be at most ``tol * max|y|`` (default 1e-6). A float64
        forward pass adds up to ``details["float64_error_estimate"]`` on top
        (per point ``(3/4) u (h + g ||a|| ||x||)``, see the source; realistic:
        1x to 10x the measured ``|forward - structured|`` on Gaussian data).
        Unused for ``task="classify"``.
    task : {"auto", "regress", "classify"}
        ``"classify"``: the labels are class values; a point's class is the
        class value nearest to its output (for +-1 labels: the sign), and the
        check is that every point keeps its class with a margin larger than
        its estimated float64 evaluation error (the residual is not compared
        with ``tol``). ``"auto"`` (default): ``"classify"`` exactly when every
        label is -1 or +1, else ``"regress"``; pass ``"classify"`` for
        integer (or any other discrete) class labels.
    on_ill : {"raise", "warn"}
        When the check fails: raise
        :class:`~fastmem.ConditioningError` (carrying the condition estimate and
        the residual) or warn and return the network anyway.
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    Construction
        ``residual``: the measured ``max_i |f(x_i) - y_i|``. ``details``:
        ``direction`` (the ``a`` used), ``order`` (training rows in
        hidden-neuron order), ``task``, ``float64_error_estimate`` (max over
        the points), for classification ``classes`` and ``min_margin``.

    Raises
    ------
    InputError
        Bad shapes, NaN/Inf, n = 0, labels of the wrong length, or points with
        equal projections (the message names the rows).
    ConditioningError
        Regression: residual above ``tol * max|y|``; classification: some
        point's margin is not above its estimated evaluation error. The
        message gives the numbers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(100, 5)), rng.normal(size=100)
    >>> res = memorize.two_layer(X, y, rng=0)
    >>> res.network.widths
    (5, 100, 1)
    >>> bool(np.abs(res.network.forward(X)[:, 0] - y).max() <= 1e-6 * np.abs(y).max())
    True
    >>> labels = np.sign(rng.normal(size=100))  # +-1: task="auto" classifies
    >>> res = memorize.two_layer(X, labels, rng=0)
    >>> res.details["task"], bool((np.sign(res.network.forward(X)[:, 0]) == labels).all())
    ('classify', True)
    """
    _check_on_ill(on_ill)
    tol = _check_tol(tol)
    setup = _zhang(X, y, projection, tries, rng, backend, bias_position)
    X, be, line, y = setup.X, setup.be, setup.line, setup.y
    a, w, order, min_gap = setup.a, setup.w, setup.order, setup.min_gap
    xp = be.xp
    n, d = X.shape
    task, classes = _resolve_task(task, y, xp)
    # Evaluated at the sorted projections (cache-friendly binary searches);
    # per-point arrays below are in sorted order.
    ys = y[order]
    f = line.evaluate(line.c, w)
    r = xp.abs(f - ys)
    est = _float64_error(X, a, order, line, w)
    residual = float(r.max())
    condition = line.condition()
    extra: dict[str, Any] = {"task": task, "float64_error_estimate": float(est.max())}
    if task == "classify":
        margins = _margins(f, ys, classes, xp)
        ok = _check_classes("two_layer", margins, est, condition, residual, on_ill)
        extra |= {"classes": classes, "min_margin": float(margins.min())}
    else:
        scale = float(xp.abs(y).max()) or 1.0
        ok = _check_residual("two_layer", residual, scale, tol, condition, on_ill)
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
            "task": task,
            "n": n,
            "d": d,
        },
        details={"direction": a_host, "order": to_device(order, "cpu")} | extra,
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
    tol: float = 1e-6,
    task: str = "auto",
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
    X, y, projection, tries, rng, bias_position, tol, task, on_ill, backend
        As :func:`two_layer`; the check is the same, with the residual (and
        for classification the margins) measured by :meth:`Network.forward`
        and the evaluation-error estimate of the two-layer interpolant.
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
    >>> bool(res.residual <= 1e-6 * np.abs(y).max())
    True
    """
    _check_on_ill(on_ill)
    tol = _check_tol(tol)
    depth = _positive_int(depth, "depth")
    setup = _zhang(X, y, projection, tries, rng, backend, bias_position)
    X, be, line, y = setup.X, setup.be, setup.line, setup.y
    a, w, order, min_gap = setup.a, setup.w, setup.order, setup.min_gap
    xp = be.xp
    n, d = X.shape
    task, classes = _resolve_task(task, y, xp)
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
    condition = line.condition()
    est = _float64_error(X, a, order, line, w)
    extra: dict[str, Any] = {"task": task, "float64_error_estimate": float(est.max())}
    if task == "classify":
        margins = _margins(fx[order], y[order], classes, xp)
        ok = _check_classes("deep", margins, est, condition, residual, on_ill)
        extra |= {"classes": classes, "min_margin": float(margins.min())}
    else:
        scale = float(xp.abs(y).max()) or 1.0
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
            "task": task,
            "n": n,
            "d": d,
        },
        details={"direction": ah, "blocks": bounds} | extra,
    )

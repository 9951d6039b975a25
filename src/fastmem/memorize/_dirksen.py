"""Dirksen, Finke & Genzel: a random threshold layer and a second layer built from the negative
class, as in the authors' code (github.com/patrickfinke/memo, algorithm.py; re-implemented, not
copied), plus the interpolation-probability grid of their experiments."""

from __future__ import annotations

import itertools
import math
import numbers
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import to_device
from .._json import jsonable
from .._threads import cpu_threads, kernels_own_the_cores
from .._validate import array_device, check_allocation
from .._validate import as_generator as _rng
from .._validate import positive_int as _positive_int
from ..errors import InputError
from ..network import Network
from ._base import Construction, _setup
from ._norms import weight_norms


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


_RULES = ("code", "half")
_PRUNES = ("random", "set_cover", "none")

_RULE_CODES = {"code": 0, "half": 1}  # the kernels' rule argument


def _random_cover(
    neg: Any, pos: Any, rule: str, gen: np.random.Generator, be: Any
) -> tuple[list[int], list[int], int, int]:
    """The authors' randomized second layer (their Algorithm 2, lines 2-11).

    Draw an uncovered negative point uniformly at random, build its neuron
    (``U = 1[phi(x^-) = 0]``, ``m = min_{x^+} <U, phi(x^+)>``), and if ``m > 0``
    drop every negative point it covers; a draw with ``m = 0`` only leaves the
    candidate list. Stops when no candidate is left or every point is covered.
    Each draw is one fused kernel call (``cover_step``: the margin, then the
    covered-set update over the still-uncovered points): O(k N n / 64) for k
    draws. The uncovered points stay sorted, so ``gen.choice`` sees the same
    candidate array as the authors' ``flatnonzero`` and draws the same points.
    Returns (chosen rows, their m, draws, points left uncovered).
    """
    xp, k = be.xp, be.kernels
    n_neg = neg.shape[0]
    alive = xp.arange(n_neg, dtype=np.int64)
    counts = xp.empty(n_neg, dtype=np.int64)
    state = xp.asarray(np.array([n_neg, 0], dtype=np.int64))
    on_host = be.device == "cpu"
    stuck = np.empty(0, dtype=np.int64)  # tried with m = 0, still uncovered: not candidates
    chosen: list[int] = []
    ms: list[int] = []
    tried = 0
    n_alive = n_neg
    code = _RULE_CODES[rule]
    while n_alive:
        live = alive[:n_alive] if on_host else to_device(alive[:n_alive], "cpu")
        cand = live if stuck.shape[0] == 0 else live[~np.isin(live, stuck)]
        if cand.shape[0] == 0:
            break
        i = int(gen.choice(cand))
        tried += 1
        k.cover_step(neg, pos, i, code, alive, counts, state)
        st = state if on_host else to_device(state, "cpu")
        n_alive, m = int(st[0]), int(st[1])
        if m > 0:
            chosen.append(i)
            ms.append(m)
            if stuck.shape[0]:
                live = alive[:n_alive] if on_host else to_device(alive[:n_alive], "cpu")
                stuck = stuck[np.isin(stuck, live)]
        else:
            stuck = np.append(stuck, i)
    return chosen, ms, tried, n_alive


def random_threshold(
    X: Any,
    labels: Any,
    *,
    width: int,
    max_bias: float,
    rule: str = "code",
    prune: Any = "random",
    rng: Any = None,
    backend: str | None = None,
) -> Construction:
    """Dirksen, Finke & Genzel's randomized memorizing threshold network.

    Two sources, two firing rules. With ``phi(x) = 1[W x + b >= 0]``,
    ``W_i ~ N(0, I_d)``, ``b_i ~ U[-max_bias, max_bias]`` (``width`` neurons),
    a second-layer neuron built from a negative point ``x^-`` has
    ``U = 1[phi(x^-) = 0]`` and ``m = min_{x^+} <U, phi(x^+)>`` (the number of
    first-layer neurons separating ``x^-`` from its closest positive point);
    it never fires on a positive point and fires on ``x^-`` when ``m > 0``.

    * ``rule="code"`` (default): it fires when ``<U, phi(x)> < m``, as in the
      authors' code (github.com/patrickfinke/memo, ``algorithm.py``,
      ``SecondLayer``: ``heaviside(m - <U, z>)``); here the bias ``m - 1/2``
      with ``1[t >= 0]``.
    * ``rule="half"``: it fires when ``<U, phi(x)> <= m / 2``, the margin
      rule of the paper's slides (the version fastmem used before); each
      neuron covers fewer points.

    Second layer (``prune``):

    * ``"random"`` (default, the authors' algorithm): draw an uncovered
      negative point at random, build its neuron, drop every negative point
      it covers, repeat until all are covered (or no candidate is left).
      One fused kernel call per draw (``cover_step``: the margin by popcounts
      over the bit-packed positive codes, then count, decide and compact the
      still-uncovered negative points in one pass): O(k N n / 64) for k
      draws (final width ~5 on two moons).
    * ``"set_cover"``: build a neuron for every negative point and keep a
      greedy minimum set cover (ln N approximation): O(N_neg^2 n / 64) time
      and O(N_neg^2 / 8) bytes, for small problems; its widths are no larger
      than the randomized ones on average.
    * ``"none"``: every negative point with ``m > 0`` keeps its neuron.
      (``True`` / ``False`` are accepted for ``"set_cover"`` / ``"none"``.)

    Output: ``F(x) = sign(-<1, psi(phi(x))>)``, realised as the logit
    ``0.5 - <1, psi>`` (positive class when > 0, as :meth:`Network.predict`).
    The negative class is the first label (sorted), the positive the second.
    Multi-class labels: one-vs-rest sharing the first layer; output logit
    ``c`` is ``<1, psi_c> - 0.5`` for the block of neurons built with class
    ``c`` as the negative class. The network is verified on every training
    point: its second and third layers evaluated exactly on the first-layer
    codes by popcounts (kernel ``threshold_votes``, O(k N n / 64) for k <= 256
    second-layer neurons), else by :meth:`Network.predict`. The first layer is
    a GEMM through the array module, packed to n / 64 words per point by the
    kernel ``threshold_pack``.

    Parameters
    ----------
    X : array_like (N, d)
        Points; the theory assumes them in the unit ball.
    labels : array_like (N,)
        Class labels (any values; sorted unique values are the classes).
    width : int
        First-layer width n.
    max_bias : float
        Biases are uniform on ``[-max_bias, max_bias]``.
    rule : {"code", "half"}
    prune : {"random", "set_cover", "none"}
    rng : numpy.random.Generator or int, optional
        Draws, in order: ``W`` (``standard_normal((width, d))``), ``b``
        (``uniform(-max_bias, max_bias, width)``), then one
        ``choice(uncovered candidates)`` per draw of the randomized layer.
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    Construction
        ``residual``: the number of misclassified training points;
        ``interpolates`` when it is 0. ``details``: ``classes``,
        ``width_before`` (candidate neurons: negative points, summed over
        classes), ``width_after`` (second-layer width), ``candidates_tried``
        (draws of the randomized layer; ``width_before`` otherwise),
        ``unseparated`` (tried negative points with ``m = 0``, or for the
        randomized layer the negative points left uncovered).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-0.4, 0.15, (100, 2)), rng.normal(0.4, 0.15, (100, 2))])
    >>> labels = np.repeat([0, 1], 100)
    >>> res = memorize.random_threshold(X, labels, width=400, max_bias=1.0, rng=0)
    >>> res.interpolates, res.details["width_after"] <= res.details["candidates_tried"]
    (True, True)
    >>> bool((res.network.predict(X) == labels).all())
    True
    """
    width = _positive_int(width, "width")
    if not isinstance(max_bias, numbers.Real) or not math.isfinite(max_bias) or max_bias < 0:
        raise InputError(f"max_bias: must be a finite number >= 0, got {max_bias!r}")
    if rule not in _RULES:
        raise InputError(f"rule: must be one of {_RULES}, got {rule!r}")
    if isinstance(prune, bool):
        prune = "set_cover" if prune else "none"
    if prune not in _PRUNES:
        raise InputError(f"prune: must be one of {_PRUNES}, got {prune!r}")
    X, be = _setup(X, backend)
    xp = be.xp
    n, d = X.shape
    idx, classes = _labels(labels, n)
    # the first layer (W, b, W^T, a GEMM block) and its bit-packed codes (with the
    # classes' copies); set_cover's matrix of the largest negative class
    words = -(-width // 64)
    largest = int(np.bincount(idx).max()) if prune == "set_cover" else 0
    check_allocation(
        width * (16 * d + 136) + 16 * n * words + largest * largest / 8,
        f"a first layer of {width} threshold neurons on {n} points",
        "width",
        xp,
    )
    gen = _rng(rng)
    W1 = gen.standard_normal((width, d))
    if 2.0 * float(max_bias) <= np.finfo(np.float64).max:
        b1 = gen.uniform(-max_bias, max_bias, size=width)
    else:  # the width of [-max_bias, max_bias] overflows: scale a draw on [-1, 1]
        b1 = float(max_bias) * gen.uniform(-1.0, 1.0, size=width)
    dev = be.device
    codes = _threshold_codes(X, to_device(W1, dev), to_device(b1, dev), be)
    idx_d = to_device(idx, dev)
    n_classes = classes.shape[0]
    groups = [0] if n_classes == 2 else list(range(n_classes))
    rows_w2, rows_b2, owner = [], [], []
    before = after = unseparated = tried = 0
    for g in groups:
        neg = xp.ascontiguousarray(codes[xp.flatnonzero(idx_d == g)])
        pos = xp.ascontiguousarray(codes[xp.flatnonzero(idx_d != g)])
        before += int(neg.shape[0])
        if prune == "random":
            chosen, ms, k, left = _random_cover(neg, pos, rule, gen, be)
            keep = xp.asarray(np.asarray(chosen, dtype=np.int64))
            m_keep = xp.asarray(np.asarray(ms, dtype=np.float64))
            tried += k
            unseparated += left
        else:
            m = xp.empty(neg.shape[0], dtype=np.int64)
            be.kernels.cover_margins(neg, pos, m)
            valid = m > 0
            unseparated += int((~valid).sum())
            tried += int(neg.shape[0])
            if prune == "set_cover":
                cover = xp.empty((neg.shape[0], (neg.shape[0] + 63) // 64), dtype=np.uint64)
                # the kernel covers where 2 cnt <= m'; cnt < m is 2 cnt <= 2 m - 2
                be.kernels.cover_matrix(neg, m if rule == "half" else 2 * m - 2, cover)
                keep = xp.asarray(_greedy_cover(cover, valid, neg.shape[0], be), dtype=np.int64)
            else:
                keep = xp.flatnonzero(valid)
            m_keep = m[keep].astype(np.float64)
        after += int(keep.shape[0])
        # W2 (and its bits, their temporaries, the network's copy): 48 bytes per weight
        check_allocation(
            48 * after * width, f"a second layer of {after} neurons of {width} weights", "width", xp
        )
        phi = _unpack_bits(neg[keep], width, xp)
        rows_w2.append(-(1.0 - phi))
        rows_b2.append(m_keep - 0.5 if rule == "code" else m_keep / 2.0)
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
    if after <= _VERIFY_ON_CODES:
        pred = _predict_on_codes(codes, W2, b2, own, n_classes, be)
    else:
        pred = net.predict(X, backend=be.name)
    wrong = int((to_device(pred, "cpu") != idx).sum())
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
            "rule": rule,
            "prune": prune,
            "n": n,
            "d": d,
        },
        details={
            "classes": classes,
            "width_before": before,
            "width_after": after,
            "candidates_tried": tried,
            "unseparated": unseparated,
        },
    )


_VERIFY_ON_CODES = 256  # second-layer widths verified by popcounts on the first-layer codes


def _threshold_codes(X: Any, W: Any, b: Any, be: Any) -> Any:
    """Bit-packed first layer ``1[X W^T + b >= 0]`` (bit j of word j // 64).

    The pre-activations by GEMM through xp, in row blocks small enough to stay
    in cache (with d = 2 the GEMM is memory-bound); the kernel
    ``threshold_pack`` adds the biases, compares and packs each block in one
    pass (NumPy needed four: add, compare, packbits, copy). On the CPU, large
    problems split the rows over the kernels' threads, each running its own
    GEMM + pack blocks (both release the GIL) with BLAS single-threaded.
    """
    xp = be.xp
    n, width = X.shape[0], W.shape[0]
    out = xp.empty((n, -(-width // 64)), dtype=np.uint64)
    WT = xp.ascontiguousarray(W.T)
    b = xp.ascontiguousarray(b, dtype=np.float64)
    if xp is not np:
        _codes_rows(X, WT, b, out, 0, n, 8192, be)
        return out
    rows = max(16, (1 << 16) // width)  # 512 KiB of pre-activations: L2-resident
    # Small problems (N = 1000, n = 500) stay on this thread and skip the BLAS limit:
    # setting and lifting it costs ~80 us, more than the GEMMs themselves.
    if X.shape[1] > 32 or n * width < (1 << 22):
        _codes_rows(X, WT, b, out, 0, n, rows, be)
        return out
    threads = min(cpu_threads(be), -(-n // rows))
    with kernels_own_the_cores(be):
        if threads < 2:
            _codes_rows(X, WT, b, out, 0, n, rows, be)
            return out
        cuts = [n * t // threads for t in range(threads + 1)]
        pool = _pool(threads)
        jobs = [
            pool.submit(_codes_rows, X, WT, b, out, lo, hi, rows, be)
            for lo, hi in itertools.pairwise(cuts)
        ]
        for job in jobs:
            job.result()
    return out


def _codes_rows(X: Any, WT: Any, b: Any, out: Any, lo: int, hi: int, rows: int, be: Any) -> None:
    """Rows ``lo:hi`` of :func:`_threshold_codes`, in blocks of ``rows``."""
    xp = be.xp
    Z = xp.empty((min(rows, hi - lo), WT.shape[1]))
    for a in range(lo, hi, rows):
        e = min(a + rows, hi)
        z = Z[: e - a]
        xp.matmul(X[a:e], WT, out=z)
        be.kernels.threshold_pack(z, b, out[a:e])


_POOL: Any = None


def _pool(threads: int) -> Any:
    global _POOL
    if _POOL is None or _POOL._max_workers < threads:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fastmem-codes")
    return _POOL


def _predict_on_codes(codes: Any, W2: Any, b2: Any, own: Any, n_classes: int, be: Any) -> Any:
    """The network's class on every point from its first-layer codes, exactly.

    Second-layer neuron q fires when ``-<U_q, z> + b2_q >= 0``; ``<U_q, z>`` is a
    popcount of ``U_q & z`` (U_q re-packed from the stored 0/-1 row); the kernel
    ``threshold_votes`` counts the firing neurons of each class per point.
    """
    xp = be.xp
    U = _pack_rows(W2 < 0, xp)
    owner = own.astype(np.int64) if own.shape[0] else xp.zeros(W2.shape[0], dtype=np.int64)
    votes = xp.empty((codes.shape[0], max(n_classes, 2)), dtype=np.int64)
    be.kernels.threshold_votes(
        codes, U, xp.ascontiguousarray(b2, dtype=np.float64), xp.ascontiguousarray(owner), votes
    )
    if n_classes == 2:  # logit 0.5 - <1, psi>: the negative class (0) when any neuron fires
        return (votes[:, 0] == 0).astype(np.int64)
    return xp.argmax(votes, axis=1)


def _labels(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    lab = np.asarray(to_device(labels, "cpu") if array_device(labels) == "cuda" else labels)
    if lab.ndim != 1:
        raise InputError(f"labels: expected a 1-D array (n,), got shape {lab.shape}")
    if lab.shape[0] != n:
        raise InputError(f"labels: has {lab.shape[0]} entries but X has {n} rows")
    if lab.dtype.kind == "f" and not np.isfinite(lab).all():
        raise InputError("labels: contains NaN or Inf")
    try:
        classes, idx = np.unique(lab, return_inverse=True)
    except TypeError as exc:  # objects that cannot be ordered, e.g. [None, 1]
        raise InputError(f"labels: values cannot be compared as class labels ({exc})") from exc
    if classes.shape[0] < 2:
        raise InputError("labels: need at least two classes")
    return idx, classes


# ------------------------------------------------ interpolation-probability grid
@dataclass(frozen=True)
class InterpolationGrid:
    """Interpolation probability of :func:`random_threshold` over widths x maximal biases.

    Attributes
    ----------
    probability : numpy.ndarray (len(widths), len(max_biases))
        Fraction of the restarts whose randomized construction covers every
        negative point (the network then interpolates: no positive point ever
        fires a neuron).
    widths, max_biases : numpy.ndarray
        The axes (first-layer width n, maximal bias lambda).
    restarts : int
    rule : str
    seconds : float
        Wall-clock time of the whole grid.
    backend : str
    params : dict
        ``n`` (points), ``d``, ``rng`` (the seed if an int was given).
    """

    probability: np.ndarray
    widths: np.ndarray
    max_biases: np.ndarray
    restarts: int
    rule: str
    seconds: float
    backend: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (arrays as nested lists)."""
        return jsonable(
            {
                "probability": self.probability,
                "widths": self.widths,
                "max_biases": self.max_biases,
                "restarts": self.restarts,
                "rule": self.rule,
                "seconds": self.seconds,
                "backend": self.backend,
                "params": self.params,
            }
        )


def _pack_rows(bits: Any, xp: Any) -> Any:
    """(rows, n) bool -> (rows, ceil(n / 64)) uint64, bit j of word j // 64 (fastmem's layout)."""
    rows, n = bits.shape
    words = -(-n // 64)
    padded = xp.zeros((rows, words * 64), dtype=bool)
    padded[:, :n] = bits
    packed = xp.packbits(padded, axis=1, bitorder="little")
    return xp.ascontiguousarray(packed).view(np.uint64).reshape(rows, words)


# A bound on interpolation_grid's work: each restart is a GEMM and a kernel pass.
MAX_RESTARTS = 100_000


def interpolation_grid(
    X: Any,
    labels: Any,
    *,
    widths: Any,
    max_biases: Any,
    restarts: int = 50,
    rule: str = "code",
    rng: Any = None,
    backend: str | None = None,
) -> InterpolationGrid:
    """The interpolation-probability heatmap of Dirksen, Finke & Genzel, in one call.

    For every first-layer width ``n`` in ``widths``, maximal bias ``lambda``
    in ``max_biases`` and restart, runs the randomized construction of
    :func:`random_threshold` (``prune="random"``, binary labels: the first
    class is the negative one) and records whether it covers every negative
    point. The authors' grid (``experiments/moons.json``): N = 1000 two
    moons, ``widths = 10, 20, ..., 500``, ``max_biases = 0, 0.05, ..., 2.5``,
    50 restarts.

    Per restart one Gaussian matrix of the largest width and one set of
    biases ``U[-1, 1]`` are drawn; cell (n, lambda) uses their first ``n``
    rows and the biases scaled by ``lambda``: each cell's draw has the
    distribution of :func:`random_threshold`'s, the first-layer GEMM runs
    once per restart, the threshold codes are packed once per (restart,
    lambda) and each width reads a prefix of the words. Cells of one restart
    are therefore correlated (each cell's probability is still unbiased).
    The random draws of the covering walk one permutation of the negative
    points (equal in distribution to drawing among the remaining candidates);
    all cells of one restart run in one kernel call (``cover_walks``, one
    walk per thread), with no Python loop over points, draws or cells.
    Memory: the codes of every lambda (``len(max_biases) x N x n / 8`` bytes)
    and one permutation per cell (``len(widths) x len(max_biases) x N_neg x 8``
    bytes, 10 MB for the authors' grid).

    Parameters
    ----------
    X : array_like (N, d)
    labels : array_like (N,)
        Exactly two classes.
    widths : sequence of int
    max_biases : sequence of float >= 0
    restarts : int
    rule : {"code", "half"}
        As :func:`random_threshold`.
    rng : numpy.random.Generator or int, optional
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    InterpolationGrid

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-0.4, 0.1, (50, 2)), rng.normal(0.4, 0.1, (50, 2))])
    >>> grid = memorize.interpolation_grid(X, np.repeat([0, 1], 50), widths=[1, 200],
    ...                                    max_biases=[0.0, 1.0], restarts=10, rng=0)
    >>> grid.probability.shape, float(grid.probability[1, 1])
    ((2, 2), 1.0)
    """
    t0 = time.perf_counter()
    if rule not in _RULES:
        raise InputError(f"rule: must be one of {_RULES}, got {rule!r}")
    restarts = _positive_int(restarts, "restarts")
    if restarts > MAX_RESTARTS:
        raise InputError(
            f"restarts: at most MAX_RESTARTS = {MAX_RESTARTS} are supported, got {restarts} "
            "(Dirksen et al. use 50)"
        )
    ws = np.asarray(widths)
    if ws.ndim != 1 or ws.size == 0 or ws.dtype.kind not in "iu" or (ws < 1).any():
        raise InputError(
            f"widths: must be a non-empty 1-D sequence of integers >= 1, got {widths!r}"
        )
    try:
        lams = np.asarray(max_biases, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"max_biases: must be a non-empty 1-D sequence of numbers >= 0, got {max_biases!r}"
        ) from exc
    if lams.ndim != 1 or lams.size == 0 or not np.isfinite(lams).all() or (lams < 0).any():
        raise InputError(
            f"max_biases: must be a non-empty 1-D sequence of numbers >= 0, got {max_biases!r}"
        )
    X, be = _setup(X, backend)
    xp = be.xp
    n, d = X.shape
    idx, classes = _labels(labels, n)
    if classes.shape[0] != 2:
        raise InputError(
            f"labels: interpolation_grid needs exactly two classes, got {classes.shape[0]}"
        )
    gen = _rng(rng)
    # Negative points first: in each set of codes the negative rows come first.
    order = np.concatenate([np.flatnonzero(idx == 0), np.flatnonzero(idx == 1)])
    n_neg = int((idx == 0).sum())
    Xs = xp.ascontiguousarray(X[to_device(order, be.device)])
    n_max = int(ws.max())
    # per restart: W, the GEMM's output P (N x n_max), the codes of every lambda; per
    # cell a permutation (and its identity) and flags over the negative points
    n_cells = lams.size * ws.size
    check_allocation(
        n_max * (8 * d + 8 + 8 * n) + lams.size * n * 8 * -(-n_max // 64)
        + n_cells * n_neg * 25,
        f"the codes of {lams.size} bias scale(s) x {n} points x {n_max} neurons",
        "widths",
        xp,
    )  # fmt: skip
    # All cells of one restart in one kernel call: cell (j, i) walks the codes of lambda j
    # on their first ws[i] bits.
    sets = xp.asarray(np.repeat(np.arange(lams.size, dtype=np.int64), ws.size))
    cells = xp.asarray(np.tile(ws.astype(np.int64), lams.size))
    codes = xp.empty((lams.size, n, -(-n_max // 64)), dtype=np.uint64)
    flags = xp.empty((n_cells, n_neg), dtype=np.uint8)
    left = xp.empty(n_cells, dtype=np.int64)
    identity = np.tile(np.arange(n_neg, dtype=np.int64), (n_cells, 1))
    orders = np.empty_like(identity)
    hits = np.zeros((lams.size, ws.size), dtype=np.int64)
    k, code = be.kernels, _RULE_CODES[rule]
    for _ in range(restarts):
        W = to_device(gen.standard_normal((n_max, d)), be.device)
        b0 = gen.uniform(-1.0, 1.0, size=n_max)
        P = xp.ascontiguousarray(Xs @ W.T)
        for j, lam in enumerate(lams):
            k.threshold_pack(P, to_device(lam * b0, be.device), codes[j])
        # one uniform permutation of the negative points per cell: the draws
        orders[...] = identity
        gen.permuted(orders, axis=1, out=orders)
        k.cover_walks(codes, n_neg, sets, cells, to_device(orders, be.device), code, flags, left)
        hits += (to_device(left, "cpu") == 0).reshape(lams.size, ws.size)
    hits = hits.T
    return InterpolationGrid(
        probability=hits / restarts,
        widths=ws.astype(np.int64),
        max_biases=lams,
        restarts=restarts,
        rule=rule,
        seconds=time.perf_counter() - t0,
        backend=be.name,
        params={"n": n, "d": d, "rng": rng if isinstance(rng, numbers.Integral) else None},
    )

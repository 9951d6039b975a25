"""Dirksen, Finke & Genzel: a random threshold layer and a second layer built from the negative
class."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._backend import to_device
from .._validate import array_device
from ..errors import InputError
from ..network import Network
from ._base import Construction, _positive_int, _rng, _setup
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

"""Theoretical bounds on the number of linear regions (exact Python integers).

``widths`` are the hidden-layer widths ``(n_1, ..., n_L)`` (not the input or output),
``input_dim`` is ``n_0``. All results are Python ints, exact.

Supported sizes: a result of at most ``MAX_BITS`` = 2**21 bits (about 631,000 decimal
digits), computed in an estimated ``MAX_SECONDS`` = 10 seconds of big-integer arithmetic
at most. Both are estimated from the arguments before any work (from ``lgamma`` and a
cost model of CPython's integers); beyond either, :class:`~fastmem.InputError` names the
argument and says how large the result or the work would be. (``zaslavsky(10**8,
10**8) = 2**(10**8)`` has 10**8 bits: refused; ``zaslavsky(10**6, 10**4)`` has 80,779
bits: a fraction of a second.)

Examples
--------
>>> from fastmem import bounds
>>> bounds.zaslavsky(3, 2)        # 3 lines in general position cut the plane into 7 regions
7
>>> bounds.line_upper([2] * 10)   # any line meets at most 3**10 pieces of a 10-layer width-2 net
59049
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ._kinds import bits_per_neuron
from .errors import InputError
from .network import ACTIVATIONS

__all__ = ["MAX_BITS", "MAX_SECONDS", "line_upper", "montufar_lower", "serra_upper", "zaslavsky"]

#: The largest result (in bits) the bounds compute exactly.
MAX_BITS = 2**21
#: The most work (estimated seconds of big-integer arithmetic) the bounds take on.
MAX_SECONDS = 10.0
# The cost model (CPython 3.11 on one core, measured under load): a Python-level step,
# and a linear operation (add, multiply or divide by a machine-size int) per bit.
_STEP_S = 0.5e-6
_LINEAR_S_PER_BIT = 3e-10


def _int(value: Any, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _widths(widths: Any) -> list[int]:
    if isinstance(widths, str) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise InputError(f"widths: must be a non-empty sequence of hidden widths, got {widths!r}")
    ws = list(widths)
    if all(type(w) is int for w in ws) and min(ws) >= 1:  # the common case, at C speed
        return ws
    return [_int(w, f"widths[{i}]", 1) for i, w in enumerate(ws)]


def _log2_binom(n: int, k: int) -> float:
    """``log2 C(n, k)`` from ``lgamma`` (a float estimate; 0 <= k <= n)."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def _log2_binom_sum(n: int, k: int) -> float:
    """An upper bound on ``log2 sum_{i <= k} C(n, i)`` (also at most ``n``)."""
    k = min(k, n)
    return min(float(n), math.log2(k + 1) + _log2_binom(n, min(k, n // 2)))


def _check_size(bits: float, seconds: float, argument: str, what: str) -> None:
    """`InputError` naming ``argument`` when the result or the work is beyond the limits."""
    if bits > MAX_BITS:
        raise InputError(
            f"{argument}: {what} has about {bits:.3g} bits; bounds computes exact results "
            f"of at most MAX_BITS = 2**21 = {MAX_BITS} bits (about 631,000 decimal digits)"
        )
    if seconds > MAX_SECONDS:
        raise InputError(
            f"{argument}: {what} would take about {seconds:.3g} s of big-integer arithmetic "
            f"to compute exactly; bounds takes on at most MAX_SECONDS = {MAX_SECONDS:g} s"
        )


def _binom_prefix_sum(n: int, k: int, argument: str, what: str) -> int:
    """``sum_{i <= k} C(n, i)`` exactly, one term from the last (``C(n, i + 1) = C(n, i)
    (n - i) / (i + 1)``); above ``n / 2`` as ``2**n`` minus the complement's sum."""
    k = min(k, n)
    if k == n:
        _check_size(n + 1, 0.0, argument, what)
        return 1 << n
    m = min(k, n - k - 1)  # the terms summed
    bits = _log2_binom_sum(n, k)
    seconds = (m + 1) * (_STEP_S + 3 * _LINEAR_S_PER_BIT * _log2_binom(n, m))
    _check_size(bits, seconds, argument, what)
    total, term = 0, 1
    for i in range(m + 1):
        total += term
        term = term * (n - i) // (i + 1)
    return total if m == k else (1 << n) - total


def _product(factors: list[int]) -> int:
    """The product of ``factors`` by a balanced tree (subquadratic in the result's size)."""
    while len(factors) > 1:
        pairs = [a * b for a, b in zip(factors[0::2], factors[1::2], strict=False)]
        factors = pairs + ([factors[-1]] if len(factors) % 2 else [])
    return factors[0] if factors else 1


def _power_product(counts: Counter[int]) -> int:
    """``prod f**c`` over ``counts`` (one ``pow`` per distinct factor)."""
    return _product([pow(f, c) for f, c in sorted(counts.items())])


def zaslavsky(width: int, input_dim: int) -> int:
    """Most regions ``width`` hyperplanes cut ``R^input_dim`` into: ``sum_{i<=d} C(n, i)``.

    Zaslavsky (1975); the exact maximum for one hidden layer of ``width`` ReLUs (regions of
    a hyperplane arrangement in general position), as used by Pascanu et al. (2013) and
    Montufar et al. (2014). Sizes: see the module docstring (``InputError`` naming
    ``width`` beyond them).

    Examples
    --------
    >>> from fastmem.bounds import zaslavsky

    >>> zaslavsky(4, 1), zaslavsky(4, 10)
    (5, 16)
    """
    n = _int(width, "width", 0)
    d = _int(input_dim, "input_dim", 1)
    return _binom_prefix_sum(n, d, "width", f"zaslavsky({n}, {d})")


def montufar_lower(widths: Sequence[int], input_dim: int) -> int:
    """Montufar, Pascanu, Cho & Bengio (2014), Theorem 4: regions some ReLU net attains.

    ``(prod_{l<L} floor(n_l / n_0) ** n_0) * sum_{j<=n_0} C(n_L, j)``: a maximal number of
    regions of a deep ReLU network with hidden widths ``n_l >= n_0`` is at least this.
    When some ``n_l < n_0`` (``l < L``) the product vanishes and the bound is the trivial 1.
    Sizes: see the module docstring (``InputError`` naming ``widths`` beyond them).

    Examples
    --------
    >>> from fastmem.bounds import montufar_lower
    >>> montufar_lower([2] * 5, 1)   # 2**4 folds times the 3 pieces of the last layer
    48
    """
    ws = _widths(widths)
    n0 = _int(input_dim, "input_dim", 1)
    folds = Counter(n // n0 for n in ws[:-1])
    if 0 in folds:
        return 1
    what = f"montufar_lower(widths, {n0})"
    bits = n0 * sum(c * math.log2(f) for f, c in folds.items()) + _log2_binom_sum(ws[-1], n0)
    _check_size(bits, 0.0, "widths, input_dim", what)
    last = _binom_prefix_sum(ws[-1], n0, "widths, input_dim", what)
    return _power_product(Counter({f: c * n0 for f, c in folds.items()})) * last


def serra_upper(widths: Sequence[int], input_dim: int) -> int:
    """Serra, Tjandraatmadja & Ramalingam (2018), Theorem 1: most regions of a ReLU net.

    ``sum over (j_1..j_L) in J of prod_l C(n_l, j_l)`` with ``J`` the integer vectors with
    ``0 <= j_l <= min(n_0, n_1 - j_1, ..., n_{l-1} - j_{l-1}, n_l)``. Evaluated exactly by
    dynamic programming over ``min(n_0, n_1 - j_1, ...)`` (at most ``n_0 + 1`` states).
    Its work grows as ``L n_0**2`` big-integer products: sizes, see the module docstring
    (``InputError`` naming ``widths`` beyond them).

    Examples
    --------
    >>> from fastmem.bounds import serra_upper, zaslavsky
    >>> serra_upper([5], 2) == zaslavsky(5, 2)
    True
    >>> serra_upper([2] * 4, 1)      # a line: at most 3**4 pieces
    81
    """
    ws = _widths(widths)
    n0 = _int(input_dim, "input_dim", 1)
    # at most min(n_0, n_1, ..., n_l) + 1 states after layer l, each with at most
    # min(state, n_l) + 1 choices; a product of a count (up to the result's bits) and a
    # binomial (up to n_l bits) costs about bits * n_l / 30**2 digit steps
    bits = seconds = 0.0
    cap = n0
    for n in ws:
        steps = (cap + 1) * (min(cap, n) + 1)
        bits += _log2_binom_sum(n, min(cap, n))
        seconds += steps * (_STEP_S + _LINEAR_S_PER_BIT * bits * max(1.0, n / 30) / 30)
        cap = min(cap, n)
    _check_size(bits, seconds, "widths, input_dim", f"serra_upper(widths, {n0})")
    states = {n0: 1}  # min(n_0, n_1 - j_1, ...) -> number of weighted vectors so far
    for n in ws:
        binom = [math.comb(n, j) for j in range(min(n, n0) + 1)]
        nxt: dict[int, int] = {}
        for d, count in states.items():
            for j in range(min(d, n) + 1):
                key = min(d, n - j)
                nxt[key] = nxt.get(key, 0) + count * binom[j]
        states = nxt
    return sum(states.values())


def line_upper(widths: Sequence[int], activation: str | Sequence[str] = "relu") -> int:
    """Most pieces the restriction of a network to any line (or segment) can have.

    On a piece every neuron is affine in ``t``, so a ReLU-type neuron cuts it at most once
    and a hard-tanh neuron at most twice: ``prod_l (1 + k_l n_l)`` with ``k_l = 2`` for
    hard-tanh and 1 otherwise. After a ``threshold`` layer everything is constant on each
    piece, so later layers add nothing. Telgarsky's sawtooth attains ``2**L`` of the
    ``3**L`` of width-2 ReLU layers. Sizes: see the module docstring (``InputError``
    naming ``widths`` beyond them).

    Parameters
    ----------
    widths : sequence of int
        Hidden widths.
    activation : str or sequence of str
        One name for all hidden layers or one per layer (as :meth:`Network.from_arrays`).

    Examples
    --------
    >>> from fastmem.bounds import line_upper
    >>> line_upper([3, 3], "hardtanh"), line_upper([3, 3], ["threshold", "relu"])
    (49, 4)
    """
    ws = _widths(widths)
    if isinstance(activation, str):
        acts = [activation] * len(ws)
    elif isinstance(activation, Sequence) and len(activation) == len(ws):
        acts = list(activation)
    else:
        raise InputError(f"activation: must be one name or one per hidden layer ({len(ws)})")
    factors: Counter[int] = Counter()
    if isinstance(activation, str) and activation in ACTIVATIONS and activation != "threshold":
        k = bits_per_neuron(ACTIVATIONS[activation])
        factors.update({1 + k * n: c for n, c in Counter(ws).items()})  # at C speed
    else:
        for i, (n, a) in enumerate(zip(ws, acts, strict=True)):
            if a not in ACTIVATIONS:
                raise InputError(f"activation[{i}]: unknown activation {a!r}")
            factors[1 + bits_per_neuron(ACTIVATIONS[a]) * n] += 1
            if a == "threshold":
                break
    bits = sum(c * math.log2(f) for f, c in factors.items())
    _check_size(bits, 0.0, "widths", "line_upper(widths)")
    return _power_product(factors)

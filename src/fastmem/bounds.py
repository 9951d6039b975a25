"""Theoretical bounds on the number of linear regions (exact Python integers).

``widths`` are the hidden-layer widths ``(n_1, ..., n_L)`` (not the input or output),
``input_dim`` is ``n_0``. All results are Python ints, exact however large.

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
from collections.abc import Sequence
from typing import Any

from .errors import InputError
from .network import ACTIVATIONS

__all__ = ["line_upper", "montufar_lower", "serra_upper", "zaslavsky"]


def _int(value: Any, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _widths(widths: Any) -> list[int]:
    if isinstance(widths, str) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise InputError(f"widths: must be a non-empty sequence of hidden widths, got {widths!r}")
    return [_int(w, f"widths[{i}]", 1) for i, w in enumerate(widths)]


def zaslavsky(width: int, input_dim: int) -> int:
    """Most regions ``width`` hyperplanes cut ``R^input_dim`` into: ``sum_{i<=d} C(n, i)``.

    Zaslavsky (1975); the exact maximum for one hidden layer of ``width`` ReLUs (regions of
    a hyperplane arrangement in general position), as used by Pascanu et al. (2013) and
    Montufar et al. (2014).

    Examples
    --------
    >>> from fastmem.bounds import zaslavsky
    >>> zaslavsky(4, 1), zaslavsky(4, 10)
    (5, 16)
    """
    n = _int(width, "width", 0)
    d = _int(input_dim, "input_dim", 1)
    return sum(math.comb(n, i) for i in range(min(n, d) + 1))


def montufar_lower(widths: Sequence[int], input_dim: int) -> int:
    """Montufar, Pascanu, Cho & Bengio (2014), Theorem 4: regions some ReLU net attains.

    ``(prod_{l<L} floor(n_l / n_0) ** n_0) * sum_{j<=n_0} C(n_L, j)``: a maximal number of
    regions of a deep ReLU network with hidden widths ``n_l >= n_0`` is at least this.
    When some ``n_l < n_0`` (``l < L``) the product vanishes and the bound is the trivial 1.

    Examples
    --------
    >>> from fastmem.bounds import montufar_lower
    >>> montufar_lower([2] * 5, 1)   # 2**4 folds times the 3 pieces of the last layer
    48
    """
    ws = _widths(widths)
    n0 = _int(input_dim, "input_dim", 1)
    prod = 1
    for n in ws[:-1]:
        prod *= (n // n0) ** n0
    return max(1, prod * sum(math.comb(ws[-1], j) for j in range(n0 + 1)))


def serra_upper(widths: Sequence[int], input_dim: int) -> int:
    """Serra, Tjandraatmadja & Ramalingam (2018), Theorem 1: most regions of a ReLU net.

    ``sum over (j_1..j_L) in J of prod_l C(n_l, j_l)`` with ``J`` the integer vectors with
    ``0 <= j_l <= min(n_0, n_1 - j_1, ..., n_{l-1} - j_{l-1}, n_l)``. Evaluated exactly by
    dynamic programming over ``min(n_0, n_1 - j_1, ...)`` (at most ``n_0 + 1`` states).

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
    ``3**L`` of width-2 ReLU layers.

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
    total = 1
    for i, (n, a) in enumerate(zip(ws, acts, strict=True)):
        if a not in ACTIVATIONS:
            raise InputError(f"activation[{i}]: unknown activation {a!r}")
        total *= 1 + (2 if a == "hardtanh" else 1) * n
        if a == "threshold":
            break
    return total

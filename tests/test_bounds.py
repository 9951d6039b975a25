"""fastmem.bounds against brute-force enumerations and exact region counts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from segment_reference import random_net, walk

import fastmem
from fastmem import InputError, bounds


def _serra_brute(widths, n0):
    total = 0
    for js in itertools.product(*[range(n + 1) for n in widths]):
        ok, cap = True, n0
        for j, n in zip(js, widths, strict=True):
            if j > min(cap, n):
                ok = False
                break
            cap = min(cap, n - j)
        if ok:
            total += math.prod(math.comb(n, j) for j, n in zip(js, widths, strict=True))
    return total


@given(
    widths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    n0=st.integers(1, 4),
)
def test_serra_upper_matches_enumeration(widths, n0):
    assert bounds.serra_upper(widths, n0) == _serra_brute(widths, n0)
    assert bounds.serra_upper(widths, n0) >= bounds.montufar_lower(widths, n0)


def test_zaslavsky():
    for n in range(8):
        assert bounds.zaslavsky(n, 1) == n + 1
        assert bounds.zaslavsky(n, 2) == 1 + n + n * (n - 1) // 2
        assert bounds.zaslavsky(n, 10) == 2**n
    assert bounds.serra_upper([7], 3) == bounds.zaslavsky(7, 3)


def test_montufar_lower():
    # n0 = 1: each of the first L-1 layers folds the line floor(n) times
    assert bounds.montufar_lower([4, 4, 4], 1) == 4 * 4 * 5
    assert bounds.montufar_lower([4, 4], 2) == 2**2 * (1 + 4 + 6)
    assert bounds.montufar_lower([1, 5], 3) == 1  # trivial when a layer is narrower than n0


def test_big_numbers_are_exact_ints():
    v = bounds.serra_upper([128, 128, 128], 784)
    assert isinstance(v, int) and bounds.montufar_lower([128] * 3, 784) <= v < 2 ** (3 * 128)
    assert bounds.serra_upper([128], 784) == 2**128
    assert bounds.line_upper([128, 128, 128]) == 129**3
    assert isinstance(bounds.montufar_lower([1000] * 5, 10), int)


def test_line_upper_bounds_exact_counts():
    rng = np.random.default_rng(0)
    for act in ("relu", "hardtanh", "leaky_relu"):
        Ws, bs, acts, slopes = random_net(rng, (2, 3, 3, 1), act)
        A, B = rng.normal(scale=5, size=(20, 2)), rng.normal(scale=5, size=(20, 2))
        worst = max(len(walk(Ws, bs, acts, slopes, A[i], B[i])[0]) + 1 for i in range(20))
        assert worst <= bounds.line_upper([3, 3], act)
    for k in range(1, 8):
        assert 2**k <= bounds.line_upper([2] * k)
    assert bounds.line_upper([3, 3], ["threshold", "relu"]) == 4
    assert bounds.line_upper([3, 3], "hardtanh") == 49


def test_bad_inputs():
    with pytest.raises(InputError, match="widths"):
        bounds.serra_upper([], 2)
    with pytest.raises(InputError, match="widths"):
        bounds.line_upper([2, 0])
    with pytest.raises(InputError, match="input_dim"):
        bounds.zaslavsky(3, 0)
    with pytest.raises(InputError, match="activation"):
        bounds.line_upper([2, 2], ["relu"])
    with pytest.raises(InputError, match="activation"):
        bounds.line_upper([2], "tanh")
    assert fastmem.bounds is bounds

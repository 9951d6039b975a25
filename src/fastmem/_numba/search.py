"""Binary search shared by the Numba kernels (cpp/include/fastmem/search.hpp)."""

from __future__ import annotations

import numba as nb


@nb.njit(cache=True, inline="always")
def _lower_bound(a, lo, hi, key):
    """The first index i in [lo, hi) with ``a[i] >= key`` (hi if none), ``a[lo:hi]``
    increasing."""
    while lo < hi:
        m = lo + (hi - lo) // 2
        if a[m] < key:
            lo = m + 1
        else:
            hi = m
    return lo

// Binary search shared by the kernels (host and device).
#pragma once

#include <cstdint>

#include "fastmem/hd.hpp"

namespace fastmem {

// The first index i in [lo, hi) with a[i] >= key (hi if none), a[lo, hi) increasing: the
// number of entries below key, counted from lo.
template <class A, class K>
FASTMEM_HD inline int64_t lower_bound_index(const A* a, int64_t lo, int64_t hi, K key) {
  while (lo < hi) {
    const int64_t m = lo + (hi - lo) / 2;
    if (a[m] < key)
      lo = m + 1;
    else
      hi = m;
  }
  return lo;
}

}  // namespace fastmem

#include "patterns_drivers.hpp"

#include "fastmem/patterns.hpp"
#include "dispatch.hpp"
#include "parallel.hpp"

namespace fastmem::cpu {

namespace {

// One activation kind known at compile time, the value through a local stored
// unconditionally: the switch folds away and the loop vectorises into selects (with the
// kind read per value GCC kept a branch per value, which mispredicts on half of them
// with random signs: ~630 us -> ~40 us for 1000 x 128 float32 relu values, one thread).
// The same operations per value, so the same results (as crit_activate's activate_kind).
template <int Kind, class T>
void activate_kind(T* __restrict z, int64_t n, T slope) {
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
  for (int64_t i = 0; i < n; ++i) {
    const T zi = z[i];
    z[i] = activate(zi, Kind, slope);
  }
}

}  // namespace

template <class T>
void apply_activation(T* z, int64_t rows, int64_t width, int kind, T slope) {
  const int64_t n = rows * width;
  with_kind(kind, [&](auto k) { activate_kind<decltype(k)::value>(z, n, slope); });
}

template <class T>
void pack_and_activate(T* z, int64_t rows, int64_t width, uint64_t* codes, int64_t n_words,
                       int64_t bit_offset, int kind, T slope) {
#pragma omp parallel for schedule(static) if (rows * width >= kSerialBelow)
  for (int64_t i = 0; i < rows; ++i)
    pack_and_activate_row(z + i * width, width, codes + i * n_words, bit_offset, kind, slope);
}

void hash_patterns(const uint64_t* codes, int64_t rows, int64_t n_words, uint64_t* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) out[i] = hash_words(codes + i * n_words, n_words);
}

void snap_thresholds(double* z, int64_t rows, int64_t width, const double* h, int64_t h_stride,
                     int64_t fan_in, const double* w_abs_sum, const double* b_abs, int kind,
                     double gamma) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i)
    snap_row(z + i * width, width, h + i * h_stride, fan_in, w_abs_sum, b_abs, kind, gamma);
}

template void apply_activation<float>(float*, int64_t, int64_t, int, float);
template void apply_activation<double>(double*, int64_t, int64_t, int, double);
template void pack_and_activate<float>(float*, int64_t, int64_t, uint64_t*, int64_t, int64_t,
                                       int, float);
template void pack_and_activate<double>(double*, int64_t, int64_t, uint64_t*, int64_t, int64_t,
                                        int, double);

}  // namespace fastmem::cpu

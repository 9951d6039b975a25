// OpenMP drivers of the pattern kernels: loop over rows, call the shared inline math.
#pragma once

#include <cstdint>

namespace fastmem::cpu {

template <class T>
void apply_activation(T* z, int64_t rows, int64_t width, int kind, T slope);

template <class T>
void pack_and_activate(T* z, int64_t rows, int64_t width, uint64_t* codes, int64_t n_words,
                       int64_t bit_offset, int kind, T slope);

void hash_patterns(const uint64_t* codes, int64_t rows, int64_t n_words, uint64_t* out);

void snap_thresholds(double* z, int64_t rows, int64_t width, const double* h, int64_t h_stride,
                     int64_t fan_in, const double* w_abs_sum, const double* b_abs, int kind,
                     double gamma);

}  // namespace fastmem::cpu

// CUDA drivers of the pattern kernels: grid-stride loops over the same inline math as the CPU path.
// Every function returns a cudaError_t value as int (0 = success) so that this
// header needs no CUDA include and the bindings compile with the host compiler.
#pragma once

#include <cstdint>

namespace fastmem::gpu {

template <class T>
int apply_activation(T* z, int64_t rows, int64_t width, int kind, T slope);

template <class T>
int pack_and_activate(T* z, int64_t rows, int64_t width, uint64_t* codes, int64_t n_words,
                      int64_t bit_offset, int kind, T slope);

int hash_patterns(const uint64_t* codes, int64_t rows, int64_t n_words, uint64_t* out);

int snap_thresholds(double* z, int64_t rows, int64_t width, const double* h, int64_t h_stride,
                    int64_t fan_in, const double* w_abs_sum, const double* b_abs, int kind,
                    double gamma);

}  // namespace fastmem::gpu

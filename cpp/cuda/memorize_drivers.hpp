// CUDA drivers of the memorize kernels (see cpp/include/fastmem/memorize.hpp).
// Every function returns a cudaError_t value as int (0 = success).
#pragma once

#include <cstdint>

namespace fastmem::gpu {

int linear_recurrence(const double* alpha, const double* beta, int64_t n, double* out);

int relu_sum_eval(const double* t, int64_t n_t, const double* b, const double* w, int64_t n,
                  double* prefix, double* out);

int cover_margins(const uint64_t* neg, int64_t n_neg, const uint64_t* pos, int64_t n_pos,
                  int64_t words, int64_t* m);

int cover_matrix(const uint64_t* neg, int64_t n_neg, int64_t words, const int64_t* m,
                 uint64_t* cover, int64_t cover_words);

int cover_gains(const uint64_t* cover, int64_t rows, int64_t words, const uint64_t* uncovered,
                int64_t* gains);

}  // namespace fastmem::gpu

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

int threshold_pack(const double* z, int64_t rows, int64_t width, const double* b,
                   uint64_t* codes, int64_t words);

int cover_step(const uint64_t* neg, const uint64_t* pos, int64_t n_pos, int64_t words,
               int64_t row, int64_t rule, int64_t* alive, int64_t* counts, int64_t* state);

int cover_walks(const uint64_t* codes, int64_t n_rows, int64_t n_neg, int64_t words,
                const int64_t* sets, const int64_t* widths, const int64_t* orders, int64_t cells,
                int64_t rule, uint8_t* flags, int64_t* uncovered);

int threshold_votes(const uint64_t* codes, int64_t rows, int64_t words, const uint64_t* units,
                    const double* bias, const int64_t* owner, int64_t k, int64_t n_classes,
                    int64_t* votes);

}  // namespace fastmem::gpu

#include <cuda_runtime.h>

#include "fastmem/memorize.hpp"
#include "memorize_drivers.hpp"
#include "runtime.hpp"

namespace fastmem::gpu {

namespace {

// The recurrence and the prefix sums are sequential: one thread runs them so
// that the bits equal the CPU's (a parallel scan would reassociate the sums).
__global__ void linear_recurrence_kernel(const double* alpha, const double* beta, int64_t n,
                                         double* out) {
  if (blockIdx.x == 0 && threadIdx.x == 0) linear_recurrence_seq(alpha, beta, n, out);
}

__global__ void relu_sum_prefix_kernel(const double* b, const double* w, int64_t n,
                                       double* prefix) {
  if (blockIdx.x == 0 && threadIdx.x == 0) relu_sum_prefix_seq(b, w, n, prefix);
}

__global__ void relu_sum_at_kernel(const double* t, int64_t n_t, const double* b, int64_t n,
                                   const double* prefix, double* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_t;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = relu_sum_at(t[i], b, n, prefix);
}

__global__ void cover_margins_kernel(const uint64_t* neg, int64_t n_neg, const uint64_t* pos,
                                     int64_t n_pos, int64_t words, int64_t* m) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < n_neg;
       r += int64_t(gridDim.x) * blockDim.x)
    m[r] = cover_margin_row(neg + r * words, pos, n_pos, words);
}

__global__ void cover_matrix_kernel(const uint64_t* neg, int64_t n_neg, int64_t words,
                                    const int64_t* m, uint64_t* cover, int64_t cover_words) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < n_neg;
       r += int64_t(gridDim.x) * blockDim.x)
    cover_row(neg, r, n_neg, words, m[r], cover + r * cover_words);
}

__global__ void cover_gains_kernel(const uint64_t* cover, int64_t rows, int64_t words,
                                   const uint64_t* uncovered, int64_t* gains) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(gridDim.x) * blockDim.x)
    gains[r] = cover_gain_row(cover + r * words, uncovered, words);
}

}  // namespace

int linear_recurrence(const double* alpha, const double* beta, int64_t n, double* out) {
  if (n == 0) return 0;
  linear_recurrence_kernel<<<1, 1>>>(alpha, beta, n, out);
  return finish();
}

int relu_sum_eval(const double* t, int64_t n_t, const double* b, const double* w, int64_t n,
                  double* prefix, double* out) {
  relu_sum_prefix_kernel<<<1, 1>>>(b, w, n, prefix);
  if (n_t > 0) relu_sum_at_kernel<<<blocks_for(n_t), kThreads>>>(t, n_t, b, n, prefix, out);
  return finish();
}

int cover_margins(const uint64_t* neg, int64_t n_neg, const uint64_t* pos, int64_t n_pos,
                  int64_t words, int64_t* m) {
  if (n_neg == 0) return 0;
  cover_margins_kernel<<<blocks_for(n_neg), kThreads>>>(neg, n_neg, pos, n_pos, words, m);
  return finish();
}

int cover_matrix(const uint64_t* neg, int64_t n_neg, int64_t words, const int64_t* m,
                 uint64_t* cover, int64_t cover_words) {
  if (n_neg == 0) return 0;
  cover_matrix_kernel<<<blocks_for(n_neg), kThreads>>>(neg, n_neg, words, m, cover, cover_words);
  return finish();
}

int cover_gains(const uint64_t* cover, int64_t rows, int64_t words, const uint64_t* uncovered,
                int64_t* gains) {
  if (rows == 0) return 0;
  cover_gains_kernel<<<blocks_for(rows), kThreads>>>(cover, rows, words, uncovered, gains);
  return finish();
}

}  // namespace fastmem::gpu

#include <cuda_runtime.h>

#include "fastmem/memorize.hpp"
#include "memorize_drivers.hpp"
#include "runtime.hpp"
#include "stream.cuh"

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

__global__ void threshold_pack_kernel(const double* z, int64_t rows, int64_t width,
                                      const double* b, uint64_t* codes, int64_t words) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < rows * words;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t / words, w = t % words;
    codes[t] = threshold_word(z + r * width, b, width, w);
  }
}

// cover_step in three launches on one stream: the margin by an atomic min into state[1],
// the counts of the alive points (when m > 0), then an order-keeping compaction by one
// thread (sequential like the CPU's; the alive list shrinks fast, ~5 neurons in all).
__global__ void cover_margin_kernel(const uint64_t* neg, const uint64_t* pos, int64_t n_pos,
                                    int64_t words, int64_t row, int64_t* state) {
  const uint64_t* mine = neg + row * words;
  long long best = INT64_MAX;
  for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < n_pos;
       s += int64_t(gridDim.x) * blockDim.x) {
    const long long c = separating_count(mine, pos + s * words, words);
    if (c < best) best = c;
  }
  atomicMin(reinterpret_cast<long long*>(state + 1), best);
}

__global__ void cover_counts_kernel(const uint64_t* neg, int64_t words, int64_t row,
                                    const int64_t* alive, int64_t* counts, const int64_t* state) {
  if (state[1] <= 0) return;
  const uint64_t* mine = neg + row * words;
  const int64_t n = state[0];
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n;
       j += int64_t(gridDim.x) * blockDim.x)
    counts[j] = separating_count(mine, neg + alive[j] * words, words);
}

__global__ void cover_compact_kernel(int64_t rule, int64_t* alive, const int64_t* counts,
                                     int64_t* state) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const int64_t m = state[1];
  if (m <= 0) return;
  const int64_t n = state[0];
  int64_t kept = 0;
  for (int64_t j = 0; j < n; ++j)
    if (!covers(counts[j], m, rule)) alive[kept++] = alive[j];
  state[0] = kept;
}

__global__ void cover_walks_kernel(const uint64_t* codes, int64_t n_rows, int64_t n_neg,
                                   int64_t words, const int64_t* sets, const int64_t* widths,
                                   const int64_t* orders, int64_t cells, int64_t rule,
                                   uint8_t* flags, int64_t* uncovered) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cells;
       c += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t* neg = codes + sets[c] * n_rows * words;
    uncovered[c] = cover_walk(neg, n_neg, neg + n_neg * words, n_rows - n_neg, words, widths[c],
                              orders + c * n_neg, rule, flags + c * n_neg);
  }
}

__global__ void threshold_votes_kernel(const uint64_t* codes, int64_t rows, int64_t words,
                                       const uint64_t* units, const double* bias,
                                       const int64_t* owner, int64_t k, int64_t n_classes,
                                       int64_t* votes) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(gridDim.x) * blockDim.x)
    threshold_votes_row(codes + r * words, units, bias, owner, k, words, n_classes,
                        votes + r * n_classes);
}

__global__ void set_int64_kernel(int64_t* p, int64_t v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = v;
}

}  // namespace

int linear_recurrence(const double* alpha, const double* beta, int64_t n, double* out) {
  if (n == 0) return 0;
  linear_recurrence_kernel<<<1, 1, 0, call_stream()>>>(alpha, beta, n, out);
  return finish();
}

int relu_sum_eval(const double* t, int64_t n_t, const double* b, const double* w, int64_t n,
                  double* prefix, double* out) {
  relu_sum_prefix_kernel<<<1, 1, 0, call_stream()>>>(b, w, n, prefix);
  if (n_t > 0)
    relu_sum_at_kernel<<<blocks_for(n_t), kThreads, 0, call_stream()>>>(t, n_t, b, n, prefix,
                                                                          out);
  return finish();
}

int cover_margins(const uint64_t* neg, int64_t n_neg, const uint64_t* pos, int64_t n_pos,
                  int64_t words, int64_t* m) {
  if (n_neg == 0) return 0;
  cover_margins_kernel<<<blocks_for(n_neg), kThreads, 0, call_stream()>>>(
      neg, n_neg, pos, n_pos, words, m);
  return finish();
}

int cover_matrix(const uint64_t* neg, int64_t n_neg, int64_t words, const int64_t* m,
                 uint64_t* cover, int64_t cover_words) {
  if (n_neg == 0) return 0;
  cover_matrix_kernel<<<blocks_for(n_neg), kThreads, 0, call_stream()>>>(
      neg, n_neg, words, m, cover, cover_words);
  return finish();
}

int cover_gains(const uint64_t* cover, int64_t rows, int64_t words, const uint64_t* uncovered,
                int64_t* gains) {
  if (rows == 0) return 0;
  cover_gains_kernel<<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      cover, rows, words, uncovered, gains);
  return finish();
}

int threshold_pack(const double* z, int64_t rows, int64_t width, const double* b,
                   uint64_t* codes, int64_t words) {
  if (rows * words == 0) return 0;
  threshold_pack_kernel<<<blocks_for(rows * words), kThreads, 0, call_stream()>>>(
      z, rows, width, b, codes, words);
  return finish();
}

int cover_step(const uint64_t* neg, const uint64_t* pos, int64_t n_pos, int64_t words,
               int64_t row, int64_t rule, int64_t* alive, int64_t* counts, int64_t* state) {
  set_int64_kernel<<<1, 1, 0, call_stream()>>>(state + 1, INT64_MAX);
  cover_margin_kernel<<<blocks_for(n_pos), kThreads, 0, call_stream()>>>(
      neg, pos, n_pos, words, row, state);
  // state[0] lives on the device: enough blocks for every row of neg would be the bound;
  // the grid-stride loop covers any n with a fixed grid.
  cover_counts_kernel<<<256, kThreads, 0, call_stream()>>>(neg, words, row, alive, counts, state);
  cover_compact_kernel<<<1, 1, 0, call_stream()>>>(rule, alive, counts, state);
  return finish();
}

int cover_walks(const uint64_t* codes, int64_t n_rows, int64_t n_neg, int64_t words,
                const int64_t* sets, const int64_t* widths, const int64_t* orders, int64_t cells,
                int64_t rule, uint8_t* flags, int64_t* uncovered) {
  if (cells == 0) return 0;
  // One walk per thread: few threads per block so that the cells spread over the SMs.
  const int threads = 32;
  const int64_t blocks = (cells + threads - 1) / threads;
  const int grid = static_cast<int>(blocks < 65535 ? blocks : 65535);
  cover_walks_kernel<<<grid, threads, 0, call_stream()>>>(
      codes, n_rows, n_neg, words, sets, widths, orders, cells, rule, flags, uncovered);
  return finish();
}

int threshold_votes(const uint64_t* codes, int64_t rows, int64_t words, const uint64_t* units,
                    const double* bias, const int64_t* owner, int64_t k, int64_t n_classes,
                    int64_t* votes) {
  if (rows == 0) return 0;
  threshold_votes_kernel<<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      codes, rows, words, units, bias, owner, k, n_classes, votes);
  return finish();
}

}  // namespace fastmem::gpu

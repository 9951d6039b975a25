#include <cuda_runtime.h>

#include "fastmem/information.hpp"
#include "information_drivers.hpp"
#include "runtime.hpp"
#include "stream.cuh"

namespace fastmem::gpu {

namespace {

#define FASTMEM_GRID_LOOP(i, n)                                                        \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void bin_keys_kernel(const T* a, int64_t rows, int64_t width, BinSpec s,
                                int64_t rps, uint64_t* key1, uint64_t* key2, uint8_t* occ,
                                unsigned long long* bad) {
  const int64_t cells = width * s.n_codes;
  FASTMEM_GRID_LOOP(i, rows) {
    const int64_t seg = i / rps;
    const int64_t b = bin_row_keys(a + i * width, width, s, static_cast<uint64_t>(seg),
                                   key1 + i, key2 + i, occ ? occ + seg * cells : nullptr);
    if (b) atomicAdd(bad, static_cast<unsigned long long>(b));
  }
}

template <class T>
__global__ void bin_rows_equal_kernel(const T* a, int64_t width, BinSpec s,
                                      const int64_t* ra, const int64_t* rb, int64_t pairs,
                                      unsigned long long* differ) {
  FASTMEM_GRID_LOOP(p, pairs) {
    if (bin_rows_differ(a + ra[p] * width, a + rb[p] * width, width, s)) atomicAdd(differ, 1ULL);
  }
}

template <class T>
__global__ void bin_codes_kernel(const T* a, int64_t n, BinSpec s, int64_t* out) {
  FASTMEM_GRID_LOOP(i, n) { out[i] = bin_code(a[i], s); }
}

template <class T>
__global__ void bin_plane_kernel(const int64_t* table, int64_t segments, int64_t rows,
                                 BinSpec base, const int64_t* edge_offsets, const double* lo,
                                 const double* scale, const int64_t* y, int64_t n_y,
                                 const int64_t* x, int64_t n_x, const double* clog,
                                 int64_t* work, int64_t max_words, double* out,
                                 unsigned long long* bad) {
  const int64_t per = plane_scratch_words(rows, max_words);
  FASTMEM_GRID_LOOP(g, segments) {
    BinSpec s = base;
    s.edges = base.edges + edge_offsets[g];
    s.lo = lo[g];
    s.scale = scale[g];
    const T* a = reinterpret_cast<const T*>(static_cast<uintptr_t>(table[g]));
    const PlaneScratch w = plane_scratch(work + g * per, rows, max_words);
    const int64_t b =
        plane_segment(a, rows, table[segments + g], s, y, n_y, x, n_x, clog, w, out + 3 * g);
    if (b) atomicAdd(bad, static_cast<unsigned long long>(b));
  }
}

__global__ void kde_rows_kernel(double* tile, int64_t rows, int64_t cols, const double* rn,
                                const double* cn, const int64_t* ry, const int64_t* cy,
                                double scale, int64_t ro, int64_t co, double* ra, double* rc) {
  FASTMEM_GRID_LOOP(i, rows) {
    double all = 0.0, cls = 0.0;
    double* t = tile + i * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const double e = kde_entry(t[j], rn[i], cn[j], scale, ro + i == co + j);
      t[j] = e;
      all += e;
      cls += cy[j] == ry[i] ? e : 0.0;
    }
    ra[i] += all;
    rc[i] += cls;
  }
}

__global__ void kde_cols_kernel(const double* tile, int64_t rows, int64_t cols,
                                const int64_t* ry, const int64_t* cy, double* ca, double* cc) {
  FASTMEM_GRID_LOOP(j, cols) {
    double all = 0.0, cls = 0.0;
    for (int64_t i = 0; i < rows; ++i) {
      const double e = tile[i * cols + j];
      all += e;
      cls += cy[j] == ry[i] ? e : 0.0;
    }
    ca[j] += all;
    cc[j] += cls;
  }
}

__global__ void kde_screen_kernel(const float* tile, int64_t rows, int64_t cols,
                                  const double* rn, const double* cn, const double* rl,
                                  const double* cl, double err, double cutoff, int64_t ro,
                                  int64_t co, unsigned long long* count) {
  FASTMEM_GRID_LOOP(k, rows * cols) {
    const int64_t i = k / cols, j = k - i * cols;
    if (ro + i != co + j && !kde_far(tile[k], rn[i], cn[j], rl[i], cl[j], err, cutoff))
      atomicAdd(count, 1ULL);
  }
}

// One thread per row (rows) or per column (columns); each sums in the C++ order.
__global__ void kde_sparse_kernel(const float* tile, const double* a, const double* b,
                                  int64_t rows, int64_t cols, int64_t d, const double* rn,
                                  const double* cn, const double* rl, const double* cl,
                                  const int64_t* ry, const int64_t* cy, double err,
                                  double cutoff, double scale, int64_t ro, int64_t co,
                                  double* out_all, double* out_cls, bool by_column) {
  FASTMEM_GRID_LOOP(u, by_column ? cols : rows) {
    double all = 0.0, cls = 0.0;
    const int64_t n_other = by_column ? rows : cols;
    for (int64_t v = 0; v < n_other; ++v) {
      const int64_t i = by_column ? v : u, j = by_column ? u : v;
      const bool diagonal = ro + i == co + j;
      if (!diagonal && kde_far(tile[i * cols + j], rn[i], cn[j], rl[i], cl[j], err, cutoff))
        continue;
      const double e = kde_entry(dot_rows(a + i * d, b + j * d, d), rn[i], cn[j], scale, diagonal);
      all += e;
      cls += cy[j] == ry[i] ? e : 0.0;
    }
    out_all[u] += all;
    out_cls[u] += cls;
  }
}

}  // namespace

int kde_sparse_tile(const float* tile, const double* a, const double* b, int64_t rows,
                    int64_t cols, int64_t d, const double* row_norms, const double* col_norms,
                    const double* row_lengths, const double* col_lengths,
                    const int64_t* row_labels, const int64_t* col_labels, double err,
                    double cutoff, double scale, int64_t row_offset, int64_t col_offset,
                    double* row_all, double* row_cls, double* col_all, double* col_cls,
                    bool columns) {
  if (rows == 0 || cols == 0) return 0;
  kde_sparse_kernel<<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      tile, a, b, rows, cols, d, row_norms, col_norms, row_lengths, col_lengths, row_labels,
      col_labels, err, cutoff, scale, row_offset, col_offset, row_all, row_cls, false);
  if (columns)
    kde_sparse_kernel<<<blocks_for(cols), kThreads, 0, call_stream()>>>(
        tile, a, b, rows, cols, d, row_norms, col_norms, row_lengths, col_lengths, row_labels,
        col_labels, err, cutoff, scale, row_offset, col_offset, col_all, col_cls, true);
  return finish();
}

int kde_screen(const float* tile, int64_t rows, int64_t cols, const double* row_norms,
               const double* col_norms, const double* row_lengths, const double* col_lengths,
               double err, double cutoff, int64_t row_offset, int64_t col_offset, int64_t* count) {
  if (const cudaError_t code = cudaMemsetAsync(count, 0, sizeof(int64_t), call_stream()))
    return static_cast<int>(code);
  if (rows == 0 || cols == 0) return finish();
  kde_screen_kernel<<<blocks_for(rows * cols), kThreads, 0, call_stream()>>>(
      tile, rows, cols, row_norms, col_norms, row_lengths, col_lengths, err, cutoff, row_offset,
      col_offset, reinterpret_cast<unsigned long long*>(count));
  return finish();
}

template <class T>
int bin_keys(const T* a, int64_t rows, int64_t width, BinSpec s, int64_t rows_per_segment,
             uint64_t* key1, uint64_t* key2, uint8_t* occ, int64_t* bad) {
  if (const cudaError_t code = cudaMemsetAsync(bad, 0, sizeof(int64_t), call_stream()))
    return static_cast<int>(code);
  if (rows == 0) return finish();
  bin_keys_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      a, rows, width, s, rows_per_segment, key1, key2, occ,
      reinterpret_cast<unsigned long long*>(bad));
  return finish();
}

template <class T>
int bin_rows_equal(const T* a, int64_t width, BinSpec s, const int64_t* rows_a,
                   const int64_t* rows_b, int64_t pairs, int64_t* differ) {
  if (const cudaError_t code = cudaMemsetAsync(differ, 0, sizeof(int64_t), call_stream()))
    return static_cast<int>(code);
  if (pairs == 0) return finish();
  bin_rows_equal_kernel<T><<<blocks_for(pairs), kThreads, 0, call_stream()>>>(
      a, width, s, rows_a, rows_b, pairs, reinterpret_cast<unsigned long long*>(differ));
  return finish();
}

template <class T>
int bin_codes(const T* a, int64_t rows, int64_t width, BinSpec s, int64_t* out) {
  if (rows * width == 0) return 0;
  bin_codes_kernel<T><<<blocks_for(rows * width), kThreads, 0, call_stream()>>>(
      a, rows * width, s, out);
  return finish();
}

template <class T>
int bin_plane(const T* const* seg, const int64_t* widths, int64_t segments, int64_t rows,
              int kind, const double* edges, int64_t n_edges, const int64_t* edge_offsets,
              const double* lo, const double* scale, int64_t n_codes, const int64_t* labels,
              int64_t n_labels, const int64_t* inputs, int64_t n_inputs, const double* clog,
              int64_t* scratch, double* out, int64_t* bad) {
  cudaError_t e = cudaMemsetAsync(bad, 0, sizeof(int64_t));
  if (e != cudaSuccess) return static_cast<int>(e);
  if (segments == 0) return finish();
  const BinSpec base{kind, edges, n_edges, 0.0, 0.0, n_codes};
  int64_t max_words = 1;
  for (int64_t g = 0; g < segments; ++g) {
    const int64_t words = plane_words(base, widths[g]);
    max_words = words > max_words ? words : max_words;
  }
  e = cudaMemcpy(scratch, seg, segments * sizeof(int64_t), cudaMemcpyHostToDevice);
  if (e == cudaSuccess)
    e = cudaMemcpy(scratch + segments, widths, segments * sizeof(int64_t),
                   cudaMemcpyHostToDevice);
  if (e != cudaSuccess) return static_cast<int>(e);
  bin_plane_kernel<T><<<blocks_for(segments), kThreads>>>(
      scratch, segments, rows, base, edge_offsets, lo, scale, labels, n_labels, inputs, n_inputs,
      clog, scratch + 2 * segments, max_words, out, reinterpret_cast<unsigned long long*>(bad));
  return finish();
}

int kde_tile(double* tile, int64_t rows, int64_t cols, const double* row_norms,
             const double* col_norms, const int64_t* row_labels, const int64_t* col_labels,
             double scale, int64_t row_offset, int64_t col_offset, double* row_all,
             double* row_cls, double* col_all, double* col_cls, bool columns) {
  if (rows == 0 || cols == 0) return 0;
  kde_rows_kernel<<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      tile, rows, cols, row_norms, col_norms, row_labels, col_labels, scale, row_offset, col_offset,
      row_all, row_cls);
  if (columns)
    kde_cols_kernel<<<blocks_for(cols), kThreads, 0, call_stream()>>>(
        tile, rows, cols, row_labels, col_labels, col_all, col_cls);
  return finish();
}

#define FASTMEM_INFO_INSTANTIATE(T)                                                         \
  template int bin_keys<T>(const T*, int64_t, int64_t, BinSpec, int64_t, uint64_t*,         \
                           uint64_t*, uint8_t*, int64_t*);                                  \
  template int bin_rows_equal<T>(const T*, int64_t, BinSpec, const int64_t*, const int64_t*, \
                                 int64_t, int64_t*);                                        \
  template int bin_codes<T>(const T*, int64_t, int64_t, BinSpec, int64_t*);                \
  template int bin_plane<T>(const T* const*, const int64_t*, int64_t, int64_t, int,          \
                            const double*, int64_t, const int64_t*, const double*,           \
                            const double*, int64_t, const int64_t*, int64_t, const int64_t*, \
                            int64_t, const double*, int64_t*, double*, int64_t*);

FASTMEM_INFO_INSTANTIATE(float)
FASTMEM_INFO_INSTANTIATE(double)

}  // namespace fastmem::gpu

#include <cuda_runtime.h>

#include "fastmem/regions.hpp"
#include "regions_drivers.hpp"
#include "runtime.hpp"
#include "stream.cuh"

namespace fastmem::gpu {

namespace {

// One thread per piece: pieces are independent and their work is a short loop over the
// layer's neurons (the GEMMs between these kernels do the dense part with cuBLAS).

template <class T>
__global__ void count_kernel(const T* z, const int64_t* pseg, int64_t n, int64_t width, int kind,
                             int64_t* counts) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T* zl = z + (i + pseg[i]) * width;
    counts[i] = count_crossings_row(zl, zl + width, width, kind);
  }
}

template <class T>
__global__ void collect_kernel(const T* z, const T* vt, const int64_t* pseg, int64_t n,
                               int64_t width, int kind, T tol, const int64_t* offsets, T* buf,
                               int64_t* n_distinct) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (offsets[i + 1] == offsets[i]) {  // no candidate crossing
      n_distinct[i] = 0;
      continue;
    }
    const int64_t v = i + pseg[i];
    const T* zl = z + v * width;
    n_distinct[i] = collect_crossings_row(zl, zl + width, width, vt[v], vt[v + 1], kind, tol,
                                          buf + offsets[i]);
  }
}

template <class T>
__global__ void emit_kernel(const T* z, const T* vt, const int64_t* pseg, const uint64_t* codes,
                            int64_t n, int64_t width, int64_t n_words, const T* buf,
                            const int64_t* offsets, const int64_t* child_offsets, int kind,
                            T slope, int64_t bit_offset, bool write_values, T* out_vt,
                            int64_t* out_seg, uint64_t* out_codes, T* out_h, int64_t h_cols,
                            int64_t* scratch) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const PieceIndex p = piece_index(pseg, child_offsets, n, i);
    const T* zl = z + p.v * width;
    emit_children_row(zl, zl + width, width, vt[p.v], vt[p.v + 1], p.s, p.last,
                      codes + i * n_words, n_words, buf + offsets[i], p.n_bp, kind, slope,
                      bit_offset, write_values, out_vt + p.c0 + p.s, out_seg + p.c0,
                      out_codes + p.c0 * n_words, write_values ? out_h + p.v * h_cols : out_h,
                      h_cols, scratch + 2 * offsets[i]);
  }
}

template <class T>
__global__ void next_preactivations_kernel(const T* z, const T* vt, const int64_t* pseg,
                                           int64_t n, int64_t width, const T* buf,
                                           const int64_t* offsets, const int64_t* child_offsets,
                                           int kind, T slope, const Columns<T> wt,
                                           int64_t width_next, const T* zn, int64_t* scratch,
                                           T* out,
                                           int kind_next, int64_t* next_counts) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const PieceIndex p = piece_index(pseg, child_offsets, n, i);
    const T* zl = z + p.v * width;
    const T* znl = zn + p.v * width_next;
    next_preactivations_row(zl, zl + width, width, vt[p.v], vt[p.v + 1], buf + offsets[i],
                            p.n_bp, kind, slope, wt, width_next, znl, znl + width_next, p.last,
                            scratch + 2 * offsets[i], out + (p.c0 + p.s) * width_next,
                            kind_next, next_counts ? next_counts + p.c0 : nullptr);
  }
}

}  // namespace

template <class T>
int count_crossings(const T* z, const int64_t* pseg, int64_t n, int64_t width, int kind,
                    int64_t* counts) {
  if (n == 0) return 0;
  count_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(z, pseg, n, width, kind, counts);
  return finish();
}

template <class T>
int collect_crossings(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                      int kind, T tol, const int64_t* offsets, T* buf, int64_t* n_distinct) {
  if (n == 0) return 0;
  collect_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(
      z, vt, pseg, n, width, kind, tol, offsets, buf, n_distinct);
  return finish();
}

template <class T>
int emit_pieces(const T* z, const T* vt, const int64_t* pseg, const uint64_t* codes, int64_t n,
                int64_t width, int64_t n_words, const T* buf, const int64_t* offsets,
                const int64_t* child_offsets, int kind, T slope, int64_t bit_offset,
                bool write_values, T* out_vt, int64_t* out_seg, uint64_t* out_codes, T* out_h,
                int64_t h_cols, int64_t* scratch) {
  if (n == 0) return 0;
  emit_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(
      z, vt, pseg, codes, n, width, n_words, buf, offsets, child_offsets, kind, slope, bit_offset,
      write_values, out_vt, out_seg, out_codes, out_h, h_cols, scratch);
  return finish();
}

template <class T>
int next_preactivations(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                        const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                        int kind, T slope, const T* wt, int64_t width_next, const T* zn,
                        int64_t* scratch, T* out, int kind_next, int64_t* next_counts,
                        const T* snap_to, T snap_unit, T snap_w) {
  if (n == 0) return 0;
  Columns<T> cols = dense_columns(wt, width, width_next);
  cols.snap_to = snap_to;
  cols.snap_unit = snap_unit;
  cols.snap_w = snap_w;
  next_preactivations_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(
      z, vt, pseg, n, width, buf, offsets, child_offsets, kind, slope, cols, width_next, zn,
      scratch, out, kind_next, next_counts);
  return finish();
}

template <class T>
int next_preactivations_sparse(const T* z, const T* vt, const int64_t* pseg, int64_t n,
                               int64_t width, const T* buf, const int64_t* offsets,
                               const int64_t* child_offsets, int kind, T slope,
                               const int64_t* col_ptr, const int64_t* col_idx, const T* col_val,
                               const T* bias, int64_t width_next, const T* zn, int64_t* scratch,
                               T* out, int kind_next, int64_t* next_counts, const T* snap_to,
                               T snap_unit, T snap_w) {
  if (n == 0) return 0;
  const Columns<T> wt{nullptr, width, width_next, col_ptr, col_idx, col_val,
                      bias,    snap_to, snap_unit, snap_w};
  next_preactivations_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(
      z, vt, pseg, n, width, buf, offsets, child_offsets, kind, slope, wt, width_next, zn,
      scratch, out, kind_next, next_counts);
  return finish();
}

#define FASTMEM_INSTANTIATE(T)                                                                 \
  template int count_crossings<T>(const T*, const int64_t*, int64_t, int64_t, int, int64_t*); \
  template int collect_crossings<T>(const T*, const T*, const int64_t*, int64_t, int64_t, int, \
                                    T, const int64_t*, T*, int64_t*);                          \
  template int emit_pieces<T>(const T*, const T*, const int64_t*, const uint64_t*, int64_t,    \
                              int64_t, int64_t, const T*, const int64_t*, const int64_t*, int, \
                              T, int64_t, bool, T*, int64_t*, uint64_t*, T*, int64_t,     \
                              int64_t*);                                                  \
  template int next_preactivations<T>(const T*, const T*, const int64_t*, int64_t, int64_t,    \
                                      const T*, const int64_t*, const int64_t*, int, T,        \
                                      const T*, int64_t, const T*, int64_t*, T*, int, int64_t*, \
                                      const T*, T, T);                                         \
  template int next_preactivations_sparse<T>(                                                  \
      const T*, const T*, const int64_t*, int64_t, int64_t, const T*, const int64_t*,          \
      const int64_t*, int, T, const int64_t*, const int64_t*, const T*, const T*, int64_t,     \
      const T*, int64_t*, T*, int, int64_t*, const T*, T, T);

FASTMEM_INSTANTIATE(float)
FASTMEM_INSTANTIATE(double)
#undef FASTMEM_INSTANTIATE

}  // namespace fastmem::gpu

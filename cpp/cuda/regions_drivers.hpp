// CUDA drivers of the segment engine's splitting kernels: grid-stride loops over pieces,
// calling the same inline math as the CPU path (fastmem/regions.hpp). Every function
// returns a cudaError_t value as int (0 = success).
#pragma once

#include <cstdint>

namespace fastmem::gpu {

template <class T>
int count_crossings(const T* z, const int64_t* pseg, int64_t n, int64_t width, int kind,
                    int64_t* counts);

template <class T>
int collect_crossings(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                      int kind, T tol, const int64_t* offsets, T* buf, int64_t* n_distinct);

template <class T>
int emit_pieces(const T* z, const T* vt, const int64_t* pseg, const uint64_t* codes, int64_t n,
                int64_t width, int64_t n_words, const T* buf, const int64_t* offsets,
                const int64_t* child_offsets, int kind, T slope, int64_t bit_offset,
                bool write_values, T* out_vt, int64_t* out_seg, uint64_t* out_codes, T* out_h,
                int64_t h_cols, int64_t* scratch);

template <class T>
int next_preactivations(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                        const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                        int kind, T slope, const T* wt, int64_t width_next, const T* zn,
                        int64_t* scratch, T* out, int kind_next, int64_t* next_counts,
                        const T* snap_to, T snap_unit, T snap_w);

// The same with the next layer's linear part sparse by columns (cpu::next_preactivations_sparse).
template <class T>
int next_preactivations_sparse(const T* z, const T* vt, const int64_t* pseg, int64_t n,
                               int64_t width, const T* buf, const int64_t* offsets,
                               const int64_t* child_offsets, int kind, T slope,
                               const int64_t* col_ptr, const int64_t* col_idx, const T* col_val,
                               const T* bias, int64_t width_next, const T* zn, int64_t* scratch,
                               T* out, int kind_next, int64_t* next_counts, const T* snap_to,
                               T snap_unit, T snap_w);

}  // namespace fastmem::gpu

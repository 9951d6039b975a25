// OpenMP drivers of the segment engine's splitting kernels (see fastmem/regions.hpp):
// loop over pieces, call the shared inline math. z and vt are per vertex; piece i of
// segment pseg[i] spans vertices i + pseg[i] and i + pseg[i] + 1.
#pragma once

#include <cstdint>

namespace fastmem::cpu {

template <class T>
void count_crossings(const T* z, const int64_t* pseg, int64_t n, int64_t width, int kind,
                     int64_t* counts);

template <class T>
void collect_crossings(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                       int kind, T tol, const int64_t* offsets, T* buf, int64_t* n_distinct);

template <class T>
void emit_pieces(const T* z, const T* vt, const int64_t* pseg, const uint64_t* codes, int64_t n,
                 int64_t width, int64_t n_words, const T* buf, const int64_t* offsets,
                 const int64_t* child_offsets, int kind, T slope, int64_t bit_offset,
                 bool write_values, T* out_vt, int64_t* out_seg, uint64_t* out_codes, T* out_h,
                 int64_t h_cols, int64_t* scratch);

// The next layer's pre-activations at the new vertices (child_offsets[n] + segments rows of
// width_next) from zn, those at the old ones (see next_preactivations_row). wt: the next
// layer's [W | b] transposed (width + 1, width_next); scratch: 2 * offsets[n] entries.
// kind_next >= 0: also the next layer's count_crossings per child into next_counts
// (child_offsets[n] entries); kind_next < 0: next_counts is not touched.
template <class T>
void next_preactivations(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                         const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                         int kind, T slope, const T* wt, int64_t width_next, const T* zn,
                         int64_t* scratch, T* out, int kind_next, int64_t* next_counts);

// The same with the next layer's linear part sparse by columns: column j's nonzeros at
// col_idx[col_ptr[j] .. col_ptr[j + 1]) (distinct outputs) with values col_val, its bias
// (width_next entries) apart; equal values to the dense call on the same matrix.
template <class T>
void next_preactivations_sparse(const T* z, const T* vt, const int64_t* pseg, int64_t n,
                                int64_t width, const T* buf, const int64_t* offsets,
                                const int64_t* child_offsets, int kind, T slope,
                                const int64_t* col_ptr, const int64_t* col_idx,
                                const T* col_val, const T* bias, int64_t width_next,
                                const T* zn, int64_t* scratch, T* out, int kind_next,
                                int64_t* next_counts);

}  // namespace fastmem::cpu

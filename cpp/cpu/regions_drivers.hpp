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
// (child_offsets[n] entries); kind_next < 0: next_counts is not touched. snap_to (width_next
// entries, or nullptr), snap_unit, snap_w: Columns' snap of the carried values.
template <class T>
void next_preactivations(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                         const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                         int kind, T slope, const T* wt, int64_t width_next, const T* zn,
                         int64_t* scratch, T* out, int kind_next, int64_t* next_counts,
                         const T* snap_to, T snap_unit, T snap_w);

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
                                int64_t* next_counts, const T* snap_to, T snap_unit, T snap_w);

// Per vertex of the new layout (child_offsets[n] + segments entries): -1 at the old
// vertices, at a breakpoint the one neuron whose slope changes there (-2: none, -1:
// several), and its slope's change per unit t into out_val (0 elsewhere); see
// breakpoint_causes_row. scratch: 2 * offsets[n] entries.
template <class T>
void breakpoint_causes(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                       const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                       int kind, T slope, int64_t* scratch, int64_t* out, T* out_val);

// The dense layer after the activation at every old vertex (zn: (vertices, width_next)),
// one segment at a time along its vertices (chain_segment): segment g's pieces are
// seg_pieces[g] .. seg_pieces[g + 1]; cause, cause_val per old vertex (breakpoint_causes of
// the layer before), whose receptive fields (the sparse columns of the op between) are
// rf_ptr/rf_idx/rf_val;
// a direct value at least every `period` vertices. wt as next_preactivations'.
template <class T>
void chain_values(const T* z, const T* vt, const int64_t* pseg, const int64_t* seg_pieces,
                  int64_t n_seg, int64_t width, const T* buf, const int64_t* offsets,
                  const int64_t* child_offsets, int kind, T slope, const T* wt,
                  int64_t width_next, const int64_t* cause, const T* cause_val,
                  const int64_t* rf_ptr, const int64_t* rf_idx, const T* rf_val, int64_t period,
                  T* zn);

}  // namespace fastmem::cpu

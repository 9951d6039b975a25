#include "regions_drivers.hpp"

#include <vector>

#include "dispatch.hpp"
#include "fastmem/regions.hpp"

namespace fastmem::cpu {

// The per-piece work of the passes that read a piece's rows is compiled twice, for the
// build's baseline (x86-64-v2: 128-bit vectors) and for AVX2 (256-bit), and picked at run
// time (flatten: the header's row functions are inlined into each build). Same IEEE
// operations either way (no FMA: -ffp-contract=off), so the same pieces, bit for bit.

constexpr int64_t kPieceBlock = 16;

#define FASTMEM_REGION_RANGES(SUFFIX, ATTR)                                                    \
  template <class T>                                                                           \
  ATTR void collect_range_##SUFFIX(int64_t begin, int64_t end, const T* z, const T* vt,        \
                                   const int64_t* pseg, int64_t width, int kind, T tol,        \
                                   const int64_t* offsets, T* buf, int64_t* n_distinct) {      \
    for (int64_t i = begin; i < end; ++i) {                                                    \
      /* Most pieces have no candidate crossing: skip reading their rows again. */             \
      if (offsets[i + 1] == offsets[i]) {                                                      \
        n_distinct[i] = 0;                                                                     \
        continue;                                                                              \
      }                                                                                        \
      const int64_t v = i + pseg[i];                                                           \
      const T* zl = z + v * width;                                                             \
      n_distinct[i] = collect_crossings_row(zl, zl + width, width, vt[v], vt[v + 1], kind,     \
                                            tol, buf + offsets[i]);                            \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  template <class T>                                                                           \
  ATTR void emit_range_##SUFFIX(                                                               \
      int64_t begin, int64_t end, const T* z, const T* vt, const int64_t* pseg,                \
      const uint64_t* codes, int64_t n, int64_t width, int64_t n_words, const T* buf,          \
      const int64_t* offsets, const int64_t* child_offsets, int kind, T slope,                 \
      int64_t bit_offset, bool write_values, T* out_vt, int64_t* out_seg, uint64_t* out_codes, \
      T* out_h, int64_t h_cols, int64_t* scratch) {                                            \
    for (int64_t i = begin; i < end; ++i) {                                                    \
      const PieceIndex p = piece_index(pseg, child_offsets, n, i);                             \
      const T* zl = z + p.v * width;                                                           \
      emit_children_row(zl, zl + width, width, vt[p.v], vt[p.v + 1], p.s, p.last,             \
                        codes + i * n_words, n_words, buf + offsets[i], p.n_bp, kind, slope,   \
                        bit_offset, write_values, out_vt + p.c0 + p.s, out_seg + p.c0,         \
                        out_codes + p.c0 * n_words,                                            \
                        write_values ? out_h + p.v * h_cols : out_h, h_cols,                   \
                        scratch + 2 * offsets[i]);                                             \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  template <class T>                                                                           \
  ATTR void next_range_##SUFFIX(int64_t begin, int64_t end, const T* z, const T* vt,           \
                                const int64_t* pseg, int64_t n, int64_t width, const T* buf,   \
                                const int64_t* offsets, const int64_t* child_offsets,          \
                                int kind, T slope, const Columns<T>& wt, int64_t width_next,   \
                                const T* zn, int64_t* scratch, T* out, int kind_next,          \
                                int64_t* next_counts) {                                        \
    for (int64_t i = begin; i < end; ++i) {                                                    \
      const PieceIndex p = piece_index(pseg, child_offsets, n, i);                             \
      const T* zl = z + p.v * width;                                                           \
      const T* znl = zn + p.v * width_next;                                                    \
      next_preactivations_row(zl, zl + width, width, vt[p.v], vt[p.v + 1], buf + offsets[i],   \
                              p.n_bp, kind, slope, wt, width_next, znl, znl + width_next,      \
                              p.last, scratch + 2 * offsets[i],                                \
                              out + (p.c0 + p.s) * width_next, kind_next,                      \
                              next_counts ? next_counts + p.c0 : nullptr);                     \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  template <class T>                                                                           \
  ATTR void causes_range_##SUFFIX(int64_t begin, int64_t end, const T* z, const T* vt,         \
                                  const int64_t* pseg, int64_t n, int64_t width, const T* buf, \
                                  const int64_t* offsets, const int64_t* child_offsets,        \
                                  int kind, T slope, int64_t* scratch, int64_t* out,           \
                                  T* out_val) {                                                \
    for (int64_t i = begin; i < end; ++i) {                                                    \
      const PieceIndex p = piece_index(pseg, child_offsets, n, i);                             \
      const T* zl = z + p.v * width;                                                           \
      out[p.c0 + p.s] = -1;                                                                    \
      out_val[p.c0 + p.s] = T(0);                                                              \
      if (p.last) {                                                                            \
        out[p.c0 + p.s + p.n_bp + 1] = -1;                                                     \
        out_val[p.c0 + p.s + p.n_bp + 1] = T(0);                                               \
      }                                                                                        \
      breakpoint_causes_row(zl, zl + width, width, vt[p.v], vt[p.v + 1], buf + offsets[i],    \
                            p.n_bp, kind, slope, scratch + 2 * offsets[i],                     \
                            out + p.c0 + p.s + 1, out_val + p.c0 + p.s + 1);                   \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  template <class T>                                                                           \
  ATTR void chain_range_##SUFFIX(                                                              \
      int64_t g, const T* z, const T* vt, const int64_t* pseg, const int64_t* seg_pieces,      \
      int64_t width, const T* buf, const int64_t* offsets, const int64_t* child_offsets,       \
      int kind, T slope, const Columns<T>& wt, int64_t width_next, const int64_t* cause,       \
      const T* cause_val, const int64_t* rf_ptr, const int64_t* rf_idx, const T* rf_val,       \
      int64_t period, int64_t* cand, uint8_t* mark, T* gu, T* zn) {                            \
    const int64_t i0 = seg_pieces[g], i1 = seg_pieces[g + 1];                                  \
    chain_segment(z, vt, pseg[i0], i0, i1, width, buf, offsets, child_offsets, kind, slope,    \
                  wt, width_next, cause, cause_val, rf_ptr, rf_idx, rf_val, period, cand,      \
                  mark, gu, zn);                                                               \
  }

FASTMEM_REGION_RANGES(generic, __attribute__((flatten)))
#ifdef FASTMEM_X86_DISPATCH
FASTMEM_REGION_RANGES(avx2, __attribute__((target("avx2"), flatten)))
#endif
#undef FASTMEM_REGION_RANGES

#ifdef FASTMEM_X86_DISPATCH
#define FASTMEM_PICK(NAME, ...) \
  (has_avx2() ? NAME##_avx2(__VA_ARGS__) : NAME##_generic(__VA_ARGS__))
#else
#define FASTMEM_PICK(NAME, ...) NAME##_generic(__VA_ARGS__)
#endif

// Pieces differ a lot in how many crossings they hold (at the first layer a chunk has one
// piece per segment, each with dozens): dynamic scheduling in small blocks balances them.

template <class T>
void count_crossings(const T* z, const int64_t* pseg, int64_t n, int64_t width, int kind,
                     int64_t* counts) {
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    const T* zl = z + (i + pseg[i]) * width;
    counts[i] = count_crossings_row(zl, zl + width, width, kind);
  }
}

template <class T>
void collect_crossings(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                       int kind, T tol, const int64_t* offsets, T* buf, int64_t* n_distinct) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < n; b += kPieceBlock) {
    const int64_t e = b + kPieceBlock < n ? b + kPieceBlock : n;
    FASTMEM_PICK(collect_range, b, e, z, vt, pseg, width, kind, tol, offsets, buf, n_distinct);
  }
}

template <class T>
void emit_pieces(const T* z, const T* vt, const int64_t* pseg, const uint64_t* codes, int64_t n,
                 int64_t width, int64_t n_words, const T* buf, const int64_t* offsets,
                 const int64_t* child_offsets, int kind, T slope, int64_t bit_offset,
                 bool write_values, T* out_vt, int64_t* out_seg, uint64_t* out_codes, T* out_h,
                 int64_t h_cols, int64_t* scratch) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < n; b += kPieceBlock) {
    const int64_t e = b + kPieceBlock < n ? b + kPieceBlock : n;
    FASTMEM_PICK(emit_range, b, e, z, vt, pseg, codes, n, width, n_words, buf, offsets,
                 child_offsets, kind, slope, bit_offset, write_values, out_vt, out_seg,
                 out_codes, out_h, h_cols, scratch);
  }
}

template <class T>
static void next_preactivations_columns(const T* z, const T* vt, const int64_t* pseg, int64_t n,
                                        int64_t width, const T* buf, const int64_t* offsets,
                                        const int64_t* child_offsets, int kind, T slope,
                                        const Columns<T>& wt, int64_t width_next, const T* zn,
                                        int64_t* scratch, T* out, int kind_next,
                                        int64_t* next_counts) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < n; b += kPieceBlock) {
    const int64_t e = b + kPieceBlock < n ? b + kPieceBlock : n;
    FASTMEM_PICK(next_range, b, e, z, vt, pseg, n, width, buf, offsets, child_offsets, kind,
                 slope, wt, width_next, zn, scratch, out, kind_next, next_counts);
  }
}

template <class T>
void next_preactivations(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                         const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                         int kind, T slope, const T* wt, int64_t width_next, const T* zn,
                         int64_t* scratch, T* out, int kind_next, int64_t* next_counts,
                         const T* snap_to, T snap_unit, T snap_w) {
  Columns<T> cols = dense_columns(wt, width, width_next);
  cols.snap_to = snap_to;
  cols.snap_unit = snap_unit;
  cols.snap_w = snap_w;
  next_preactivations_columns(z, vt, pseg, n, width, buf, offsets, child_offsets, kind, slope,
                              cols, width_next, zn, scratch, out, kind_next, next_counts);
}

template <class T>
void next_preactivations_sparse(const T* z, const T* vt, const int64_t* pseg, int64_t n,
                                int64_t width, const T* buf, const int64_t* offsets,
                                const int64_t* child_offsets, int kind, T slope,
                                const int64_t* col_ptr, const int64_t* col_idx,
                                const T* col_val, const T* bias, int64_t width_next,
                                const T* zn, int64_t* scratch, T* out, int kind_next,
                                int64_t* next_counts, const T* snap_to, T snap_unit,
                                T snap_w) {
  const Columns<T> wt{nullptr, width, width_next, col_ptr, col_idx, col_val,
                      bias,    snap_to, snap_unit, snap_w};
  next_preactivations_columns(z, vt, pseg, n, width, buf, offsets, child_offsets, kind, slope,
                              wt, width_next, zn, scratch, out, kind_next, next_counts);
}

template <class T>
void breakpoint_causes(const T* z, const T* vt, const int64_t* pseg, int64_t n, int64_t width,
                       const T* buf, const int64_t* offsets, const int64_t* child_offsets,
                       int kind, T slope, int64_t* scratch, int64_t* out, T* out_val) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < n; b += kPieceBlock) {
    const int64_t e = b + kPieceBlock < n ? b + kPieceBlock : n;
    FASTMEM_PICK(causes_range, b, e, z, vt, pseg, n, width, buf, offsets, child_offsets, kind,
                 slope, scratch, out, out_val);
  }
}

template <class T>
void chain_values(const T* z, const T* vt, const int64_t* pseg, const int64_t* seg_pieces,
                  int64_t n_seg, int64_t width, const T* buf, const int64_t* offsets,
                  const int64_t* child_offsets, int kind, T slope, const T* wt,
                  int64_t width_next, const int64_t* cause, const T* cause_val,
                  const int64_t* rf_ptr, const int64_t* rf_idx, const T* rf_val, int64_t period,
                  T* zn) {
  const Columns<T> cols = dense_columns(wt, width, width_next);
#pragma omp parallel
  {
    std::vector<int64_t> cand(static_cast<size_t>(2 * width));
    std::vector<uint8_t> mark(static_cast<size_t>(width), 0);
    std::vector<T> gu(static_cast<size_t>(width_next));
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < n_seg; ++g)
      FASTMEM_PICK(chain_range, g, z, vt, pseg, seg_pieces, width, buf, offsets, child_offsets,
                   kind, slope, cols, width_next, cause, cause_val, rf_ptr, rf_idx, rf_val,
                   period, cand.data(), mark.data(), gu.data(), zn);
  }
}
#undef FASTMEM_PICK

#define FASTMEM_INSTANTIATE(T)                                                                  \
  template void count_crossings<T>(const T*, const int64_t*, int64_t, int64_t, int, int64_t*); \
  template void collect_crossings<T>(const T*, const T*, const int64_t*, int64_t, int64_t, int, \
                                     T, const int64_t*, T*, int64_t*);                          \
  template void emit_pieces<T>(const T*, const T*, const int64_t*, const uint64_t*, int64_t,    \
                               int64_t, int64_t, const T*, const int64_t*, const int64_t*, int, \
                               T, int64_t, bool, T*, int64_t*, uint64_t*, T*, int64_t,      \
                               int64_t*);                                                   \
  template void next_preactivations<T>(const T*, const T*, const int64_t*, int64_t, int64_t,    \
                                       const T*, const int64_t*, const int64_t*, int, T,        \
                                       const T*, int64_t, const T*, int64_t*, T*, int, int64_t*, \
                                       const T*, T, T);                                         \
  template void next_preactivations_sparse<T>(                                                  \
      const T*, const T*, const int64_t*, int64_t, int64_t, const T*, const int64_t*,           \
      const int64_t*, int, T, const int64_t*, const int64_t*, const T*, const T*, int64_t,      \
      const T*, int64_t*, T*, int, int64_t*, const T*, T, T);                                  \
  template void breakpoint_causes<T>(const T*, const T*, const int64_t*, int64_t, int64_t,      \
                                     const T*, const int64_t*, const int64_t*, int, T,          \
                                     int64_t*, int64_t*, T*);                                   \
  template void chain_values<T>(const T*, const T*, const int64_t*, const int64_t*, int64_t,    \
                                int64_t, const T*, const int64_t*, const int64_t*, int, T,      \
                                const T*, int64_t, const int64_t*, const T*, const int64_t*,    \
                                const int64_t*, const T*, int64_t, T*);

FASTMEM_INSTANTIATE(float)
FASTMEM_INSTANTIATE(double)
#undef FASTMEM_INSTANTIATE

}  // namespace fastmem::cpu

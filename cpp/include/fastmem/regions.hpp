// The segment engine's splitting step (see ../shared/DESIGN.md, "The segment engine").
//
// A piece is a sub-interval of one segment x(t) = a + t (b - a) on which every hidden
// neuron seen so far stays on one linear branch. The pieces of a segment are stored by
// their vertices (the piece ends, shared by neighbours): segment s with P_s pieces owns
// P_s + 1 consecutive vertices, so piece i of the chunk (segments stored one after the
// other) has vertices i + s and i + s + 1. A layer's pre-activations are known at the
// vertices (z, one GEMM over all vertices of a chunk) and are affine in t in between:
// the network is continuous, so a vertex value serves both neighbouring pieces, and one
// row per vertex (not two per piece) halves the GEMM and the memory traffic.
//
// One layer is processed in three passes over the pieces (each piece independently, so
// the passes parallelise over pieces on the CPU and the GPU alike):
//
//   1. count_crossings_row   an upper bound on the (neuron, threshold) crossings inside the
//                            piece (z at the two ends not strictly on one side); sizes a
//                            scratch buffer.
//   2. collect_crossings_row the crossing t's strictly inside (t_lo + tol, t_hi - tol),
//                            sorted, those closer than tol merged (ties: several neurons
//                            crossing at one t give ONE breakpoint); returns how many.
//   3. emit_children_row     cut the piece at its breakpoints: each child gets the parent's
//                            pattern bits plus this layer's, evaluated at the child's
//                            midpoint (never at a breakpoint, so ties and rounding at the
//                            cut cannot flip a bit), and the post-activations at the new
//                            vertices (linear interpolation of z, then the activation).
//
// Thresholds: 0 for relu / leaky_relu / threshold, -1 and +1 for hard-tanh. A neuron that
// is constant along the piece never crosses; its state comes from its value. Crossings
// within tol of the piece's ends are dropped: the piece already ends there (this makes
// breakpoints at the segment ends and ties with earlier layers' breakpoints harmless).
#pragma once

#include <cstdint>

#include "fastmem/hd.hpp"
#include "fastmem/patterns.hpp"

namespace fastmem {

FASTMEM_HD inline int n_thresholds(int kind) { return kind == kHardtanh ? 2 : 1; }

template <class T>
FASTMEM_HD inline T threshold_value(int kind, int i) {
  if (kind == kHardtanh) return i == 0 ? T(-1) : T(1);
  return T(0);
}

// Whether threshold c may be crossed inside a piece whose ends have values zl, zh: not
// strictly on one side. Shared by the count and the collect pass, so the buffer sized by
// the first always fits the second.
template <class T>
FASTMEM_HD inline bool may_cross(T zl, T zh, T c) {
  return zl != zh && !((zl > c && zh > c) || (zl < c && zh < c));
}

template <class T>
FASTMEM_HD inline int64_t count_crossings_row(const T* zl, const T* zh, int64_t width,
                                              int kind) {
  int64_t c = 0;
  if (kind == kHardtanh) {
    for (int64_t j = 0; j < width; ++j)
      c += int64_t(may_cross(zl[j], zh[j], T(-1))) + int64_t(may_cross(zl[j], zh[j], T(1)));
  } else {
    for (int64_t j = 0; j < width; ++j) c += int64_t(may_cross(zl[j], zh[j], T(0)));
  }
  return c;
}

// Shell sort with Knuth's gaps (1, 4, 13, 40, ...): in place, no allocation, runs on the
// device. Counts are usually small; the gaps keep a rare wide piece from going quadratic.
template <class T>
FASTMEM_HD inline void shell_sort(T* v, int64_t n) {
  int64_t gap = 1;
  while (gap < n / 3) gap = 3 * gap + 1;
  for (; gap >= 1; gap /= 3) {
    for (int64_t i = gap; i < n; ++i) {
      const T x = v[i];
      int64_t k = i;
      while (k >= gap && v[k - gap] > x) {
        v[k] = v[k - gap];
        k -= gap;
      }
      v[k] = x;
    }
  }
}

// Writes the crossings of one piece (ends tl < th, values zl, zh) into buf (room for
// count_crossings_row of them), sorts and merges them; returns the number of distinct
// breakpoints kept at buf[0..]. A chain of crossings closer than tol is represented by
// its midpoint.
template <class T>
FASTMEM_HD inline int64_t collect_crossings_row(const T* zl, const T* zh, int64_t width, T tl,
                                                T th, int kind, T tol, T* buf) {
  const int nt = n_thresholds(kind);
  int64_t c = 0;
  for (int64_t j = 0; j < width; ++j) {
    for (int i = 0; i < nt; ++i) {
      const T thr = threshold_value<T>(kind, i);
      if (!may_cross(zl[j], zh[j], thr)) continue;
      const T t = tl + (th - tl) * ((thr - zl[j]) / (zh[j] - zl[j]));
      if (t > tl + tol && t < th - tol) buf[c++] = t;
    }
  }
  shell_sort(buf, c);
  int64_t n = 0;
  int64_t first = 0;  // start of the current cluster
  for (int64_t i = 1; i <= c; ++i) {
    if (i == c || buf[i] - buf[i - 1] > tol) {
      buf[n++] = (buf[first] + buf[i - 1]) / T(2);
      first = i;
    }
  }
  return n;
}

// Emits the n_bp + 1 children of one piece (ends tl < th, values zl, zh at its vertices).
// Children pieces go to out_* from index 0 (pattern words copied from the parent, this
// layer's bits ORed in from `bit_offset`); vertices go to out_vt / out_h from index 0:
// the piece's left vertex, then its n_bp breakpoints, then (when `last`, the piece ends its
// segment) its right vertex. With write_values false out_h is not written (the last
// hidden layer of a pure count). out_h rows have h_cols >= width entries; a column beyond
// width is set to 1 so that the next layer's GEMM adds its bias (no separate pass over z).
// KIND is a template argument so that the per-neuron loops
// carry no switch (they vectorise); emit_children_row dispatches once per piece.
template <class T, int KIND>
FASTMEM_HD inline void emit_children_kind(const T* zl, const T* zh, int64_t width, T tl, T th,
                                          int64_t seg, bool last, const uint64_t* parent_codes,
                                          int64_t n_words, const T* bp, int64_t n_bp, T slope,
                                          int64_t bit_offset, bool write_values, T* out_vt,
                                          int64_t* out_seg, uint64_t* out_codes, T* out_h,
                                          int64_t h_cols) {
  constexpr int bpn = KIND == kHardtanh ? 2 : 1;
  const T span = th - tl;
  for (int64_t c = 0; c <= n_bp; ++c) {
    const T clo = c == 0 ? tl : bp[c - 1];
    const T chi = c == n_bp ? th : bp[c];
    const T r = ((clo + (chi - clo) / T(2)) - tl) / span;  // the child's midpoint
    out_seg[c] = seg;
    out_vt[c] = clo;
    uint64_t* codes = out_codes + c * n_words;
    for (int64_t w = 0; w < n_words; ++w) codes[w] = parent_codes[w];
    // This layer's bits are gathered in a register and ORed in one word at a time.
    int64_t word = bit_offset >> 6;
    uint64_t acc = 0;
    for (int64_t j = 0; j < width; ++j) {
      const uint64_t state = neuron_state(zl[j] + r * (zh[j] - zl[j]), KIND);
      for (int b = 0; b < bpn; ++b) {
        const int64_t g = bit_offset + j * bpn + b;
        if ((g >> 6) != word) {
          codes[word] |= acc;
          word = g >> 6;
          acc = 0;
        }
        acc |= ((state >> b) & 1ULL) << (g & 63);
      }
    }
    if (width > 0) codes[word] |= acc;
    if (!write_values) continue;
    T* h = out_h + c * h_cols;
    if (h_cols > width) h[width] = T(1);  // the bias column of the next layer's GEMM
    if (c == 0) {  // the piece's own left vertex keeps its value exactly
      for (int64_t j = 0; j < width; ++j) h[j] = activate(zl[j], KIND, slope);
    } else {  // a breakpoint: z is affine along the piece
      const T rv = (clo - tl) / span;
      for (int64_t j = 0; j < width; ++j)
        h[j] = activate(zl[j] + rv * (zh[j] - zl[j]), KIND, slope);
    }
  }
  if (last) {
    out_vt[n_bp + 1] = th;
    if (write_values) {
      T* h = out_h + (n_bp + 1) * h_cols;
      if (h_cols > width) h[width] = T(1);
      for (int64_t j = 0; j < width; ++j) h[j] = activate(zh[j], KIND, slope);
    }
  }
}

template <class T>
FASTMEM_HD inline void emit_children_row(const T* zl, const T* zh, int64_t width, T tl, T th,
                                         int64_t seg, bool last, const uint64_t* parent_codes,
                                         int64_t n_words, const T* bp, int64_t n_bp, int kind,
                                         T slope, int64_t bit_offset, bool write_values,
                                         T* out_vt, int64_t* out_seg, uint64_t* out_codes,
                                         T* out_h, int64_t h_cols) {
  switch (kind) {
    case kRelu:
      emit_children_kind<T, kRelu>(zl, zh, width, tl, th, seg, last, parent_codes, n_words, bp,
                                   n_bp, slope, bit_offset, write_values, out_vt, out_seg,
                                   out_codes, out_h, h_cols);
      return;
    case kLeakyRelu:
      emit_children_kind<T, kLeakyRelu>(zl, zh, width, tl, th, seg, last, parent_codes, n_words,
                                        bp, n_bp, slope, bit_offset, write_values, out_vt,
                                        out_seg, out_codes, out_h, h_cols);
      return;
    case kHardtanh:
      emit_children_kind<T, kHardtanh>(zl, zh, width, tl, th, seg, last, parent_codes, n_words,
                                       bp, n_bp, slope, bit_offset, write_values, out_vt,
                                       out_seg, out_codes, out_h, h_cols);
      return;
    default:
      emit_children_kind<T, kThreshold>(zl, zh, width, tl, th, seg, last, parent_codes, n_words,
                                        bp, n_bp, slope, bit_offset, write_values, out_vt,
                                        out_seg, out_codes, out_h, h_cols);
      return;
  }
}

}  // namespace fastmem

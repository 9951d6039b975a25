// The segment engine's splitting step (see docs/DESIGN.md, "The segment engine").
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
// One layer is processed in four passes over the pieces (each piece independently, so
// the passes parallelise over pieces on the CPU and the GPU alike; pass 1 runs alone only
// at the first layer, later layers get their counts from pass 4 of the layer before):
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
//                            cut cannot flip a bit); the post-activations at the piece's own
//                            (old) vertices go to the next layer's GEMM.
//   4. next_preactivations_row  the next layer's pre-activations at the new vertices: the
//                            GEMM gave them at the old vertices only (the piece's ends); in
//                            between, the next layer is affine on each child with a slope
//                            that changes only in the neurons whose branch flips at a
//                            breakpoint (usually one), so each breakpoint costs one rank-1
//                            update of width_next entries instead of a GEMM row of
//                            width x width_next. Without this pass the GEMM would run over
//                            every new vertex (~3x the rows on a 784-128x3-10 network).
//                            A carried value within a rigorous bound of the carry's
//                            rounding of the output's bias takes it (Columns::snap_to,
//                            carry_band, snap_row): an output whose inputs are all off is
//                            exactly its bias, as the forward pass computes it.
//
// Thresholds (activations.hpp): 0 for relu / leaky_relu / threshold, a clamp's two ends. A neuron that
// is constant along the piece never crosses; its state comes from its value. Crossings
// within tol of the piece's ends are dropped: the piece already ends there (this makes
// breakpoints at the segment ends and ties with earlier layers' breakpoints harmless).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "fastmem/hd.hpp"
#include "fastmem/activations.hpp"
#include "fastmem/patterns.hpp"
#include "fastmem/search.hpp"

namespace fastmem {

// Where piece i sits: its segment s, its left vertex v = i + s (old layout), its first
// child c0 and left vertex c0 + s in the new layout, its n_bp breakpoints, and whether it
// ends its segment. Shared by the drivers of the passes that cut pieces.
struct PieceIndex {
  int64_t s, v, c0, n_bp;
  bool last;
};

FASTMEM_HD inline PieceIndex piece_index(const int64_t* pseg, const int64_t* child_offsets,
                                         int64_t n, int64_t i) {
  const int64_t s = pseg[i];
  const int64_t c0 = child_offsets[i];
  return {s, i + s, c0, child_offsets[i + 1] - c0 - 1, i + 1 == n || pseg[i + 1] != s};
}

// Whether threshold c may be crossed inside a piece whose ends have values zl, zh: not
// strictly on one side. Shared by the count and the collect pass, so the buffer sized by
// the first always fits the second.
// Written with non-short-circuit & and | (equal to
// zl != zh && !((zl > c && zh > c) || (zl < c && zh < c)) for numbers): no branches, so the
// counting loops vectorise.
template <class T>
FASTMEM_HD inline bool may_cross(T zl, T zh, T c) {
  return (zl != zh) & ((zl <= c) | (zh <= c)) & ((zl >= c) | (zh >= c));
}

// pack_flags64: patterns.hpp.

FASTMEM_HD inline int lowest_bit(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __ffsll(static_cast<long long>(x)) - 1;
#else
  return __builtin_ctzll(x);
#endif
}

// Neurons are scanned 64 at a time: their flags are computed into bytes (branch-free, so
// the compares vectorise), packed into one word, and only its set bits (usually one or
// two of 64) are visited. Equal to visiting every j with `if (flag) ...`, in order.
constexpr int64_t kScanBlock = 64;

FASTMEM_HD inline int64_t scan_block(int64_t width, int64_t j0) {
  return width - j0 < kScanBlock ? width - j0 : kScanBlock;
}

// Bit j of the result: whether neuron j0 + j (j < nb <= 64) may cross a threshold of
// its kind inside the piece (a clamp: c0 or c1, its two ends; otherwise c0 = 0).
template <class T, bool CLAMP>
FASTMEM_HD inline uint64_t crossing_bits(const T* zl, const T* zh, int64_t nb, T c0, T c1) {
  uint8_t flags[kScanBlock];
  for (int64_t j = 0; j < nb; ++j) {
    flags[j] = CLAMP ? uint8_t(may_cross(zl[j], zh[j], c0) | may_cross(zl[j], zh[j], c1))
                     : uint8_t(may_cross(zl[j], zh[j], c0));
  }
  return pack_flags64(flags, nb);
}

template <class T>
FASTMEM_HD inline uint64_t crossing_bits(const T* zl, const T* zh, int64_t nb, int kind) {
  const T c0 = threshold_value<T>(kind, 0), c1 = threshold_value<T>(kind, 1);
  return is_clamp(kind) ? crossing_bits<T, true>(zl, zh, nb, c0, c1)
                        : crossing_bits<T, false>(zl, zh, nb, c0, c1);
}

// The neurons that may cross a threshold inside the piece, in order, into cand (room for
// count_crossings_row entries); returns how many.
template <class T>
FASTMEM_HD inline int64_t list_candidates(const T* zl, const T* zh, int64_t width, int kind,
                                          int64_t* cand) {
  int64_t n = 0;
  for (int64_t j0 = 0; j0 < width; j0 += kScanBlock) {
    uint64_t bits = crossing_bits(zl + j0, zh + j0, scan_block(width, j0), kind);
    for (; bits != 0; bits &= bits - 1) cand[n++] = j0 + lowest_bit(bits);
  }
  return n;
}

template <class T>
FASTMEM_HD inline int64_t count_crossings_row(const T* zl, const T* zh, int64_t width,
                                              int kind) {
  int64_t c = 0;
  if (is_clamp(kind)) {
    const T c0 = clamp_low<T>(kind), c1 = clamp_high<T>(kind);
    for (int64_t j = 0; j < width; ++j)
      c += int64_t(may_cross(zl[j], zh[j], c0)) + int64_t(may_cross(zl[j], zh[j], c1));
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
  for (int64_t j0 = 0; j0 < width; j0 += kScanBlock) {
    uint64_t bits = crossing_bits(zl + j0, zh + j0, scan_block(width, j0), kind);
    for (; bits != 0; bits &= bits - 1) {
      const int64_t j = j0 + lowest_bit(bits);
      for (int i = 0; i < nt; ++i) {
        const T thr = threshold_value<T>(kind, i);
        if (!may_cross(zl[j], zh[j], thr)) continue;
        const T t = tl + (th - tl) * ((thr - zl[j]) / (zh[j] - zl[j]));
        if (t > tl + tol && t < th - tol) buf[c++] = t;
      }
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

// The child c's midpoint as a fraction of the parent piece [tl, th] (children are
// separated by the n_bp sorted breakpoints bp). Patterns and slopes are read there: never
// at a breakpoint, so ties and rounding at the cut cannot flip a bit.
template <class T>
FASTMEM_HD inline T child_midpoint(const T* bp, int64_t n_bp, int64_t c, T tl, T th) {
  const T clo = c == 0 ? tl : bp[c - 1];
  const T chi = c == n_bp ? th : bp[c];
  return ((clo + (chi - clo) / T(2)) - tl) / (th - tl);
}

// Bit b of a neuron's state at child c's midpoint (the expression emit_children_kind
// evaluates), and the first child where it differs from child 0's, or 0 if none: each bit
// is one comparison of z with a threshold, z is affine along the piece and the midpoints
// do not decrease, so the bit changes once at most (binary search).
template <class T, int KIND>
FASTMEM_HD inline uint64_t state_bit_at_child(T zl, T dz, const T* bp, int64_t n_bp, int64_t c,
                                              T tl, T th, int b) {
  return (neuron_state(zl + child_midpoint(bp, n_bp, c, tl, th) * dz, KIND) >> b) & 1ULL;
}

template <class T, int KIND>
FASTMEM_HD inline int64_t state_bit_switch(T zl, T dz, const T* bp, int64_t n_bp, T tl, T th,
                                           int b) {
  const uint64_t first = state_bit_at_child<T, KIND>(zl, dz, bp, n_bp, int64_t(0), tl, th, b);
  if (state_bit_at_child<T, KIND>(zl, dz, bp, n_bp, n_bp, tl, th, b) == first) return 0;
  int64_t lo = 1, hi = n_bp;  // the switch is in [lo, hi]
  while (lo < hi) {
    const int64_t c = lo + (hi - lo) / 2;
    if (state_bit_at_child<T, KIND>(zl, dz, bp, n_bp, c, tl, th, b) == first)
      lo = c + 1;
    else
      hi = c;
  }
  return lo;
}

// Emits the n_bp + 1 children of one piece (ends tl < th, values zl, zh at its vertices).
// Children pieces go to out_* from index 0 (pattern words copied from the parent, this
// layer's bits ORed in from `bit_offset`); new vertices go to out_vt from index 0: the
// piece's left vertex, then its n_bp breakpoints, then (when `last`, the piece ends its
// segment) its right vertex. out_h points at the piece's left vertex in the OLD vertex
// layout: the activations at zl go there and (when `last`) those at zh to the next row.
// With write_values false out_h is not written (the last hidden layer of a pure count).
// out_h rows have h_cols >= width entries; a column beyond width is set to 1 so that the
// next layer's GEMM adds its bias (no separate pass over z). cand: room for
// 2 * count_crossings_row entries (the neurons that may cross, then the children where
// their bits change). KIND is a template argument so that the per-neuron loops
// carry no switch (they vectorise); emit_children_row dispatches once per piece.
template <class T, int KIND>
FASTMEM_HD inline void emit_children_kind(const T* zl, const T* zh, int64_t width, T tl, T th,
                                          int64_t seg, bool last, const uint64_t* parent_codes,
                                          int64_t n_words, const T* bp, int64_t n_bp, T slope,
                                          int64_t bit_offset, bool write_values, T* out_vt,
                                          int64_t* out_seg, uint64_t* out_codes, T* out_h,
                                          int64_t h_cols, int64_t* cand) {
  constexpr int bpn = bits_per_neuron(KIND);
  // Child 0: the parent's words, this layer's bits from its midpoint, gathered in a
  // register and ORed in one word at a time.
  {
    const T r = child_midpoint(bp, n_bp, int64_t(0), tl, th);
    out_seg[0] = seg;
    out_vt[0] = tl;
    for (int64_t w = 0; w < n_words; ++w) out_codes[w] = parent_codes[w];
    if constexpr (bpn == 1) {
      // 64 neurons at a time: states into bytes (vectorised), one word of bits, ORed in
      // at its bit offset (straddling two words when the layer does not start a word).
      for (int64_t j0 = 0; j0 < width; j0 += kScanBlock) {
        const int64_t nb = scan_block(width, j0);
        uint8_t flags[kScanBlock];
        for (int64_t j = 0; j < nb; ++j)
          flags[j] = uint8_t(neuron_state(zl[j0 + j] + r * (zh[j0 + j] - zl[j0 + j]), KIND));
        const uint64_t bits = pack_flags64(flags, nb);
        const int64_t g = bit_offset + j0;
        const int sh = int(g & 63);
        out_codes[g >> 6] |= bits << sh;
        if (sh != 0 && (bits >> (64 - sh)) != 0) out_codes[(g >> 6) + 1] |= bits >> (64 - sh);
      }
    } else {  // two bits per neuron
      int64_t word = bit_offset >> 6;
      uint64_t acc = 0;
      for (int64_t j = 0; j < width; ++j) {
        const uint64_t state = neuron_state(zl[j] + r * (zh[j] - zl[j]), KIND);
        for (int b = 0; b < bpn; ++b) {
          const int64_t g = bit_offset + j * bpn + b;
          if ((g >> 6) != word) {
            out_codes[word] |= acc;
            word = g >> 6;
            acc = 0;
          }
          acc |= ((state >> b) & 1ULL) << (g & 63);
        }
      }
      if (width > 0) out_codes[word] |= acc;
    }
  }
  if (n_bp > 0) {
    // Later children differ from their left neighbour only in the neurons that may cross
    // a threshold inside the piece (the others keep one side: their bits are child 0's),
    // and each of their bits changes at one child at most (state_bit_switch): the
    // changes are listed (c * width + j, after the candidates in cand), sorted, and each
    // child copies its left neighbour's words and re-evaluates only the neurons listed
    // for it -- the states a child-by-child evaluation of every candidate gives, without
    // its n_bp x candidates cost (both in the hundreds at a first layer).
    const int64_t n_cand = list_candidates(zl, zh, width, KIND, cand);
    int64_t* changes = cand + n_cand;
    int64_t n_changes = 0;
    for (int64_t q = 0; q < n_cand; ++q) {
      const int64_t j = cand[q];
      int64_t at[2] = {0, 0};
      for (int b = 0; b < bpn; ++b)
        at[b] = state_bit_switch<T, KIND>(zl[j], zh[j] - zl[j], bp, n_bp, tl, th, b);
      for (int b = 0; b < bpn; ++b) {
        if (at[b] == 0 || (b == 1 && at[1] == at[0])) continue;
        changes[n_changes++] = at[b] * width + j;
      }
    }
    shell_sort(changes, n_changes);
    int64_t next = 0;
    for (int64_t c = 1; c <= n_bp; ++c) {
      out_seg[c] = seg;
      out_vt[c] = bp[c - 1];
      uint64_t* codes = out_codes + c * n_words;
      for (int64_t w = 0; w < n_words; ++w) codes[w] = codes[w - n_words];
      if (next == n_changes || changes[next] / width != c) continue;
      const T r = child_midpoint(bp, n_bp, c, tl, th);
      for (; next < n_changes && changes[next] / width == c; ++next) {
        const int64_t j = changes[next] % width;
        const uint64_t state = neuron_state(zl[j] + r * (zh[j] - zl[j]), KIND);
        for (int b = 0; b < bpn; ++b) {
          const int64_t g = bit_offset + j * bpn + b;
          const uint64_t bit = 1ULL << (g & 63);
          codes[g >> 6] = (codes[g >> 6] & ~bit) | (((state >> b) & 1ULL) << (g & 63));
        }
      }
    }
  }
  if (last) out_vt[n_bp + 1] = th;
  if (write_values) {  // the piece's own vertices, for the next layer's GEMM
    if (h_cols > width) out_h[width] = T(1);  // the bias column of that GEMM
    for (int64_t j = 0; j < width; ++j) out_h[j] = activate(zl[j], KIND, slope);
    if (last) {
      T* h = out_h + h_cols;
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
                                         T* out_h, int64_t h_cols, int64_t* cand) {
  with_kind(kind, [&](auto k) {
    emit_children_kind<T, decltype(k)::value>(zl, zh, width, tl, th, seg, last, parent_codes,
                                              n_words, bp, n_bp, slope, bit_offset, write_values,
                                              out_vt, out_seg, out_codes, out_h, h_cols, cand);
  });
}

// Pass 4: the next layer's pre-activations (width_next of them, next = W h + b) at the new
// vertices of one piece, from their values znl, znh at the piece's ends (the GEMM over the
// old vertices). Along the piece, parametrised by r in [0, 1], the current layer's z is
// affine (slope dz = zh - zl) and on child c the next layer has slope
//   g_c = W (d_c * dz),   d_c = the activation's derivative at child c's midpoint,
// so g_c = g_{c-1} + sum over the neurons j whose derivative flips at breakpoint c of
// (d_c,j - d_{c-1},j) dz_j W[:, j]. Summing the slopes over the children gives
//   g_0 = (znh - znl) - sum over flips (1 - r_c) (d_c,j - d_{c-1},j) dz_j W[:, j],
// and the values at the breakpoints follow by next(r_c) = next(r_{c-1}) + (r_c - r_{c-1})
// g_{c-1}: rounding grows with the number of breakpoints of the piece, not with the depth.
// A child on which every neuron has d_j dz_j == 0 is flat (e.g. all ReLUs off): its
// vertices get the direct value b + sum_j W[:, j] h_j (the GEMM's at the piece's ends), so
// an exactly constant output (a dead region giving exactly b) stays exact.
// Only neurons that may cross a threshold inside the piece can flip; they are listed in
// `scratch` (room for 2 * count_crossings_row entries: at most that many candidates, then
// at most that many flips). wt is [W | b] transposed, (width + 1, width_next), so that
// W[:, j] is a contiguous row and b the last one. out: the piece's left vertex, its n_bp
// breakpoints, then (when `last`) its right vertex, width_next entries each. wt may also be
// sparse by columns (Columns). The running
// slope is kept in the last breakpoint's row, which is written last (element by element,
// in place).
// The next layer's linear part by columns (column j: how its width_next outputs depend on
// neuron j) and its bias: dense, wt = [W | b] transposed (width + 1, width_next), so that
// W[:, j] is a contiguous row and b the last one; or sparse (ptr != nullptr), column j's
// nonzeros at idx[ptr[j] .. ptr[j + 1]) with values val (each output at most once per
// column: e.g. a convolution, whose column is the flipped neuron's receptive field), the
// bias apart. Sparse and dense give equal values: an entry left out would add f * 0.
template <class T>
struct Columns {
  const T* wt;
  int64_t width, width_next;
  const int64_t* ptr;
  const int64_t* idx;
  const T* val;
  const T* b;
  // Where the op after reads the carried values against their bias (fastmem._kinds.
  // carry_snap): snap_to[k] the value output k takes where rounding cannot tell it from
  // that (its bias; NaN: never), nullptr: none (float64 only); snap_unit, snap_w: the
  // bands' factors (carry_band, snap_row).
  const T* snap_to = nullptr;
  T snap_unit = T(0);
  T snap_w = T(0);

  FASTMEM_HD const T* bias() const { return ptr ? b : wt + width * width_next; }

  // |W[k, j]| (sparse: a binary search of column j's increasing outputs; 0 if absent)
  FASTMEM_HD T abs_weight(int64_t j, int64_t k) const {
    T w = T(0);
    if (ptr) {
      const int64_t lo = lower_bound_index(idx, ptr[j], ptr[j + 1], k);
      if (lo < ptr[j + 1] && idx[lo] == k) w = val[lo];
    } else {
      w = wt[j * width_next + k];
    }
    return w < T(0) ? -w : w;
  }

  // g -= f W[:, j]
  FASTMEM_HD void sub(int64_t j, T f, T* g) const {
    if (ptr) {
      for (int64_t q = ptr[j]; q < ptr[j + 1]; ++q) g[idx[q]] -= f * val[q];
    } else {
      const T* wj = wt + j * width_next;
      for (int64_t k = 0; k < width_next; ++k) g[k] -= f * wj[k];
    }
  }

  // g += f W[:, j]
  FASTMEM_HD void add(int64_t j, T f, T* g) const {
    if (ptr) {
      for (int64_t q = ptr[j]; q < ptr[j + 1]; ++q) g[idx[q]] += f * val[q];
    } else {
      const T* wj = wt + j * width_next;
      for (int64_t k = 0; k < width_next; ++k) g[k] += f * wj[k];
    }
  }
};

template <class T>
FASTMEM_HD inline Columns<T> dense_columns(const T* wt, int64_t width, int64_t width_next) {
  return {wt, width, width_next, nullptr, nullptr, nullptr, nullptr};
}

constexpr double kSnapLargest = 1e8;

template <class T>
FASTMEM_HD inline T sqrt_hd(T x) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}

// The rounding band of carry_to_breakpoints' values for the whole piece (fastmem._kinds.
// carry_snap): nu (3 max_k (|znl_k| + |znh_k|) + snap_w max_j max(|zl_j|, |zh_j|)), j over
// the candidates cand (only they flip: the rank-1 terms), nu = snap_unit 8 sqrt(n_ops),
// n_ops = 2 n_flips + n_bp + 4 the operations a value sums; snap_row refines it per
// output. -1 (nothing is snapped) where it is not finite, or where the values exceed
// kSnapLargest (fastmem._engine.LARGE_VALUES: there float64 rounding moves crossings near
// the data and the Python layer checks the walk's pieces against the forward pass; a
// band that wide would set real values to the bias).
template <class T>
FASTMEM_HD inline T carry_band(const T* zl, const T* zh, const int64_t* cand, int64_t n_cand,
                               const T* znl, const T* znh, int64_t width_next, T nu,
                               const Columns<T>& wt) {
  T pz = T(0), pn = T(0);
  for (int64_t q = 0; q < n_cand; ++q) {
    const int64_t j = cand[q];
    const T a = zl[j] < T(0) ? -zl[j] : zl[j];
    const T b = zh[j] < T(0) ? -zh[j] : zh[j];
    const T m = a > b ? a : b;
    pz = m > pz ? m : pz;
  }
  for (int64_t k = 0; k < width_next; ++k) {
    const T m = (znl[k] < T(0) ? -znl[k] : znl[k]) + (znh[k] < T(0) ? -znh[k] : znh[k]);
    pn = m > pn ? m : pn;
  }
  if (!(pn <= T(kSnapLargest) && pz <= T(kSnapLargest))) return T(-1);
  const T band = nu * (T(3) * pn + wt.snap_w * pz);
  return band - band == T(0) ? band : T(-1);
}

// A carried row's values within their own band of their snap_to value take it where the
// output is that value on a whole child next to the vertex (the value before, `prev`, or
// after, `next`, within the band too): an output exactly its bias on a child. The piece's
// band `band` (carry_band) screens; an output it passes gets its own: nu (3 (|znl_k| +
// |znh_k|) + 4 ds sum_f (|zl_j| + |zh_j|) |W[k, j]|), the sum over the piece's flips f
// (flips[f] % width = j: the rank-1 terms that reached it, each at most ds |dz_j|
// |W[k, j]| and met twice), ds the largest change of the activation's slope.
template <class T>
FASTMEM_HD inline void snap_row(T* row, const T* prev, const T* next, const T* znl,
                                const T* znh, const T* zl, const T* zh,
                                int64_t width, const int64_t* flips, int64_t n_flips, T nu,
                                T ds, const Columns<T>& wt, int64_t width_next, T band) {
  const T* to = wt.snap_to;
  for (int64_t k = 0; k < width_next; ++k) {
    const T d = row[k] - to[k];
    if (!((d <= band) & (-d <= band))) continue;  // NaN (never snapped) too
    T a = T(0);
    for (int64_t f = 0; f < n_flips; ++f) {
      const int64_t j = flips[f] % width;
      const T m = (zl[j] < T(0) ? -zl[j] : zl[j]) + (zh[j] < T(0) ? -zh[j] : zh[j]);
      a += m * wt.abs_weight(j, k);
    }
    const T e = (znl[k] < T(0) ? -znl[k] : znl[k]) + (znh[k] < T(0) ? -znh[k] : znh[k]);
    const T own = nu * (T(3) * e + T(4) * ds * a);
    if (!((d <= own) & (-d <= own))) continue;
    const T dp = prev[k] - to[k];
    const T dn = next[k] - to[k];
    if (((dp <= own) & (-dp <= own)) | ((dn <= own) & (-dn <= own))) row[k] = to[k];
  }
}

template <class T>
FASTMEM_HD inline bool child_is_flat(const T* zl, const T* zh, const int64_t* cand,
                                     int64_t n_cand, T mid, int kind, T slope) {
  for (int64_t q = 0; q < n_cand; ++q) {
    const int64_t j = cand[q];
    const T dz = zh[j] - zl[j];
    if (activation_slope(zl[j] + mid * dz, kind, slope) * dz != T(0)) return false;
  }
  return true;
}

// Which side of threshold `thr` a neuron is on at child c's midpoint (the branch tests of
// activation_slope: z > 0 for ReLU-type units, z > -1 and z < 1 for hard-tanh).
template <class T>
FASTMEM_HD inline bool side_at_child(T zl, T dz, const T* bp, int64_t n_bp, int64_t c, T tl,
                                     T th, T thr, bool upper) {
  const T z = zl + child_midpoint(bp, n_bp, c, tl, th) * dz;
  return upper ? z < thr : z > thr;
}

// The first child whose side of `thr` differs from child 0's, or 0 if none: z is affine
// along the piece and the midpoints increase, so the side changes at most once (binary
// search; log2(n_bp) evaluations instead of one per child).
template <class T>
FASTMEM_HD inline int64_t side_switch(T zl, T dz, const T* bp, int64_t n_bp, T tl, T th, T thr,
                                      bool upper) {
  const bool first = side_at_child(zl, dz, bp, n_bp, int64_t(0), tl, th, thr, upper);
  if (side_at_child(zl, dz, bp, n_bp, n_bp, tl, th, thr, upper) == first) return 0;
  int64_t lo = 1, hi = n_bp;  // the switch is in [lo, hi]
  while (lo < hi) {
    const int64_t c = lo + (hi - lo) / 2;
    if (side_at_child(zl, dz, bp, n_bp, c, tl, th, thr, upper) == first)
      lo = c + 1;
    else
      hi = c;
  }
  return lo;
}

// The change of neuron j's activation slope from child c - 1 to child c, times dz.
template <class T>
FASTMEM_HD inline T slope_step(T zl, T dz, const T* bp, int64_t n_bp, int64_t c, T tl, T th,
                               int kind, T slope) {
  const T now = activation_slope(zl + child_midpoint(bp, n_bp, c, tl, th) * dz, kind, slope);
  const T before =
      activation_slope(zl + child_midpoint(bp, n_bp, c - 1, tl, th) * dz, kind, slope);
  return (now - before) * dz;
}

// Whether a neuron that cannot flip (not among the sorted candidates cand) has
// d_j dz_j != 0 along the piece: then no child of the piece is flat. Such a neuron keeps
// one side, so its slope at zl holds along the piece.
template <class T>
FASTMEM_HD inline bool live_elsewhere(const T* zl, const T* zh, int64_t width,
                                      const int64_t* cand, int64_t n_cand, int kind, T slope) {
  for (int64_t j = 0, q = 0; j < width; ++j) {
    if (q < n_cand && cand[q] == j) {
      ++q;
      continue;
    }
    if (activation_slope(zl[j], kind, slope) * (zh[j] - zl[j]) != T(0)) return true;
  }
  return false;
}

// The children of a piece where neuron j's activation slope changes (its flips: at most
// one per threshold), and each change times dz_j (slope_step), into c[] and step[];
// returns how many (0 to 2). Only a candidate (may_cross) can flip.
template <class T>
FASTMEM_HD inline int neuron_flips(T zl, T zh, const T* bp, int64_t n_bp, T tl, T th, int kind,
                                   T slope, int64_t* c, T* step) {
  const int nt = n_thresholds(kind);
  const T dz = zh - zl;
  int64_t at[2] = {0, 0};
  for (int i = 0; i < nt; ++i) {
    const T thr = threshold_value<T>(kind, i);
    if (may_cross(zl, zh, thr)) at[i] = side_switch(zl, dz, bp, n_bp, tl, th, thr, i == 1);
  }
  int n = 0;
  for (int i = 0; i < nt; ++i) {
    if (at[i] == 0 || (i == 1 && at[1] == at[0])) continue;
    const T st = slope_step(zl, dz, bp, n_bp, at[i], tl, th, kind, slope);
    if (st == T(0)) continue;
    c[n] = at[i];
    step[n++] = st;
  }
  return n;
}

template <class T>
FASTMEM_HD inline void carry_to_breakpoints(const T* zl, const T* zh, int64_t width, T tl, T th,
                                            const T* bp, int64_t n_bp, int kind, T slope,
                                            const Columns<T>& wt, int64_t width_next,
                                            const T* znl, const T* znh, int64_t* scratch,
                                            T* out);

// The next layer's values at the piece's vertices (see carry_to_breakpoints); with
// kind_next >= 0 also count_crossings_row of the next layer for each of the n_bp + 1
// children (the next layer's pieces) into child_counts, while their rows are in cache.
template <class T>
FASTMEM_HD inline void next_preactivations_row(const T* zl, const T* zh, int64_t width, T tl,
                                               T th, const T* bp, int64_t n_bp, int kind,
                                               T slope, const Columns<T>& wt,
                                               int64_t width_next,
                                               const T* znl, const T* znh, bool last,
                                               int64_t* scratch, T* out, int kind_next,
                                               int64_t* child_counts) {
  for (int64_t k = 0; k < width_next; ++k) out[k] = znl[k];
  if (last) {
    T* right = out + (n_bp + 1) * width_next;
    for (int64_t k = 0; k < width_next; ++k) right[k] = znh[k];
  }
  if (n_bp > 0)
    carry_to_breakpoints(zl, zh, width, tl, th, bp, n_bp, kind, slope, wt, width_next, znl, znh,
                         scratch, out);
  if (kind_next < 0) return;
  for (int64_t c = 0; c <= n_bp; ++c) {
    const T* hi = c < n_bp ? out + (c + 1) * width_next : znh;
    child_counts[c] = count_crossings_row(out + c * width_next, hi, width_next, kind_next);
  }
}

// The values at the n_bp >= 1 breakpoints (out rows 1..n_bp; row 0 holds znl).
template <class T>
FASTMEM_HD inline void carry_to_breakpoints(const T* zl, const T* zh, int64_t width, T tl, T th,
                                            const T* bp, int64_t n_bp, int kind, T slope,
                                            const Columns<T>& wt, int64_t width_next,
                                            const T* znl, const T* znh, int64_t* scratch,
                                            T* out) {
  int64_t* cand = scratch;
  const int64_t n_cand = list_candidates(zl, zh, width, kind, cand);
  const bool live = live_elsewhere(zl, zh, width, cand, n_cand, kind, slope);
  // g_0, and the flips (c * width + j) in order of j; then sorted by c for the sweep.
  int64_t* flips = cand + n_cand;
  int64_t n_flips = 0;
  const T span = th - tl;
  T* g = out + n_bp * width_next;
  for (int64_t k = 0; k < width_next; ++k) g[k] = znh[k] - znl[k];
  for (int64_t q = 0; q < n_cand; ++q) {
    const int64_t j = cand[q];
    // Only thresholds counted by count_crossings_row: at most that many flips fit scratch.
    int64_t c[2];
    T step[2];
    const int nf = neuron_flips(zl[j], zh[j], bp, n_bp, tl, th, kind, slope, c, step);
    for (int e = 0; e < nf; ++e) {
      flips[n_flips++] = c[e] * width + j;
      const T f = (T(1) - (bp[c[e] - 1] - tl) / span) * step[e];
      wt.sub(j, f, g);
    }
  }
  shell_sort(flips, n_flips);
  // the snap (Columns::snap_to) of row c - 1 once row c is computed from it: a snapped
  // value moves no later row
  const T nu = wt.snap_to ? wt.snap_unit * T(8) * sqrt_hd(T(2 * n_flips + n_bp + 4)) : T(0);
  const T band =
      wt.snap_to ? carry_band(zl, zh, cand, n_cand, znl, znh, width_next, nu, wt) : T(-1);
  const T ds = kind == kLeakyRelu ? (T(1) - slope > T(1) ? T(1) - slope
                                     : slope - T(1) > T(1) ? slope - T(1) : T(1))
                                  : T(1);
  T r_prev = T(0);
  int64_t next_flip = 0;
  bool near_prev = false;  // row c - 1 has a value within the band (row 0: the old vertex)
  for (int64_t c = 1; c <= n_bp; ++c) {
    const T r = (bp[c - 1] - tl) / span;
    const T dr = r - r_prev;
    const T* prev = out + (c - 1) * width_next;
    T* cur = out + c * width_next;  // == g when c == n_bp: element k reads g[k] first
    bool near = false;  // the screen of row c, in the same vectorised pass
    if (band >= T(0)) {
      for (int64_t k = 0; k < width_next; ++k) {
        cur[k] = prev[k] + dr * g[k];
        const T d = cur[k] - wt.snap_to[k];
        near |= (d <= band) & (-d <= band);
      }
    } else {
      for (int64_t k = 0; k < width_next; ++k) cur[k] = prev[k] + dr * g[k];
    }
    if (near_prev)
      snap_row(out + (c - 1) * width_next, out + (c - 2) * width_next, cur, znl, znh, zl, zh,
               width, flips, n_flips, nu, ds, wt, width_next, band);
    near_prev = near;
    r_prev = r;
    if (c == n_bp) break;
    for (; next_flip < n_flips && flips[next_flip] / width == c; ++next_flip) {
      const int64_t j = flips[next_flip] % width;
      const T f = slope_step(zl[j], zh[j] - zl[j], bp, n_bp, c, tl, th, kind, slope);
      wt.add(j, f, g);
    }
  }
  if (near_prev)  // the last breakpoint: its next vertex is the piece's right one
    snap_row(out + n_bp * width_next, out + (n_bp - 1) * width_next, znh, znl, znh, zl, zh,
             width, flips, n_flips, nu, ds, wt, width_next, band);
  if (live) return;
  for (int64_t c = 0; c <= n_bp; ++c) {
    const T mid = child_midpoint(bp, n_bp, c, tl, th);
    if (!child_is_flat(zl, zh, cand, n_cand, mid, kind, slope)) continue;
    T* left = out + c * width_next;
    T* right = left + width_next;
    if (c == 0) {
      for (int64_t k = 0; k < width_next; ++k) right[k] = znl[k];
    } else if (c == n_bp) {
      for (int64_t k = 0; k < width_next; ++k) left[k] = znh[k];
    } else {
      const T* bias = wt.bias();
      for (int64_t k = 0; k < width_next; ++k) left[k] = bias[k];
      for (int64_t j = 0; j < width; ++j) {
        const T h = activate(zl[j] + mid * (zh[j] - zl[j]), kind, slope);
        if (h == T(0)) continue;
        wt.add(j, h, left);
      }
      for (int64_t k = 0; k < width_next; ++k) right[k] = left[k];
    }
  }
}

// ---------------------------------------------------------------- the chained pass
// After a layer whose next linear part is sparse by columns (a convolution: a flipped
// neuron's column is its receptive field), the next activation's pass needs the following
// dense layer at the OLD vertices (the GEMM before next_preactivations). Along a segment
// those values change little from vertex to vertex in structure: on each child of each
// piece the dense layer's output moves with slope  W (d * s)  (d: the activation's
// derivative there, s = dz / dt), and from the last child of one piece to the first child
// of the next, d * s changes only in
//   * the neurons whose slope s changes at the shared vertex: the receptive field of the
//     neuron of the layer before that flipped there (its `cause`, breakpoint_causes_row);
//   * the neurons whose derivative d changes there (a crossing within tol of the vertex,
//     dropped by collect_crossings_row): candidates of one of the two pieces.
// So chain_segment walks a segment's vertices in order carrying the slope, with one rank-1
// update per changed neuron instead of a width x width_next GEMM row per vertex. A vertex
// with no single cause (a segment's first vertex, several neurons flipping at one
// breakpoint, an old vertex of the layer before), after a piece with a possibly flat child
// (all d_j dz_j == 0 outside the candidates: an exactly constant output stays exact), and
// when rounding may have grown (below), takes the direct value b + W h instead (and the
// next slope directly). Rounding: a slope read off one piece's values, s_j = dz_j / span
// (the activation's flips inside a piece, the direct slope), is off by ~eps |z_j| / span
// and moves every later vertex by that much per unit t; so a direct value is also taken
// where the sum over such reads of (distance travelled since) / span exceeds `period`
// (with pieces of similar length, about every `period` vertices; sooner after short ones).

// Per breakpoint c = 1..n_bp of one piece: the one neuron whose activation slope changes
// there (the flips of carry_to_breakpoints), -2 if none, -1 if several, into out[c - 1];
// and into out_val[c - 1] the change of that neuron's output slope per unit t (the step
// carry_to_breakpoints applies, over the piece's span). cand: room for
// count_crossings_row entries.
template <class T>
FASTMEM_HD inline void breakpoint_causes_row(const T* zl, const T* zh, int64_t width, T tl, T th,
                                             const T* bp, int64_t n_bp, int kind, T slope,
                                             int64_t* cand, int64_t* out, T* out_val) {
  for (int64_t c = 0; c < n_bp; ++c) {
    out[c] = -2;
    out_val[c] = T(0);
  }
  if (n_bp == 0) return;
  const int64_t n_cand = list_candidates(zl, zh, width, kind, cand);
  for (int64_t q = 0; q < n_cand; ++q) {
    const int64_t j = cand[q];
    int64_t c[2];
    T step[2];
    const int nf = neuron_flips(zl[j], zh[j], bp, n_bp, tl, th, kind, slope, c, step);
    for (int e = 0; e < nf; ++e) {
      out[c[e] - 1] = out[c[e] - 1] == -2 ? j : -1;
      out_val[c[e] - 1] = step[e] / (th - tl);
    }
  }
}

// b + W h(z) for one vertex (the direct value of the dense layer after the activation).
template <class T>
FASTMEM_HD inline void chain_direct_value(const T* z, int64_t width, int kind, T slope,
                                          const Columns<T>& wt, int64_t width_next, T* out) {
  const T* bias = wt.bias();
  for (int64_t k = 0; k < width_next; ++k) out[k] = bias[k];
  for (int64_t j = 0; j < width; ++j) {
    const T h = activate(z[j], kind, slope);
    if (h != T(0)) wt.add(j, h, out);
  }
}

// W (d_0 * dz) / span for a piece (d_0 at its first child): the slope per unit t there.
template <class T>
FASTMEM_HD inline void chain_direct_slope(const T* zl, const T* zh, int64_t width, T tl, T th,
                                          const T* bp, int64_t n_bp, int kind, T slope,
                                          const Columns<T>& wt, int64_t width_next, T* gu) {
  const T mid = child_midpoint(bp, n_bp, int64_t(0), tl, th);
  for (int64_t k = 0; k < width_next; ++k) gu[k] = T(0);
  for (int64_t j = 0; j < width; ++j) {
    const T dz = zh[j] - zl[j];
    const T f = activation_slope(zl[j] + mid * dz, kind, slope) * dz;
    if (f != T(0)) wt.add(j, f, gu);
  }
  const T span = th - tl;
  for (int64_t k = 0; k < width_next; ++k) gu[k] /= span;
}

// One segment's values of the dense layer at its old vertices (zn rows v = i + s for its
// pieces i0 <= i < i1, and the last vertex), see above. cause, cause_val: per old vertex,
// from breakpoint_causes_row of the layer before (-1: an anchor); the receptive fields:
// neuron j's at rf_idx[rf_ptr[j] .. rf_ptr[j + 1]) with weights rf_val, so that where the
// activation's derivative d_j is the same on both sides of the vertex, d_j s_j changes by
// exactly d_j rf_val cause_val (slopes from the values' differences would carry their
// rounding, over short pieces, into every later vertex); cand: room for 2 * width entries;
// mark: width zeros (left zero); gu: width_next entries.
template <class T>
FASTMEM_HD inline void chain_segment(const T* z, const T* vt, int64_t s, int64_t i0, int64_t i1,
                                     int64_t width, const T* buf, const int64_t* offsets,
                                     const int64_t* child_offsets, int kind, T slope,
                                     const Columns<T>& wt, int64_t width_next,
                                     const int64_t* cause, const T* cause_val,
                                     const int64_t* rf_ptr, const int64_t* rf_idx,
                                     const T* rf_val, int64_t period, int64_t* cand,
                                     uint8_t* mark, T* gu, T* zn) {
  chain_direct_value(z + (i0 + s) * width, width, kind, slope, wt, width_next,
                     zn + (i0 + s) * width_next);
  bool direct = true;
  // the candidates of this piece, and of the next (listed for the step to it, kept)
  int64_t* cur = cand;
  int64_t* nxt = cand + width;
  int64_t n_cached = -1;
  T amp = T(0), acc = T(0);  // sum of 1 / span over the slopes read; of distance / span
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t v = i + s;
    const T* zl = z + v * width;
    const T* zh = zl + width;
    const T tl = vt[v], th = vt[v + 1], span = th - tl;
    const T* bp = buf + offsets[i];
    const int64_t n_bp = child_offsets[i + 1] - child_offsets[i] - 1;
    const T* znl = zn + v * width_next;
    T* znh = zn + (v + 1) * width_next;
    if (direct) {
      chain_direct_slope(zl, zh, width, tl, th, bp, n_bp, kind, slope, wt, width_next, gu);
      amp = T(1) / span;
      acc = T(0);
    }
    // across the piece: znh = znl + g_0 + sum over flips (1 - r_c) step W[:, j] (the sum
    // carry_to_breakpoints inverts), the slope on its last child g_0 + sum step W[:, j]
    for (int64_t k = 0; k < width_next; ++k) {
      const T g0 = gu[k] * span;
      znh[k] = znl[k] + g0;
      gu[k] = g0;
    }
    const int64_t n_cand = n_cached >= 0 ? n_cached : list_candidates(zl, zh, width, kind, cur);
    n_cached = -1;
    const bool live = live_elsewhere(zl, zh, width, cur, n_cand, kind, slope);
    if (n_bp > 0) {
      for (int64_t q = 0; q < n_cand; ++q) {
        const int64_t j = cur[q];
        int64_t c[2];
        T step[2];
        const int nf = neuron_flips(zl[j], zh[j], bp, n_bp, tl, th, kind, slope, c, step);
        for (int e = 0; e < nf; ++e) {
          wt.add(j, (T(1) - (bp[c[e] - 1] - tl) / span) * step[e], znh);
          wt.add(j, step[e], gu);
          amp += T(1) / span;
        }
      }
    }
    for (int64_t k = 0; k < width_next; ++k) gu[k] /= span;
    acc += amp * span;
    if (i + 1 == i1) break;
    const int64_t cv = cause[v + 1];
    direct = !live || cv == -1 || acc > T(period);
    if (direct) {
      chain_direct_value(zh, width, kind, slope, wt, width_next, znh);
      continue;
    }
    // to the next piece's first child: d * s changes in the cause's receptive field and
    // where d changes at the vertex (candidates of either piece)
    const T* zh2 = zh + width;
    const T th2 = vt[v + 2], span2 = th2 - th;
    const T* bp2 = buf + offsets[i + 1];
    const int64_t n_bp2 = child_offsets[i + 2] - child_offsets[i + 1] - 1;
    const T mid_l = child_midpoint(bp, n_bp, n_bp, tl, th);
    const T mid_r = child_midpoint(bp2, n_bp2, int64_t(0), th, th2);
    const int64_t n_cand2 = list_candidates(zh, zh2, width, kind, nxt);
    const int64_t r0 = cv >= 0 ? rf_ptr[cv] : 0, r1 = cv >= 0 ? rf_ptr[cv + 1] : 0;
    const T step = cause_val[v + 1];
    // where d_j changes at the vertex, s_j on either side from the longer piece's values
    // (their rounding over the span enters every later vertex until the next direct one)
    const bool left_longer = span >= span2;
    for (int64_t q = r0; q < r1; ++q) {
      const int64_t j = rf_idx[q];
      mark[j] = 1;
      const T dz = zh[j] - zl[j], dz2 = zh2[j] - zh[j];
      const T a_l = activation_slope(zl[j] + mid_l * dz, kind, slope);
      const T a_r = activation_slope(zh[j] + mid_r * dz2, kind, slope);
      T d = a_l * (rf_val[q] * step);
      if (a_l != a_r) {
        const T change = rf_val[q] * step;  // s_r - s_l
        const T s_l = left_longer ? dz / span : dz2 / span2 - change;
        const T s_r = left_longer ? dz / span + change : dz2 / span2;
        d = a_r * s_r - a_l * s_l;
        amp += T(1) / (left_longer ? span : span2);
      }
      if (d != T(0)) wt.add(j, d, gu);
    }
    for (int64_t q = 0; q < n_cand + n_cand2; ++q) {
      const int64_t j = q < n_cand ? cur[q] : nxt[q - n_cand];
      if (mark[j]) continue;
      mark[j] = 1;
      const T dz = zh[j] - zl[j], dz2 = zh2[j] - zh[j];
      const T a_l = activation_slope(zl[j] + mid_l * dz, kind, slope);
      const T a_r = activation_slope(zh[j] + mid_r * dz2, kind, slope);
      if (a_l == a_r) continue;  // the same slope on both sides: nothing changes
      const T d = (a_r - a_l) * (left_longer ? dz / span : dz2 / span2);
      amp += T(1) / (left_longer ? span : span2);
      if (d != T(0)) wt.add(j, d, gu);
    }
    for (int64_t q = r0; q < r1; ++q) mark[rf_idx[q]] = 0;
    for (int64_t q = 0; q < n_cand; ++q) mark[cur[q]] = 0;
    for (int64_t q = 0; q < n_cand2; ++q) mark[nxt[q]] = 0;
    int64_t* t = cur;
    cur = nxt;
    nxt = t;
    n_cached = n_cand2;
  }
}

}  // namespace fastmem

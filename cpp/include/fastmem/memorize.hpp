// Kernels of the memorizing constructions (fastmem.memorize):
//
//  * a first-order linear recurrence  s_0 = beta_0,  s_i = alpha_i s_{i-1} + beta_i,
//    which is how the structured lower-triangular systems of Zhang et al. (and
//    their transposes) are solved in O(n) without forming the matrix;
//  * exact-as-possible evaluation of a one-dimensional ReLU sum
//    g(t) = sum_j w_j relu(t - b_j) at many points in O(n log n): prefix sums of
//    w and b*w in double-double arithmetic, then g(t) = t S_k - T_k with
//    k = #{j : b_j < t} found by binary search. The double-double sums make the
//    verification measure the network's error, not the verifier's;
//  * bit-packed coverage counting for the set-cover pruning of Dirksen et al.
//
// Every floating-point operation that must round identically on all backends
// goes through add_rn/sub_rn/mul_rn/div_rn: under nvcc they are the explicit
// round-to-nearest intrinsics, which forbids the compiler to contract a*b+c
// into an FMA (the host compilers do not contract without -mfma/-ffast-math).
#pragma once

#include <cstdint>

#include "fastmem/hd.hpp"
#include "fastmem/search.hpp"

// The popcount helpers are forced inline so that the CPU drivers' popcnt
// build (a function with __attribute__((target("popcnt")))) compiles them
// with the hardware instruction instead of a call to the generic routine.
#if defined(__CUDACC__)
#define FASTMEM_FORCE_INLINE __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define FASTMEM_FORCE_INLINE inline __attribute__((always_inline))
#else
#define FASTMEM_FORCE_INLINE inline
#endif

namespace fastmem {

FASTMEM_HD inline double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

FASTMEM_HD inline double sub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

FASTMEM_HD inline double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

FASTMEM_HD FASTMEM_FORCE_INLINE int popcount64(uint64_t x) {
#ifdef __CUDA_ARCH__
  return __popcll(x);
#else
  return __builtin_popcountll(x);
#endif
}

// s_0 = beta_0, s_i = alpha_i * s_{i-1} + beta_i (alpha_0 is ignored). Sequential
// by nature; O(n) time and no extra memory.
FASTMEM_HD inline void linear_recurrence_seq(const double* alpha, const double* beta, int64_t n,
                                             double* out) {
  if (n <= 0) return;
  double s = beta[0];
  out[0] = s;
  for (int64_t i = 1; i < n; ++i) {
    s = add_rn(mul_rn(alpha[i], s), beta[i]);
    out[i] = s;
  }
}

// ---------------------------------------------------------------- double-double
// Error-free transformations (Knuth's TwoSum, Dekker's TwoProduct with
// Veltkamp splitting: no FMA needed, so every backend gets the same bits).
FASTMEM_HD inline void two_sum(double a, double b, double& s, double& e) {
  s = add_rn(a, b);
  const double bb = sub_rn(s, a);
  e = add_rn(sub_rn(a, sub_rn(s, bb)), sub_rn(b, bb));
}

FASTMEM_HD inline void split(double a, double& hi, double& lo) {
  const double t = mul_rn(134217729.0, a);  // 2^27 + 1
  hi = sub_rn(t, sub_rn(t, a));
  lo = sub_rn(a, hi);
}

FASTMEM_HD inline void two_prod(double a, double b, double& p, double& e) {
  p = mul_rn(a, b);
  double ah, al, bh, bl;
  split(a, ah, al);
  split(b, bh, bl);
  e = add_rn(add_rn(add_rn(sub_rn(mul_rn(ah, bh), p), mul_rn(ah, bl)), mul_rn(al, bh)),
             mul_rn(al, bl));
}

// (hi, lo) += v
FASTMEM_HD inline void dd_add_d(double& hi, double& lo, double v) {
  double s, e;
  two_sum(hi, v, s, e);
  e = add_rn(e, lo);
  two_sum(s, e, hi, lo);
}

// Double-double prefix sums of w and b*w: prefix is (n + 1) x 4 with rows
// (S_hi, S_lo, T_hi, T_lo); row k holds the sums over j < k.
FASTMEM_HD inline void relu_sum_prefix_seq(const double* b, const double* w, int64_t n,
                                           double* prefix) {
  double sh = 0.0, sl = 0.0, th = 0.0, tl = 0.0;
  prefix[0] = prefix[1] = prefix[2] = prefix[3] = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    dd_add_d(sh, sl, w[j]);
    double p, e;
    two_prod(b[j], w[j], p, e);
    dd_add_d(th, tl, p);
    dd_add_d(th, tl, e);
    double* row = prefix + 4 * (j + 1);
    row[0] = sh;
    row[1] = sl;
    row[2] = th;
    row[3] = tl;
  }
}

// Number of sorted biases strictly below t: exactly the neurons with relu(t - b_j) > 0.
FASTMEM_HD inline int64_t count_below(const double* b, int64_t n, double t) {
  return lower_bound_index(b, int64_t(0), n, t);
}

// g(t) = t * S_k - T_k in double-double, rounded once to double.
FASTMEM_HD inline double relu_sum_at(double t, const double* b, int64_t n, const double* prefix) {
  const double* row = prefix + 4 * count_below(b, n, t);
  double p1, e1, p2, e2;
  two_prod(t, row[0], p1, e1);
  two_prod(t, row[1], p2, e2);
  double hi = p1, lo = 0.0;
  dd_add_d(hi, lo, e1);
  dd_add_d(hi, lo, p2);
  dd_add_d(hi, lo, e2);
  dd_add_d(hi, lo, -row[2]);
  dd_add_d(hi, lo, -row[3]);
  return add_rn(hi, lo);
}

// ------------------------------------------------------------------ set cover
// Dirksen et al.: neuron i separates a negative point x- from a positive point
// x+ when phi_i(x-) = 0 and phi_i(x+) = 1. With the layer-1 patterns packed in
// bits, the count is popcount(~neg & pos) (unused bits of pos are zero).
FASTMEM_HD FASTMEM_FORCE_INLINE int64_t separating_count(const uint64_t* neg, const uint64_t* pos,
                                           int64_t words) {
  int64_t c = 0;
  for (int64_t w = 0; w < words; ++w) c += popcount64(~neg[w] & pos[w]);
  return c;
}

// m[r] = min over positive rows s of separating_count(neg_r, pos_s).
FASTMEM_HD FASTMEM_FORCE_INLINE int64_t cover_margin_row(const uint64_t* neg, const uint64_t* pos,
                                           int64_t n_pos, int64_t words) {
  int64_t m = INT64_MAX;
  for (int64_t s = 0; s < n_pos; ++s) {
    const int64_t c = separating_count(neg, pos + s * words, words);
    if (c < m) m = c;
  }
  return m;
}

// Row r of the coverage matrix: bit s is set when second-layer neuron r fires
// on negative point s, i.e. -<U_r, phi(x_s)> + m_r / 2 >= 0  <=>  2 c <= m_r.
FASTMEM_HD FASTMEM_FORCE_INLINE void cover_row(const uint64_t* neg, int64_t r, int64_t n_neg, int64_t words,
                                 int64_t m_r, uint64_t* out_row) {
  const uint64_t* mine = neg + r * words;
  const int64_t out_words = (n_neg + 63) / 64;
  for (int64_t w = 0; w < out_words; ++w) out_row[w] = 0;
  for (int64_t s = 0; s < n_neg; ++s) {
    if (2 * separating_count(mine, neg + s * words, words) <= m_r)
      out_row[s >> 6] |= 1ULL << (s & 63);
  }
}

FASTMEM_HD FASTMEM_FORCE_INLINE int64_t cover_gain_row(const uint64_t* cover_row, const uint64_t* uncovered,
                                         int64_t words) {
  int64_t g = 0;
  for (int64_t w = 0; w < words; ++w) g += popcount64(cover_row[w] & uncovered[w]);
  return g;
}

// ------------------------------------------------- randomized second layer
// Dirksen, Finke & Genzel's randomized construction (the authors' algorithm.py):
// draw an uncovered negative point, build its neuron (U = ~code, margin m = min over
// positive codes of popcount(U & z)), drop every negative point it covers. Codes are
// bit-packed first-layer patterns (bit j of word j / 64; unused bits zero).

// Rule codes: kRuleCode fires when <U, z> < m (the authors' code), kRuleHalf when
// 2 <U, z> <= m (the slides' margin rule).
constexpr int64_t kRuleCode = 0;
constexpr int64_t kRuleHalf = 1;

FASTMEM_HD FASTMEM_FORCE_INLINE bool covers(int64_t count, int64_t m, int64_t rule) {
  return rule == kRuleCode ? count < m : 2 * count <= m;
}

// Word w of the threshold layer on one row of pre-activations z = x W^T: bit j - 64 w is
// 1[z_j + b_j >= 0] for 64 w <= j < min(64 w + 64, width); bits past the width are zero.
// NaN gives 0.
FASTMEM_HD inline uint64_t threshold_word(const double* z, const double* b, int64_t width,
                                          int64_t w) {
  const int64_t lo = w * 64;
  const int64_t hi = lo + 64 < width ? lo + 64 : width;
  uint64_t word = 0;
  for (int64_t j = lo; j < hi; ++j)
    word |= static_cast<uint64_t>(add_rn(z[j], b[j]) >= 0.0) << (j - lo);
  return word;
}

FASTMEM_HD inline void threshold_pack_row(const double* z, const double* b, int64_t width,
                                          uint64_t* out) {
  const int64_t words = (width + 63) / 64;
  for (int64_t w = 0; w < words; ++w) out[w] = threshold_word(z, b, width, w);
}

// separating_count restricted to the first `width` bits (the grid reads prefixes of
// the codes of its largest width).
FASTMEM_HD FASTMEM_FORCE_INLINE int64_t separating_count_prefix(const uint64_t* neg,
                                                               const uint64_t* pos,
                                                               int64_t width) {
  const int64_t full = width / 64;
  int64_t c = 0;
  for (int64_t w = 0; w < full; ++w) c += popcount64(~neg[w] & pos[w]);
  const int64_t rest = width - 64 * full;
  if (rest) c += popcount64(~neg[full] & pos[full] & ((1ULL << rest) - 1ULL));
  return c;
}

// One whole randomized construction as a walk over a permutation `order` of the negative
// points (drawing uniformly among the remaining candidates is, in distribution, walking
// a uniform permutation and skipping the points already tried or covered). state[i]:
// 0 untried and uncovered, 1 tried and uncovered (m = 0), 2 covered. Uses the first
// `width` bits of the codes. Returns the number of negative points left uncovered.
FASTMEM_HD inline int64_t cover_walk(const uint64_t* neg, int64_t n_neg, const uint64_t* pos,
                                     int64_t n_pos, int64_t words, int64_t width,
                                     const int64_t* order, int64_t rule, uint8_t* state) {
  for (int64_t i = 0; i < n_neg; ++i) state[i] = 0;
  int64_t covered = 0, hint = 0;
  for (int64_t t = 0; t < n_neg && covered < n_neg; ++t) {
    const int64_t i = order[t];
    if (i < 0 || i >= n_neg || state[i] != 0) continue;
    state[i] = 1;
    const uint64_t* mine = neg + i * words;
    // The positive point that last gave m = 0 is tried first: points it blocks are near
    // each other, and m = 0 ends the scan (the grid's failing cells are mostly such draws).
    int64_t m = separating_count_prefix(mine, pos + hint * words, width);
    for (int64_t s = 0; s < n_pos && m > 0; ++s) {
      const int64_t c = separating_count_prefix(mine, pos + s * words, width);
      if (c < m) m = c;
      if (c == 0) hint = s;
    }
    if (m <= 0 || n_pos == 0) continue;
    for (int64_t j = 0; j < n_neg; ++j) {
      if (state[j] == 2) continue;
      if (covers(separating_count_prefix(mine, neg + j * words, width), m, rule)) {
        state[j] = 2;
        ++covered;
      }
    }
  }
  return n_neg - covered;
}

// Second and third layer of the construction on one point's code: neuron k fires when
// bias_k - popcount(code & units_k) >= 0 and votes for its class owner_k.
FASTMEM_HD inline void threshold_votes_row(const uint64_t* code, const uint64_t* units,
                                           const double* bias, const int64_t* owner, int64_t k,
                                           int64_t words, int64_t n_classes, int64_t* votes) {
  for (int64_t c = 0; c < n_classes; ++c) votes[c] = 0;
  for (int64_t q = 0; q < k; ++q) {
    int64_t cnt = 0;
    const uint64_t* u = units + q * words;
    for (int64_t w = 0; w < words; ++w) cnt += popcount64(code[w] & u[w]);
    // added unconditionally (0 or 1): whether a neuron fires is a coin flip to a branch
    votes[owner[q]] += sub_rn(bias[q], static_cast<double>(cnt)) >= 0.0 ? 1 : 0;
  }
}

}  // namespace fastmem

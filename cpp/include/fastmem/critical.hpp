// Critical-sample kernels: activation with its derivative (the backward mask), the
// adversarial step (sign, counter-based noise, projection to the ball-and-box), the
// class-change check, and the per-neuron relaxations of IBP and CROWN.
//
// Noise: splitmix64 keyed by (seed, sample, stream, counter); a normal variate is
// the standardized sum of four 32-bit uniforms (Irwin-Hall, variance exactly 1),
// computed with integer and IEEE-exact double operations only, so every backend
// draws bit-identical values. See src/fastmem/_numba/critical.py (same math).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastmem/hd.hpp"
#include "fastmem/activations.hpp"
#include "fastmem/patterns.hpp"

namespace fastmem {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kC2 = 0xD1B54A32D192ED03ULL;

// The key of one (seed, sample, stream): the part of crit_rand64 its counter does not
// change, computed once per row by the step kernels.
FASTMEM_HD inline uint64_t crit_row_key(uint64_t seed, uint64_t sample, uint64_t stream) {
  const uint64_t h = mix64(seed + kGolden * (sample + 1));
  return mix64(h ^ (stream * kC2 + kGolden));
}

FASTMEM_HD inline uint64_t crit_rand_keyed(uint64_t key, uint64_t counter) {
  return mix64(key ^ (counter * kGolden + kC2));
}

FASTMEM_HD inline uint64_t crit_rand64(uint64_t seed, uint64_t sample, uint64_t stream,
                                       uint64_t counter) {
  return crit_rand_keyed(crit_row_key(seed, sample, stream), counter);
}

// An integer below 2^52 as a double, exactly, by its bits: 2^52 + k as a double's pattern,
// minus 2^52 (integer to double has no vector instruction below AVX-512).
FASTMEM_HD inline double crit_exact_double(uint64_t k) {
  double big;
  const uint64_t bits = 0x4330000000000000ULL | k;
  memcpy(&big, &bits, sizeof big);
  return big - 0x1p52;
}

FASTMEM_HD inline double crit_uniform_keyed(uint64_t key, uint64_t coord) {
  const double k = crit_exact_double(crit_rand_keyed(key, coord) >> 32);
  return (k + 0.5) * 0x1p-32 * 2.0 - 1.0;
}

// The four 32-bit uniforms summed as integers (< 2^34: exact), then converted once: the
// same double as summing their conversions (every partial sum is exact in a double).
FASTMEM_HD inline double crit_normal_keyed(uint64_t key, uint64_t coord) {
  const uint64_t h1 = crit_rand_keyed(key, 2 * coord);
  const uint64_t h2 = crit_rand_keyed(key, 2 * coord + 1);
  const uint64_t m = 0xFFFFFFFFULL;
  const uint64_t sum = (h1 >> 32) + (h1 & m) + (h2 >> 32) + (h2 & m);
  return ((crit_exact_double(sum) + 2.0) * 0x1p-32 - 2.0) * 1.7320508075688772;
}

FASTMEM_HD inline double crit_normal(uint64_t seed, uint64_t sample, uint64_t stream,
                                     uint64_t coord) {
  return crit_normal_keyed(crit_row_key(seed, sample, stream), coord);
}

// Activation in place; its derivative at z into d (activations.hpp: the kink convention is
// PyTorch autograd's, e.g. 0 at z = +-1 for hard-tanh).
template <class T>
FASTMEM_HD inline void crit_act_deriv(T& z, T& d, int kind, T slope) {
  const T v = z;
  z = activate(v, kind, slope);
  d = activation_slope(v, kind, slope);
}

// One row of the step: x += step sign(g) [+ noise N(0,1)], clipped to [lo, hi]. Every
// choice is a select on values computed unconditionally, with the noise decided at compile
// time, so the noiseless loop vectorises (as branches on the gradient's random signs it
// mispredicted on half the values: 5.7 ms -> ~0.3 ms for 1000 x 784 float32 on one
// thread). NaN gradients step by 0 and NaN iterates stay NaN, as with the branches.
template <bool Noise, class T>
FASTMEM_HD inline void crit_step_row_t(T* __restrict x, const T* __restrict g,
                                       const T* __restrict lo, const T* __restrict hi,
                                       int64_t d, uint64_t seed, uint64_t sample,
                                       uint64_t stream, T step_size, T noise) {
  const T zero = step_size - step_size;
  const T down = -step_size;
  const uint64_t key = Noise ? crit_row_key(seed, sample, stream) : 0;
  for (int64_t j = 0; j < d; ++j) {
    const T gj = g[j];
    T sg = gj < T(0) ? down : zero;
    sg = gj > T(0) ? step_size : sg;
    T v = x[j] + sg;
    if constexpr (Noise) v = v + noise * static_cast<T>(crit_normal_keyed(key, j));
    const T a = lo[j], b = hi[j];
    v = v < a ? a : v;
    v = v > b ? b : v;
    x[j] = v;
  }
}

template <class T>
FASTMEM_HD inline void crit_step_row(T* x, const T* g, const T* lo, const T* hi, int64_t d,
                                     uint64_t seed, uint64_t sample, uint64_t stream,
                                     T step_size, T noise, bool use_noise) {
  if (use_noise)
    crit_step_row_t<true>(x, g, lo, hi, d, seed, sample, stream, step_size, noise);
  else
    crit_step_row_t<false>(x, g, lo, hi, d, seed, sample, stream, step_size, noise);
}

// One row of the random start: the centre of [lo, hi] plus a uniform draw times its
// half-width, clipped. The row key once per row, the draw converted by its bits and the
// clipping as selects, so the loop vectorises (~3x on 1000 x 784); the same operations.
template <class T>
FASTMEM_HD inline void crit_random_start_row(T* __restrict x, const T* __restrict lo,
                                             const T* __restrict hi, int64_t d, uint64_t seed,
                                             uint64_t sample, uint64_t stream) {
  const uint64_t key = crit_row_key(seed, sample, stream);
  for (int64_t j = 0; j < d; ++j) {
    const double u = crit_uniform_keyed(key, j);
    const T a = lo[j], b = hi[j];
    const double c = 0.5 * (static_cast<double>(a) + static_cast<double>(b));
    const double w = 0.5 * (static_cast<double>(b) - static_cast<double>(a));
    T v = static_cast<T>(c + u * w);
    v = v < a ? a : v;
    v = v > b ? b : v;
    x[j] = v;
  }
}

// argmax (first maximum) of a row differs from label.
template <class T>
FASTMEM_HD inline uint8_t crit_check_row(const T* z, int64_t k, int64_t label) {
  int64_t best = 0;
  T bv = z[0];
  for (int64_t j = 1; j < k; ++j)
    if (z[j] > bv) {
      bv = z[j];
      best = j;
    }
  return best != label ? 1 : 0;
}

// Interval [lo, hi] of the pre-activation -> interval of the activation, in place.
template <class T>
FASTMEM_HD inline void crit_interval_one(T& lo, T& hi, int kind, T slope) {
  const T l = lo, u = hi;
  switch (kind) {
    case kLeakyRelu: {
      const T fl = l > T(0) ? l : slope * l;
      const T fh = u > T(0) ? u : slope * u;
      T a = fl < fh ? fl : fh;
      T b = fh > fl ? fh : fl;
      if (l < T(0) && u > T(0)) {  // the kink lies inside: f(0) = 0 may be an extreme
        if (a > T(0)) a = T(0);
        if (b < T(0)) b = T(0);
      }
      lo = a;
      hi = b;
      break;
    }
    case kRelu:
      lo = l > T(0) ? l : T(0);
      hi = u > T(0) ? u : T(0);
      break;
    case kHardtanh:
    case kRelu6: {  // a clamp is monotone: its ends' images
      const T c0 = clamp_low<T>(kind), c1 = clamp_high<T>(kind);
      lo = l < c0 ? c0 : (l > c1 ? c1 : l);
      hi = u < c0 ? c0 : (u > c1 ? c1 : u);
      break;
    }
    default:
      lo = l >= T(0) ? T(1) : T(0);
      hi = u >= T(0) ? T(1) : T(0);
  }
  // a NaN bound (an overflow's inf - inf) bounds nothing: it stays NaN (the comparisons
  // above read it as a value below every kink: relu's and threshold's upper bound 0)
  lo = l == l ? lo : l;
  hi = u == u ? hi : u;
}

// The relaxation of a clamp clip(z, c0, c1) (hard-tanh: c0 = -1, c1 = 1): its six cases in
// order of precedence, each candidate computed unconditionally and the first case that
// holds selected (the if-chain's values).
FASTMEM_HD inline void crit_relax_clamp(double l, double u, double c0, double c1, double& aL,
                                        double& bL, double& aU, double& bU) {
  // l < c0 and c1 < u: lines through (l, c0) (upper) and (u, c1) (lower), or constants
  double au = (c1 - c0) / (c1 - l);
  double bu = c0 - au * l;
  double al = (c1 - c0) / (u - c0);
  double bl = c1 - al * u;
  const double mid = (l + u) / 2;
  const bool cap_u = au * mid + bu >= c1, cap_l = al * mid + bl <= c0;
  au = cap_u ? 0.0 : au;
  bu = cap_u ? c1 : bu;
  al = cap_l ? 0.0 : al;
  bl = cap_l ? c0 : bl;
  // l < c1 < u (l >= c0): min(z, c1), concave
  const double ac = (c1 - l) / (u - l);
  const double bc = l - ac * l;
  const bool flat_c = !(u - c1 < c1 - l);
  const bool concave = l >= c0;
  al = concave ? ac : al;
  bl = concave ? bc : bl;
  au = concave ? (flat_c ? 0.0 : 1.0) : au;
  bu = concave ? (flat_c ? c1 : 0.0) : bu;
  // l < c0 < u (u <= c1): max(z, c0), convex
  const double av = (u - c0) / (u - l);
  const double bv = u - av * u;
  const bool ident_v = u - c0 > c0 - l;
  const bool convex = u <= c1;
  al = convex ? (ident_v ? 1.0 : 0.0) : al;
  bl = convex ? (ident_v ? 0.0 : c0) : bl;
  au = convex ? av : au;
  bu = convex ? bv : bu;
  // inside [c0, c1]: the identity
  const bool inside = (l >= c0) & (u <= c1);
  al = inside ? 1.0 : al;
  bl = inside ? 0.0 : bl;
  au = inside ? 1.0 : au;
  bu = inside ? 0.0 : bu;
  // above c1 (l >= c1), then below c0 (u <= c0): constants
  const bool above = l >= c1, below = u <= c0;
  al = above ? 0.0 : al;
  bl = above ? c1 : bl;
  au = above ? 0.0 : au;
  bu = above ? c1 : bu;
  aL = below ? 0.0 : al;
  bL = below ? c0 : bl;
  aU = below ? 0.0 : au;
  bU = below ? c0 : bu;
}

// Linear relaxation aL z + bL <= act(z) <= aU z + bU on [l, u], in double, for one kind
// known at compile time. Every candidate computed unconditionally, then selected: no branch
// on the bounds' signs, so the CPU loop vectorises (~9 ns -> ~1.5 ns per neuron on one
// thread; the divisions cannot trap, -fno-trapping-math); the values the former branches
// gave, bit for bit.
template <int Kind>
FASTMEM_HD inline void crit_relax_kind(double l, double u, double slope, double& aL, double& bL,
                                       double& aU, double& bU) {
  if constexpr (Kind == kThreshold) {
    aL = 0.0;
    aU = 0.0;
    bL = l >= 0 ? 1.0 : 0.0;
    bU = u >= 0 ? 1.0 : 0.0;
  } else if constexpr (Kind == kRelu || Kind == kLeakyRelu) {
    const double s = Kind == kLeakyRelu ? slope : 0.0;
    // l < 0 < u: the chord above (below when s > 1), the tighter of the two lines below
    const double a = (u - s * l) / (u - l);
    const double b = u - a * u;
    const double tight = u > -l ? 1.0 : s;
    const bool concave = s <= 1;
    const double cl = concave ? tight : a, dl = concave ? 0.0 : b;
    const double cu = concave ? a : tight, du = concave ? b : 0.0;
    // l >= 0: the identity; u <= 0: the slope s
    const bool up = l >= 0, down = u <= 0;
    const double flat = up ? 1.0 : s;
    const bool stable = up | down;
    aL = stable ? flat : cl;
    bL = stable ? 0.0 : dl;
    aU = stable ? flat : cu;
    bU = stable ? 0.0 : du;
  } else {  // a clamp
    crit_relax_clamp(l, u, clamp_low<double>(Kind), clamp_high<double>(Kind), aL, bL, aU, bU);
  }
}

FASTMEM_HD inline void crit_relax_one(double l, double u, int kind, double slope, double& aL,
                                      double& bL, double& aU, double& bU) {
  with_kind(kind,
            [&](auto k) { crit_relax_kind<decltype(k)::value>(l, u, slope, aL, bL, aU, bU); });
}


// One CROWN backward step through an activation for one row (in place).
template <class T>
FASTMEM_HD inline void crit_backward_row(T* lam, int64_t width, const T* aL, const T* bL,
                                         const T* aU, const T* bU, T& cst) {
  T acc = cst;
  for (int64_t j = 0; j < width; ++j) {
    const T v = lam[j];
    if (v >= T(0)) {
      acc = acc + v * bL[j];
      lam[j] = v * aL[j];
    } else {
      acc = acc + v * bU[j];
      lam[j] = v * aU[j];
    }
  }
  cst = acc;
}

// One CROWN backward step with its rounding allowance, for one row (in place): as
// crit_backward_row, and err += sum_j |lam_j| act_j (before the step) + sum_j |lam'_j| lin_j
// (after it; only when lin is not null). Branch-free selects (the sign of lam is random:
// a branch mispredicts half the time) and the three sums in kBackwardLanes interleaved
// lanes (lane l takes j = l mod 8), each added pairwise; one fixed order on every backend.
constexpr int kBackwardLanes = 8;

template <class T>
FASTMEM_HD inline T crit_lanes_sum(const T* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

template <class T, bool kLin>
FASTMEM_HD inline void crit_backward_err_lanes(T* __restrict__ lam, const T* __restrict__ aL,
                                               const T* __restrict__ bL, const T* __restrict__ aU,
                                               const T* __restrict__ bU, const T* __restrict__ act,
                                               const T* __restrict__ lin, int64_t j, int n,
                                               T* __restrict__ acc, T* __restrict__ ea,
                                               T* __restrict__ el) {
  for (int l = 0; l < n; ++l) {
    // every operand loaded, then selected: no conditional loads (they would keep the
    // loop from vectorising)
    const T v = lam[j + l];
    const T al = aL[j + l], bl = bL[j + l], au = aU[j + l], bu = bU[j + l];
    const T ac = act[j + l];
    const bool pos = v >= T(0);
    const T a = pos ? al : au;
    const T b = pos ? bl : bu;
    const T av = pos ? v : -v;
    acc[l] = acc[l] + v * b;
    ea[l] = ea[l] + av * ac;
    const T nv = v * a;
    lam[j + l] = nv;
    if (kLin) {
      const T li = lin[j + l];
      el[l] = el[l] + (nv < T(0) ? -nv : nv) * li;
    }
  }
}

template <class T, bool kLin>
FASTMEM_HD inline void crit_backward_err_row_t(T* lam, int64_t width, const T* aL, const T* bL,
                                               const T* aU, const T* bU, const T* act,
                                               const T* lin, T& cst, T& err) {
  T acc[kBackwardLanes], ea[kBackwardLanes], el[kBackwardLanes];
  for (int l = 0; l < kBackwardLanes; ++l) acc[l] = ea[l] = el[l] = T(0);
  int64_t j = 0;
  for (; j + kBackwardLanes <= width; j += kBackwardLanes)
    crit_backward_err_lanes<T, kLin>(lam, aL, bL, aU, bU, act, lin, j, kBackwardLanes, acc, ea,
                                     el);
  crit_backward_err_lanes<T, kLin>(lam, aL, bL, aU, bU, act, lin, j, int(width - j), acc, ea,
                                   el);
  cst = cst + crit_lanes_sum(acc);
  err = (err + crit_lanes_sum(ea)) + crit_lanes_sum(el);
}

template <class T>
FASTMEM_HD inline void crit_backward_err_row(T* lam, int64_t width, const T* aL, const T* bL,
                                             const T* aU, const T* bU, const T* act,
                                             const T* lin, T& cst, T& err) {
  if (lin != nullptr)
    crit_backward_err_row_t<T, true>(lam, width, aL, bL, aU, bU, act, lin, cst, err);
  else
    crit_backward_err_row_t<T, false>(lam, width, aL, bL, aU, bU, act, lin, cst, err);
}

// The sum runs in kConcretizeLanes interleaved lanes (lane l takes j = l mod 8), added
// pairwise at the end, then to cst: no chain of d dependent additions (the lanes
// vectorise; one chain cost ~4 cycles per input coordinate), and one fixed order on every
// backend (the Numba kernel writes the same lanes out).
constexpr int kConcretizeLanes = 8;

template <class T>
FASTMEM_HD inline T crit_concretize_term(T v, T lo, T hi) {
  return v >= T(0) ? v * lo : v * hi;
}

template <class T>
FASTMEM_HD inline void crit_concretize_row(const T* lam, int64_t d, const T* lo, const T* hi,
                                           T& cst) {
  T acc[kConcretizeLanes];
  for (int l = 0; l < kConcretizeLanes; ++l) acc[l] = T(0);
  int64_t j = 0;
  for (; j + kConcretizeLanes <= d; j += kConcretizeLanes)
    for (int l = 0; l < kConcretizeLanes; ++l)
      acc[l] = acc[l] + crit_concretize_term(lam[j + l], lo[j + l], hi[j + l]);
  for (int l = 0; j + l < d; ++l)
    acc[l] = acc[l] + crit_concretize_term(lam[j + l], lo[j + l], hi[j + l]);
  cst = cst + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// The L_inf ball of one input row clipped to the box: [max(x - r, b0), min(x + r, b1)]
// (x finite, r >= 0; the same two roundings as NumPy's subtract/maximum and add/minimum).
template <class T>
FASTMEM_HD inline void crit_ball_row(const T* __restrict x, int64_t d, T r, T b0, T b1,
                                     T* __restrict lo, T* __restrict hi) {
  for (int64_t j = 0; j < d; ++j) {
    const T a = x[j] - r, b = x[j] + r;
    lo[j] = a > b0 ? a : b0;
    hi[j] = b < b1 ? b : b1;
  }
}

// A box row [lo, hi] in centre form for interval bounds of the first layer: its centre
// c = (lo + hi) / 2 in T, stored in double (exact), the radius R = max(hi - c, c - lo) * up
// (up = 1 + 2 eps rounds it up: R >= |x - c| on the box), the row's largest R and |c|, and
// the count of radii below rmax * thr (the clipped coordinates the caller subtracts
// exactly, crit_radius_share_row). The maxima are taken over the values' bit patterns
// (for non-negative floats in the order of their values): integer maxima vectorise, a
// float's max does not without -ffast-math (the row took 4x as long).
template <class T>
FASTMEM_HD inline int64_t crit_centre_row(const T* __restrict lo, const T* __restrict hi,
                                          int64_t d, T up, T thr, double* __restrict c,
                                          T* __restrict radius, T& rmax, T& cmax) {
  using Bits = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  const Bits magnitude = ~(Bits(1) << (8 * sizeof(T) - 1));
  Bits rb = 0, cb = 0;
  for (int64_t j = 0; j < d; ++j) {
    const T cj = (lo[j] + hi[j]) * T(0.5);
    const T p = hi[j] - cj, q = cj - lo[j];
    const T rj = (p > q ? p : q) * up;  // >= +0 (never -0: x - x is +0)
    radius[j] = rj;
    c[j] = static_cast<double>(cj);
    Bits r, a;
    memcpy(&r, &rj, sizeof r);
    memcpy(&a, &cj, sizeof a);
    a &= magnitude;  // |c|
    rb = r > rb ? r : rb;
    cb = a > cb ? a : cb;
  }
  T r, a;
  memcpy(&r, &rb, sizeof r);
  memcpy(&a, &cb, sizeof a);
  rmax = r;
  cmax = a;
  const T lim = r * thr;
  int64_t low = 0;
  for (int64_t k = 0; k < d; ++k) low += radius[k] < lim ? 1 : 0;
  return low;
}

// The share of one row's short radii (those below rmax * thr; ``low`` of them, from
// crit_centre_row) in rmax * sum_j |W_kj|: share_k = sum over those j, ascending, of
// (rmax - R_j) |W_kj| in double (absw: |W|^T, d x w). Each difference is exact (two
// floats' difference in double); the caller rounds the sums down.
template <class T>
FASTMEM_HD inline void crit_radius_share_row(const T* __restrict radius, int64_t d, T rmax,
                                             T thr, int64_t low, const double* __restrict absw,
                                             int64_t w, double* __restrict share) {
  for (int64_t k = 0; k < w; ++k) share[k] = 0.0;
  const T lim = rmax * thr;
  constexpr int64_t kBlock = 16;  // a block without short radii is skipped in one test
  for (int64_t j0 = 0; j0 < d && low > 0; j0 += kBlock) {
    const int64_t j1 = j0 + kBlock < d ? j0 + kBlock : d;
    int any = 0;
    for (int64_t j = j0; j < j1; ++j) any |= radius[j] < lim ? 1 : 0;
    if (!any) continue;
    for (int64_t j = j0; j < j1; ++j) {
      if (!(radius[j] < lim)) continue;
      --low;
      const double s = static_cast<double>(rmax) - static_cast<double>(radius[j]);
      const double* a = absw + j * w;
      for (int64_t k = 0; k < w; ++k) share[k] = share[k] + s * a[k];
    }
  }
}

}  // namespace fastmem

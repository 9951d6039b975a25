// The facts of each piecewise-linear activation kind, defined once for every C++ and CUDA
// kernel: codes and names, pattern bits per neuron, value, state bits, and the slope
// (derivative) on each branch. The Python home of the same facts is src/fastmem/_kinds.py,
// the Numba home src/fastmem/_numba/activations.py; tests/test_activations.py checks all
// three against a plain NumPy reference and against torch autograd.
//
// Convention at a kink (PyTorch autograd's): the slope at a kink is that of the branch whose
// state bits the kink belongs to, i.e. derivative 0 at z = 0 for relu, `slope` at z = 0 for
// leaky_relu, 0 at z = -1 and z = +1 for hard-tanh; threshold units have slope 0 everywhere.
//
//   kind         value                    state bits                 slope
//   relu         z > 0 ? z : 0            z > 0                      z > 0 ? 1 : 0
//   leaky_relu   z > 0 ? z : a z          z > 0                      z > 0 ? 1 : a
//   hardtanh     clip(z, -1, 1)           low z > -1, high z > 1     -1 < z < 1 ? 1 : 0
//   threshold    z >= 0 ? 1 : 0           z >= 0                     0
//   relu6        clip(z, 0, 6)            low z > 0, high z > 6      0 < z < 6 ? 1 : 0
//
// hardtanh and relu6 are clamps, clip(z, low, high): two thresholds, two state bits, the
// same rules at both (the rest of the library asks is_clamp / clamp_low / clamp_high, so a
// new clamp is one more line in each of those). Every per-kind fact the kernels use
// (thresholds included) is here; with_kind gives a loop its kind as a constant.
#pragma once

#include <cstdint>

#include "fastmem/hd.hpp"

namespace fastmem {

enum ActivationKind : int {
  kRelu = 0,
  kLeakyRelu = 1,
  kHardtanh = 2,
  kThreshold = 3,
  kRelu6 = 4,
};

// The Python names of the kinds, indexed by code (fastmem._kinds.ACTIVATIONS must agree;
// _core.activation_kinds() reports this table to the parity test).
constexpr const char* kActivationNames[] = {"relu", "leaky_relu", "hardtanh", "threshold",
                                            "relu6"};
constexpr int kNumActivationKinds = 5;

// clip(z, clamp_low, clamp_high): flat outside, the identity between
FASTMEM_HD constexpr bool is_clamp(int kind) { return kind == kHardtanh || kind == kRelu6; }

template <class T>
FASTMEM_HD constexpr T clamp_low(int kind) {
  return kind == kRelu6 ? T(0) : T(-1);
}

template <class T>
FASTMEM_HD constexpr T clamp_high(int kind) {
  return kind == kRelu6 ? T(6) : T(1);
}

// Where the kind changes branch: thresholds 0 .. n_thresholds - 1, increasing (a clamp's
// low and high ends; 0 for the others). Its state bit i is z > threshold i (z >= 0 for
// threshold units).
FASTMEM_HD constexpr int n_thresholds(int kind) { return is_clamp(kind) ? 2 : 1; }

template <class T>
FASTMEM_HD constexpr T threshold_value(int kind, int i) {
  return is_clamp(kind) ? (i == 0 ? clamp_low<T>(kind) : clamp_high<T>(kind)) : T(0);
}

FASTMEM_HD constexpr int bits_per_neuron(int kind) { return n_thresholds(kind); }

// with_kind(kind, f) calls f(KindTag<kind>{}): a loop written for one kind (reading
// decltype(tag)::value) has no switch per value and vectorises into selects. Unknown kinds
// are threshold, as activate's default branch.
template <int K>
struct KindTag {
  static constexpr int value = K;
};

template <class F>
FASTMEM_HD inline void with_kind(int kind, F&& f) {
  switch (kind) {
    case kRelu:
      return f(KindTag<kRelu>{});
    case kLeakyRelu:
      return f(KindTag<kLeakyRelu>{});
    case kHardtanh:
      return f(KindTag<kHardtanh>{});
    case kRelu6:
      return f(KindTag<kRelu6>{});
    default:
      return f(KindTag<kThreshold>{});
  }
}

template <class T>
FASTMEM_HD inline T activate(T z, int kind, T slope) {
  switch (kind) {
    case kRelu:
      return z > T(0) ? z : T(0);
    case kLeakyRelu: {
      // the product unconditionally: a multiply under a condition is not if-converted
      // (it might trap), so a loop over this would not vectorise
      const T scaled = slope * z;
      return z > T(0) ? z : scaled;
    }
    case kHardtanh:
    case kRelu6: {
      const T lo = clamp_low<T>(kind), hi = clamp_high<T>(kind);
      return z < lo ? lo : (z > hi ? hi : z);
    }
    default:  // kThreshold
      return z >= T(0) ? T(1) : T(0);
  }
}

// The state bits of one neuron (bit 0 = low bit; see patterns.hpp for the layout).
template <class T>
FASTMEM_HD inline uint64_t neuron_state(T z, int kind) {
  switch (kind) {
    case kHardtanh:
    case kRelu6:
      return (z > clamp_low<T>(kind) ? 1ULL : 0ULL) | (z > clamp_high<T>(kind) ? 2ULL : 0ULL);
    case kThreshold:
      return z >= T(0) ? 1ULL : 0ULL;
    default:  // relu, leaky_relu
      return z > T(0) ? 1ULL : 0ULL;
  }
}

// The activation's derivative at z, with the kink convention above.
template <class T>
FASTMEM_HD inline T activation_slope(T z, int kind, T slope) {
  switch (kind) {
    case kRelu:
      return z > T(0) ? T(1) : T(0);
    case kLeakyRelu:
      return z > T(0) ? T(1) : slope;
    case kHardtanh:
    case kRelu6:
      return (z > clamp_low<T>(kind) && z < clamp_high<T>(kind)) ? T(1) : T(0);
    default:  // kThreshold
      return T(0);
  }
}

// Snap one row of float64 pre-activations onto the thresholds where rounding cannot tell
// them apart: |z_j - theta| <= gamma (||w_j||_1 max_i |h_i| + |b_j|) (gamma: Higham's
// gamma_{n+1}, from the caller). h: the row's inputs (fan_in of them). A band that
// overflows snaps nothing; NaN never compares. Same operations, in the same order, as
// fastmem._kinds.snap_reference (no contraction), so every backend snaps the same entries.
template <class T>
FASTMEM_HD inline void snap_row(T* z, int64_t width, const T* h, int64_t fan_in,
                                const T* w_abs_sum, const T* b_abs, int kind, T gamma) {
  // four running maxima (exact in any order): one chain would wait on each compare
  T m[4] = {T(0), T(0), T(0), T(0)};
  int64_t i = 0;
  for (; i + 4 <= fan_in; i += 4)
    for (int l = 0; l < 4; ++l) {
      const T a = h[i + l] < T(0) ? -h[i + l] : h[i + l];
      m[l] = a > m[l] ? a : m[l];
    }
  for (; i < fan_in; ++i) {
    const T a = h[i] < T(0) ? -h[i] : h[i];
    m[0] = a > m[0] ? a : m[0];
  }
  const T m01 = m[0] > m[1] ? m[0] : m[1], m23 = m[2] > m[3] ? m[2] : m[3];
  const T peak = m01 > m23 ? m01 : m23;
  // branch-free (selects): whether an entry is near is a coin flip the predictor loses
  if (is_clamp(kind)) {
    const T c0 = clamp_low<T>(kind), c1 = clamp_high<T>(kind);
    for (int64_t j = 0; j < width; ++j) {
      const T band = gamma * (peak * w_abs_sum[j] + b_abs[j]);
      const T v = z[j];
      const bool finite = band - band == T(0);  // an overflowed band snaps nothing
      const bool lo = finite & (v - c0 <= band) & (c0 - v <= band);
      const bool hi = finite & (v - c1 <= band) & (c1 - v <= band);
      z[j] = lo ? c0 : (hi ? c1 : v);
    }
  } else {
    for (int64_t j = 0; j < width; ++j) {
      const T band = gamma * (peak * w_abs_sum[j] + b_abs[j]);
      const T v = z[j];
      z[j] = ((band - band == T(0)) & (v <= band) & (-v <= band)) ? T(0) : v;
    }
  }
}

}  // namespace fastmem

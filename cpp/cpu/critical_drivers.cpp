#include "critical_drivers.hpp"

#include <type_traits>

#include "fastmem/critical.hpp"
#include "dispatch.hpp"
#include "parallel.hpp"

namespace fastmem::cpu {

// Run-time picked AVX2 builds (see the step's rows below).

namespace {

// The loop for one activation kind known at compile time, through locals stored
// unconditionally: the switch folds away and the loop vectorises into selects. Applied to
// z[i] in place, GCC kept a branch per value (it only stores z where it changes), which
// mispredicts on half of them (random signs): 550 us -> ~20 us for 1024 x 128 float32
// relu values on one thread.
template <int Kind, class T>
void activate_kind(T* __restrict z, T* __restrict deriv, int64_t n, T slope) {
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
  for (int64_t i = 0; i < n; ++i) {
    T zi = z[i], di;
    crit_act_deriv(zi, di, Kind, slope);
    z[i] = zi;
    deriv[i] = di;
  }
}

template <int Kind, class T>
void interval_kind(T* __restrict lo, T* __restrict hi, int64_t n, T slope) {
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
  for (int64_t i = 0; i < n; ++i) {
    T l = lo[i], u = hi[i];
    crit_interval_one(l, u, Kind, slope);
    lo[i] = l;
    hi[i] = u;
  }
}

// In double, rounded once to T on store (as the Numba kernel); the kind a template
// argument, so the loops vectorise (crit_relax_kind). The loop runs in blocks, each through
// a function whose __restrict parameters hold (inside OpenMP's outlined body the six arrays
// may alias, and GCC gave up the run-time checks), compiled for the baseline and for AVX2
// (the divisions' throughput: 1000 x 128 hard-tanh 0.9 -> ~0.5 ms on one thread); the same
// IEEE operations either way.
template <int Kind, class T>
inline void relax_block(const T* __restrict lo, const T* __restrict hi, int64_t m, double slope,
                        T* __restrict aL, T* __restrict bL, T* __restrict aU, T* __restrict bU) {
  for (int64_t i = 0; i < m; ++i) {
    double a, b, c, e;
    crit_relax_kind<Kind>(static_cast<double>(lo[i]), static_cast<double>(hi[i]), slope, a, b, c,
                          e);
    aL[i] = static_cast<T>(a);
    bL[i] = static_cast<T>(b);
    aU[i] = static_cast<T>(c);
    bU[i] = static_cast<T>(e);
  }
}

#define FASTMEM_RELAX_BLOCK(SUFFIX, ATTR)                                                       \
  template <int Kind, class T>                                                                  \
  ATTR void relax_block_##SUFFIX(const T* __restrict lo, const T* __restrict hi, int64_t m,     \
                                 double slope, T* __restrict aL, T* __restrict bL,              \
                                 T* __restrict aU, T* __restrict bU) {                          \
    relax_block<Kind>(lo, hi, m, slope, aL, bL, aU, bU);                                        \
  }

FASTMEM_RELAX_BLOCK(generic, __attribute__((flatten)))
#ifdef FASTMEM_X86_DISPATCH
FASTMEM_RELAX_BLOCK(avx2, __attribute__((target("avx2"), flatten)))
#endif
#undef FASTMEM_RELAX_BLOCK

template <int Kind, class T>
void relax_kind(const T* lo, const T* hi, int64_t n, double slope, T* aL, T* bL, T* aU, T* bU) {
  [[maybe_unused]] const bool avx2 = has_avx2();
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
  for (int64_t q = 0; q < blocks; ++q) {
    const int64_t i = q * kBlock, m = n - i < kBlock ? n - i : kBlock;
#ifdef FASTMEM_X86_DISPATCH
    if (avx2) {
      relax_block_avx2<Kind>(lo + i, hi + i, m, slope, aL + i, bL + i, aU + i, bU + i);
      continue;
    }
#endif
    relax_block_generic<Kind>(lo + i, hi + i, m, slope, aL + i, bL + i, aU + i, bU + i);
  }
}

}  // namespace

template <class T>
void crit_activate(T* z, T* deriv, int64_t rows, int64_t width, int kind, T slope) {
  const int64_t n = rows * width;
  with_kind(kind, [&](auto k) { activate_kind<decltype(k)::value>(z, deriv, n, slope); });
}

// The step's and the random start's rows are compiled for the build's baseline (x86-64-v2: 128-bit vectors) and
// for AVX2 (256-bit), and picked at run time: the noise's 64-bit hash multiplies take
// 4 lanes there (~2x the noisy step). Integer and IEEE-exact operations only (no FMA:
// -ffp-contract=off), so the same iterates, bit for bit, either way.

#define FASTMEM_STEP_ROWS(SUFFIX, ATTR)                                                        \
  template <bool Noise, class T>                                                               \
  ATTR void step_rows_##SUFFIX(T* x, const T* grad, const T* lo, const T* hi,                  \
                               const int64_t* ids, int64_t rows, int64_t d, uint64_t seed,     \
                               uint64_t stream, T step_size, T noise) {                        \
    _Pragma("omp parallel for schedule(static)") for (int64_t r = 0; r < rows; ++r) {          \
      const int64_t s = ids[r];                                                                \
      crit_step_row_t<Noise>(x + r * d, grad + r * d, lo + s * d, hi + s * d, d, seed,         \
                             static_cast<uint64_t>(s), stream, step_size, noise);              \
    }                                                                                          \
  }                                                                                            \
  template <class T>                                                                           \
  ATTR void random_start_rows_##SUFFIX(T* x, const T* lo, const T* hi, const int64_t* ids,     \
                                       int64_t rows, int64_t d, uint64_t seed,                 \
                                       uint64_t stream) {                                      \
    _Pragma("omp parallel for schedule(static)") for (int64_t r = 0; r < rows; ++r) {          \
      const int64_t s = ids[r];                                                                \
      crit_random_start_row(x + r * d, lo + s * d, hi + s * d, d, seed,                        \
                            static_cast<uint64_t>(s), stream);                                 \
    }                                                                                          \
  }

FASTMEM_STEP_ROWS(generic, __attribute__((flatten)))
#ifdef FASTMEM_X86_DISPATCH
FASTMEM_STEP_ROWS(avx2, __attribute__((target("avx2"), flatten)))
#endif
#undef FASTMEM_STEP_ROWS

template <class T>
void crit_step(T* x, const T* grad, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
               int64_t d, uint64_t seed, uint64_t stream, T step_size, T noise, bool use_noise) {
  [[maybe_unused]] const bool avx2 = has_avx2();
  auto run = [&](auto noisy) {
    constexpr bool N = decltype(noisy)::value;
#ifdef FASTMEM_X86_DISPATCH
    if (avx2)
      return step_rows_avx2<N>(x, grad, lo, hi, ids, rows, d, seed, stream, step_size, noise);
#endif
    step_rows_generic<N>(x, grad, lo, hi, ids, rows, d, seed, stream, step_size, noise);
  };
  if (use_noise)
    run(std::true_type{});
  else
    run(std::false_type{});
}

template <class T>
void crit_random_start(T* x, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
                       int64_t d, uint64_t seed, uint64_t stream) {
#ifdef FASTMEM_X86_DISPATCH
  if (has_avx2()) return random_start_rows_avx2(x, lo, hi, ids, rows, d, seed, stream);
#endif
  random_start_rows_generic(x, lo, hi, ids, rows, d, seed, stream);
}

template <class T>
void crit_check(const T* logits, const int64_t* labels, uint8_t* changed, int64_t rows,
                int64_t k) {
#pragma omp parallel for schedule(static) if (rows * k >= kSerialBelow)
  for (int64_t r = 0; r < rows; ++r) changed[r] = crit_check_row(logits + r * k, k, labels[r]);
}

template <class T>
void crit_interval(T* lo, T* hi, int64_t n, int kind, T slope) {
  with_kind(kind, [&](auto k) { interval_kind<decltype(k)::value>(lo, hi, n, slope); });
}

template <class T>
void crit_relax(const T* lo, const T* hi, int64_t n, int kind, double slope, T* aL, T* bL, T* aU,
                T* bU) {
  with_kind(kind, [&](auto k) { relax_kind<decltype(k)::value>(lo, hi, n, slope, aL, bL, aU, bU); });
}

template <class T>
void crit_backward(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                   const T* bL, const T* aU, const T* bU, T* cst) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t s = rows[r] * width;
    crit_backward_row(lam + r * width, width, aL + s, bL + s, aU + s, bU + s, cst[r]);
  }
}

template <class T>
void crit_backward_err(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                       const T* bL, const T* aU, const T* bU, const T* act, const T* lin,
                       bool with_lin, T* cst, T* err) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t s = rows[r] * width;
    crit_backward_err_row(lam + r * width, width, aL + s, bL + s, aU + s, bU + s, act + s,
                          with_lin ? lin + s : static_cast<const T*>(nullptr), cst[r], err[r]);
  }
}

template <class T>
void crit_concretize(const T* lam, const int64_t* rows, int64_t n_rows, int64_t d, const T* lo,
                     const T* hi, T* cst) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t s = rows[r] * d;
    crit_concretize_row(lam + r * d, d, lo + s, hi + s, cst[r]);
  }
}

template <class T>
void crit_ball(const T* x, int64_t rows, int64_t d, const T* r, bool r_per_row, T b0, T b1, T* lo,
               T* hi) {
#pragma omp parallel for schedule(static) if (rows * d >= kSerialBelow)
  for (int64_t i = 0; i < rows; ++i)
    crit_ball_row(x + i * d, d, r[r_per_row ? i : 0], b0, b1, lo + i * d, hi + i * d);
}

template <class T>
void crit_centre(const T* lo, const T* hi, int64_t rows, int64_t d, T up, T thr, double* c,
                 T* radius, T* rmax, T* cmax, int64_t* low) {
#pragma omp parallel for schedule(static) if (rows * d >= kSerialBelow)
  for (int64_t i = 0; i < rows; ++i)
    low[i] = crit_centre_row(lo + i * d, hi + i * d, d, up, thr, c + i * d, radius + i * d,
                             rmax[i], cmax[i]);
}

template <class T>
void crit_radius_share(const T* radius, const T* rmax, const int64_t* low, int64_t rows, int64_t d,
                       T thr, const double* absw, int64_t w, double* share) {
#pragma omp parallel for schedule(static) if (rows * d >= kSerialBelow)
  for (int64_t i = 0; i < rows; ++i)
    crit_radius_share_row(radius + i * d, d, rmax[i], thr, low[i], absw, w, share + i * w);
}

#define FASTMEM_CRIT_INSTANTIATE(T)                                                              \
  template void crit_activate<T>(T*, T*, int64_t, int64_t, int, T);                              \
  template void crit_step<T>(T*, const T*, const T*, const T*, const int64_t*, int64_t, int64_t, \
                             uint64_t, uint64_t, T, T, bool);                                    \
  template void crit_random_start<T>(T*, const T*, const T*, const int64_t*, int64_t, int64_t,   \
                                     uint64_t, uint64_t);                                        \
  template void crit_check<T>(const T*, const int64_t*, uint8_t*, int64_t, int64_t);             \
  template void crit_interval<T>(T*, T*, int64_t, int, T);                                       \
  template void crit_relax<T>(const T*, const T*, int64_t, int, double, T*, T*, T*, T*);         \
  template void crit_backward<T>(T*, const int64_t*, int64_t, int64_t, const T*, const T*,       \
                                 const T*, const T*, T*);                                        \
  template void crit_concretize<T>(const T*, const int64_t*, int64_t, int64_t, const T*,         \
                                   const T*, T*);                                              \
  template void crit_backward_err<T>(T*, const int64_t*, int64_t, int64_t, const T*, const T*,   \
                                     const T*, const T*, const T*, const T*, bool, T*, T*);  \
  template void crit_ball<T>(const T*, int64_t, int64_t, const T*, bool, T, T, T*, T*);          \
  template void crit_centre<T>(const T*, const T*, int64_t, int64_t, T, T, double*, T*, T*, T*,  \
                               int64_t*);                                                        \
  template void crit_radius_share<T>(const T*, const T*, const int64_t*, int64_t, int64_t, T,     \
                                     const double*, int64_t, double*);

FASTMEM_CRIT_INSTANTIATE(float)
FASTMEM_CRIT_INSTANTIATE(double)

}  // namespace fastmem::cpu

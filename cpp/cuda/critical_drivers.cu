#include <cuda_runtime.h>

#include "critical_drivers.hpp"
#include "runtime.hpp"
#include "stream.cuh"
#include "fastmem/critical.hpp"

namespace fastmem::gpu {

namespace {

#define FASTMEM_GRID_LOOP(i, n)                                                   \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void activate_kernel(T* z, T* deriv, int64_t n, int kind, T slope) {
  FASTMEM_GRID_LOOP(i, n) crit_act_deriv(z[i], deriv[i], kind, slope);
}

template <class T>
__global__ void step_kernel(T* x, const T* grad, const T* lo, const T* hi, const int64_t* ids,
                            int64_t rows, int64_t d, uint64_t seed, uint64_t stream, T step_size,
                            T noise, bool use_noise) {
  FASTMEM_GRID_LOOP(r, rows) {
    const int64_t s = ids[r];
    crit_step_row(x + r * d, grad + r * d, lo + s * d, hi + s * d, d, seed,
                  static_cast<uint64_t>(s), stream, step_size, noise, use_noise);
  }
}

template <class T>
__global__ void start_kernel(T* x, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
                             int64_t d, uint64_t seed, uint64_t stream) {
  FASTMEM_GRID_LOOP(r, rows) {
    const int64_t s = ids[r];
    crit_random_start_row(x + r * d, lo + s * d, hi + s * d, d, seed, static_cast<uint64_t>(s),
                          stream);
  }
}

template <class T>
__global__ void check_kernel(const T* logits, const int64_t* labels, uint8_t* changed,
                             int64_t rows, int64_t k) {
  FASTMEM_GRID_LOOP(r, rows) changed[r] = crit_check_row(logits + r * k, k, labels[r]);
}

template <class T>
__global__ void interval_kernel(T* lo, T* hi, int64_t n, int kind, T slope) {
  FASTMEM_GRID_LOOP(i, n) crit_interval_one(lo[i], hi[i], kind, slope);
}

template <class T>
__global__ void relax_kernel(const T* lo, const T* hi, int64_t n, int kind, double slope, T* aL,
                             T* bL, T* aU, T* bU) {
  FASTMEM_GRID_LOOP(i, n) {
    double a, b, c, e;
    crit_relax_one(static_cast<double>(lo[i]), static_cast<double>(hi[i]), kind, slope, a, b, c,
                   e);
    aL[i] = static_cast<T>(a);
    bL[i] = static_cast<T>(b);
    aU[i] = static_cast<T>(c);
    bU[i] = static_cast<T>(e);
  }
}

template <class T>
__global__ void backward_kernel(T* lam, const int64_t* rows, int64_t n_rows, int64_t width,
                                const T* aL, const T* bL, const T* aU, const T* bU, T* cst) {
  FASTMEM_GRID_LOOP(r, n_rows) {
    const int64_t s = rows[r] * width;
    crit_backward_row(lam + r * width, width, aL + s, bL + s, aU + s, bU + s, cst[r]);
  }
}

template <class T>
__global__ void backward_err_kernel(T* lam, const int64_t* rows, int64_t n_rows, int64_t width,
                                    const T* aL, const T* bL, const T* aU, const T* bU,
                                    const T* act, const T* lin, bool with_lin, T* cst, T* err) {
  FASTMEM_GRID_LOOP(r, n_rows) {
    const int64_t s = rows[r] * width;
    crit_backward_err_row(lam + r * width, width, aL + s, bL + s, aU + s, bU + s, act + s,
                          with_lin ? lin + s : static_cast<const T*>(nullptr), cst[r], err[r]);
  }
}

template <class T>
__global__ void concretize_kernel(const T* lam, const int64_t* rows, int64_t n_rows, int64_t d,
                                  const T* lo, const T* hi, T* cst) {
  FASTMEM_GRID_LOOP(r, n_rows) {
    const int64_t s = rows[r] * d;
    crit_concretize_row(lam + r * d, d, lo + s, hi + s, cst[r]);
  }
}

template <class T>
__global__ void ball_kernel(const T* x, int64_t rows, int64_t d, const T* r, bool r_per_row, T b0,
                            T b1, T* lo, T* hi) {
  FASTMEM_GRID_LOOP(i, rows)
  crit_ball_row(x + i * d, d, r[r_per_row ? i : 0], b0, b1, lo + i * d, hi + i * d);
}

template <class T>
__global__ void centre_kernel(const T* lo, const T* hi, int64_t rows, int64_t d, T up, T thr,
                              double* c, T* radius, T* rmax, T* cmax, int64_t* low) {
  FASTMEM_GRID_LOOP(i, rows)
  low[i] = crit_centre_row(lo + i * d, hi + i * d, d, up, thr, c + i * d, radius + i * d, rmax[i],
                           cmax[i]);
}

template <class T>
__global__ void share_kernel(const T* radius, const T* rmax, const int64_t* low, int64_t rows,
                             int64_t d, T thr, const double* absw, int64_t w, double* share) {
  FASTMEM_GRID_LOOP(i, rows)
  crit_radius_share_row(radius + i * d, d, rmax[i], thr, low[i], absw, w, share + i * w);
}

}  // namespace

template <class T>
int crit_activate(T* z, T* deriv, int64_t rows, int64_t width, int kind, T slope) {
  const int64_t n = rows * width;
  if (n == 0) return 0;
  activate_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(z, deriv, n, kind, slope);
  return finish();
}

template <class T>
int crit_step(T* x, const T* grad, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
              int64_t d, uint64_t seed, uint64_t stream, T step_size, T noise, bool use_noise) {
  if (rows == 0) return 0;
  step_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      x, grad, lo, hi, ids, rows, d, seed, stream, step_size, noise, use_noise);
  return finish();
}

template <class T>
int crit_random_start(T* x, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
                      int64_t d, uint64_t seed, uint64_t stream) {
  if (rows == 0) return 0;
  start_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      x, lo, hi, ids, rows, d, seed, stream);
  return finish();
}

template <class T>
int crit_check(const T* logits, const int64_t* labels, uint8_t* changed, int64_t rows,
               int64_t k) {
  if (rows == 0) return 0;
  check_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      logits, labels, changed, rows, k);
  return finish();
}

template <class T>
int crit_interval(T* lo, T* hi, int64_t n, int kind, T slope) {
  if (n == 0) return 0;
  interval_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(lo, hi, n, kind, slope);
  return finish();
}

template <class T>
int crit_relax(const T* lo, const T* hi, int64_t n, int kind, double slope, T* aL, T* bL, T* aU,
               T* bU) {
  if (n == 0) return 0;
  relax_kernel<T><<<blocks_for(n), kThreads, 0, call_stream()>>>(
      lo, hi, n, kind, slope, aL, bL, aU, bU);
  return finish();
}

template <class T>
int crit_backward(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                  const T* bL, const T* aU, const T* bU, T* cst) {
  if (n_rows == 0) return 0;
  backward_kernel<T><<<blocks_for(n_rows), kThreads, 0, call_stream()>>>(
      lam, rows, n_rows, width, aL, bL, aU, bU, cst);
  return finish();
}

template <class T>
int crit_backward_err(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                      const T* bL, const T* aU, const T* bU, const T* act, const T* lin,
                      bool with_lin, T* cst, T* err) {
  if (n_rows == 0) return 0;
  backward_err_kernel<T><<<blocks_for(n_rows), kThreads, 0, call_stream()>>>(
      lam, rows, n_rows, width, aL, bL, aU, bU, act, lin, with_lin, cst, err);
  return finish();
}

template <class T>
int crit_concretize(const T* lam, const int64_t* rows, int64_t n_rows, int64_t d, const T* lo,
                    const T* hi, T* cst) {
  if (n_rows == 0) return 0;
  concretize_kernel<T><<<blocks_for(n_rows), kThreads, 0, call_stream()>>>(
      lam, rows, n_rows, d, lo, hi, cst);
  return finish();
}

template <class T>
int crit_ball(const T* x, int64_t rows, int64_t d, const T* r, bool r_per_row, T b0, T b1, T* lo,
              T* hi) {
  if (rows == 0) return 0;
  ball_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(x, rows, d, r, r_per_row, b0,
                                                                    b1, lo, hi);
  return finish();
}

template <class T>
int crit_centre(const T* lo, const T* hi, int64_t rows, int64_t d, T up, T thr, double* c,
                T* radius, T* rmax, T* cmax, int64_t* low) {
  if (rows == 0) return 0;
  centre_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(lo, hi, rows, d, up, thr, c,
                                                                      radius, rmax, cmax, low);
  return finish();
}

template <class T>
int crit_radius_share(const T* radius, const T* rmax, const int64_t* low, int64_t rows, int64_t d,
                      T thr, const double* absw, int64_t w, double* share) {
  if (rows == 0) return 0;
  share_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(radius, rmax, low, rows, d,
                                                                     thr, absw, w, share);
  return finish();
}

#define FASTMEM_CRIT_INSTANTIATE(T)                                                             \
  template int crit_activate<T>(T*, T*, int64_t, int64_t, int, T);                              \
  template int crit_step<T>(T*, const T*, const T*, const T*, const int64_t*, int64_t, int64_t, \
                            uint64_t, uint64_t, T, T, bool);                                    \
  template int crit_random_start<T>(T*, const T*, const T*, const int64_t*, int64_t, int64_t,   \
                                    uint64_t, uint64_t);                                        \
  template int crit_check<T>(const T*, const int64_t*, uint8_t*, int64_t, int64_t);             \
  template int crit_interval<T>(T*, T*, int64_t, int, T);                                       \
  template int crit_relax<T>(const T*, const T*, int64_t, int, double, T*, T*, T*, T*);         \
  template int crit_backward<T>(T*, const int64_t*, int64_t, int64_t, const T*, const T*,       \
                                const T*, const T*, T*);                                        \
  template int crit_backward_err<T>(T*, const int64_t*, int64_t, int64_t, const T*, const T*,   \
                                    const T*, const T*, const T*, const T*, bool, T*, T*);      \
  template int crit_concretize<T>(const T*, const int64_t*, int64_t, int64_t, const T*,        \
                                  const T*, T*);                                                \
  template int crit_ball<T>(const T*, int64_t, int64_t, const T*, bool, T, T, T*, T*);          \
  template int crit_centre<T>(const T*, const T*, int64_t, int64_t, T, T, double*, T*, T*, T*,  \
                              int64_t*);                                                        \
  template int crit_radius_share<T>(const T*, const T*, const int64_t*, int64_t, int64_t, T,    \
                                    const double*, int64_t, double*);

FASTMEM_CRIT_INSTANTIATE(float)
FASTMEM_CRIT_INSTANTIATE(double)

}  // namespace fastmem::gpu

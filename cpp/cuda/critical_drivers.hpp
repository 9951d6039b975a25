// CUDA drivers of the critical-sample kernels (math in fastmem/critical.hpp).
// Each returns a cudaError_t as int (0 = success).
#pragma once

#include <cstdint>

namespace fastmem::gpu {

template <class T>
int crit_activate(T* z, T* deriv, int64_t rows, int64_t width, int kind, T slope);
template <class T>
int crit_step(T* x, const T* grad, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
               int64_t d, uint64_t seed, uint64_t stream, T step_size, T noise, bool use_noise);
template <class T>
int crit_random_start(T* x, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
                       int64_t d, uint64_t seed, uint64_t stream);
template <class T>
int crit_check(const T* logits, const int64_t* labels, uint8_t* changed, int64_t rows,
                int64_t k);
template <class T>
int crit_interval(T* lo, T* hi, int64_t n, int kind, T slope);
template <class T>
int crit_relax(const T* lo, const T* hi, int64_t n, int kind, double slope, T* aL, T* bL, T* aU,
                T* bU);
template <class T>
int crit_backward(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                   const T* bL, const T* aU, const T* bU, T* cst);
template <class T>
int crit_backward_err(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                      const T* bL, const T* aU, const T* bU, const T* act, const T* lin,
                      bool with_lin, T* cst, T* err);
template <class T>
int crit_concretize(const T* lam, const int64_t* rows, int64_t n_rows, int64_t d, const T* lo,
                     const T* hi, T* cst);

template <class T>
int crit_ball(const T* x, int64_t rows, int64_t d, const T* r, bool r_per_row, T b0, T b1, T* lo,
              T* hi);
template <class T>
int crit_centre(const T* lo, const T* hi, int64_t rows, int64_t d, T up, T thr, double* c,
                T* radius, T* rmax, T* cmax, int64_t* low);
template <class T>
int crit_radius_share(const T* radius, const T* rmax, const int64_t* low, int64_t rows, int64_t d,
                      T thr, const double* absw, int64_t w, double* share);

}  // namespace fastmem::gpu

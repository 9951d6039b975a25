// OpenMP drivers of the critical-sample kernels (math in fastmem/critical.hpp).
#pragma once

#include <cstdint>

namespace fastmem::cpu {

template <class T>
void crit_activate(T* z, T* deriv, int64_t rows, int64_t width, int kind, T slope);
template <class T>
void crit_step(T* x, const T* grad, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
               int64_t d, uint64_t seed, uint64_t stream, T step_size, T noise, bool use_noise);
template <class T>
void crit_random_start(T* x, const T* lo, const T* hi, const int64_t* ids, int64_t rows,
                       int64_t d, uint64_t seed, uint64_t stream);
template <class T>
void crit_check(const T* logits, const int64_t* labels, uint8_t* changed, int64_t rows,
                int64_t k);
template <class T>
void crit_interval(T* lo, T* hi, int64_t n, int kind, T slope);
template <class T>
void crit_relax(const T* lo, const T* hi, int64_t n, int kind, double slope, T* aL, T* bL, T* aU,
                T* bU);
template <class T>
void crit_backward(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                   const T* bL, const T* aU, const T* bU, T* cst);
template <class T>
void crit_backward_err(T* lam, const int64_t* rows, int64_t n_rows, int64_t width, const T* aL,
                       const T* bL, const T* aU, const T* bU, const T* act, const T* lin,
                       bool with_lin, T* cst, T* err);
template <class T>
void crit_concretize(const T* lam, const int64_t* rows, int64_t n_rows, int64_t d, const T* lo,
                     const T* hi, T* cst);

template <class T>
void crit_ball(const T* x, int64_t rows, int64_t d, const T* r, bool r_per_row, T b0, T b1, T* lo,
               T* hi);
template <class T>
void crit_centre(const T* lo, const T* hi, int64_t rows, int64_t d, T up, T thr, double* c,
                 T* radius, T* rmax, T* cmax, int64_t* low);
template <class T>
void crit_radius_share(const T* radius, const T* rmax, const int64_t* low, int64_t rows, int64_t d,
                       T thr, const double* absw, int64_t w, double* share);

}  // namespace fastmem::cpu

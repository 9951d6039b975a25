#include <cuda_runtime.h>

#include "patterns_drivers.hpp"
#include "runtime.hpp"
#include "stream.cuh"
#include "fastmem/patterns.hpp"

namespace fastmem::gpu {

namespace {

template <class T>
__global__ void apply_activation_kernel(T* z, int64_t rows, int64_t width, int kind, T slope) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * width;
       i += int64_t(gridDim.x) * blockDim.x)
    z[i] = activate(z[i], kind, slope);
}

template <class T>
__global__ void pack_and_activate_kernel(T* z, int64_t rows, int64_t width, uint64_t* codes,
                                         int64_t n_words, int64_t bit_offset, int kind,
                                         T slope) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows;
       i += int64_t(gridDim.x) * blockDim.x)
    pack_and_activate_row(z + i * width, width, codes + i * n_words, bit_offset, kind, slope);
}

__global__ void hash_patterns_kernel(const uint64_t* codes, int64_t rows, int64_t n_words,
                                     uint64_t* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = hash_words(codes + i * n_words, n_words);
}

__global__ void snap_thresholds_kernel(double* z, int64_t rows, int64_t width, const double* h,
                                       int64_t h_stride, int64_t fan_in,
                                       const double* w_abs_sum, const double* b_abs, int kind,
                                       double gamma) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows;
       i += int64_t(gridDim.x) * blockDim.x)
    snap_row(z + i * width, width, h + i * h_stride, fan_in, w_abs_sum, b_abs, kind, gamma);
}

}  // namespace

int snap_thresholds(double* z, int64_t rows, int64_t width, const double* h, int64_t h_stride,
                    int64_t fan_in, const double* w_abs_sum, const double* b_abs, int kind,
                    double gamma) {
  if (rows == 0) return 0;
  snap_thresholds_kernel<<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      z, rows, width, h, h_stride, fan_in, w_abs_sum, b_abs, kind, gamma);
  return finish();
}

template <class T>
int apply_activation(T* z, int64_t rows, int64_t width, int kind, T slope) {
  if (rows * width == 0) return 0;
  apply_activation_kernel<T><<<blocks_for(rows * width), kThreads, 0, call_stream()>>>(
      z, rows, width, kind, slope);
  return finish();
}

template <class T>
int pack_and_activate(T* z, int64_t rows, int64_t width, uint64_t* codes, int64_t n_words,
                      int64_t bit_offset, int kind, T slope) {
  if (rows == 0) return 0;
  pack_and_activate_kernel<T><<<blocks_for(rows), kThreads, 0, call_stream()>>>(
      z, rows, width, codes, n_words, bit_offset, kind, slope);
  return finish();
}

int hash_patterns(const uint64_t* codes, int64_t rows, int64_t n_words, uint64_t* out) {
  if (rows == 0) return 0;
  hash_patterns_kernel<<<blocks_for(rows), kThreads, 0, call_stream()>>>(codes, rows, n_words, out);
  return finish();
}

template int apply_activation<float>(float*, int64_t, int64_t, int, float);
template int apply_activation<double>(double*, int64_t, int64_t, int, double);
template int pack_and_activate<float>(float*, int64_t, int64_t, uint64_t*, int64_t, int64_t, int,
                                      float);
template int pack_and_activate<double>(double*, int64_t, int64_t, uint64_t*, int64_t, int64_t,
                                       int, double);

}  // namespace fastmem::gpu

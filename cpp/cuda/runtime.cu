#include <cuda_runtime.h>

#include "runtime.hpp"

namespace fastmem::gpu {

int finish() {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  return static_cast<int>(err);
}

int device_count(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    why = cudaGetErrorString(err);
    cudaGetLastError();  // clear the error so that a later call can retry
    return 0;
  }
  if (n == 0) why = "the runtime reports zero devices";
  return n;
}

std::string error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

}  // namespace fastmem::gpu

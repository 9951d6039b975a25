#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "runtime.hpp"

namespace fastmem::gpu {

namespace {

thread_local void* g_launch_stream = nullptr;

bool sync_each_call() {
  static const bool sync = [] {
    const char* v = std::getenv("FASTMEM_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
  }();
  return sync;
}

}  // namespace

void* launch_stream() { return g_launch_stream; }

void set_launch_stream(void* stream) { g_launch_stream = stream; }

int finish() {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_each_call())
    err = cudaStreamSynchronize(static_cast<cudaStream_t>(g_launch_stream));
  return static_cast<int>(err);
}

int pointer_device(const void* ptr, int& device) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so that the next launch check is clean
    return static_cast<int>(err);
  }
  device = attr.type == cudaMemoryTypeUnregistered ? -1 : attr.device;
  return 0;
}

int get_device(int& device) { return static_cast<int>(cudaGetDevice(&device)); }

int set_device(int device) { return static_cast<int>(cudaSetDevice(device)); }

int stream_wait(void* stream, void* other) {
  cudaEvent_t event = nullptr;
  cudaError_t err = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
  if (err != cudaSuccess) return static_cast<int>(err);
  err = cudaEventRecord(event, static_cast<cudaStream_t>(other));
  if (err == cudaSuccess) err = cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), event, 0);
  cudaEventDestroy(event);  // released once the wait has been satisfied
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

// CUDA runtime helpers shared by all drivers. Declared without CUDA headers so
// the bindings compile with the host compiler; error codes are cudaError_t as int,
// streams are cudaStream_t as void*.
//
// Streams: each binding call opens a bind::Launch scope (bind.hpp), which sets the
// device that holds the call's arrays and the stream the caller's arrays are ordered on
// (the `stream` field of __cuda_array_interface__: CuPy's current stream). Every driver
// launches on launch_stream(), this thread's stream of the scope, and does not wait for
// the device: whoever reads a result on the host (CuPy's .get(), int(), ...) synchronises
// that same stream first. FASTMEM_CUDA_SYNC=1 in the environment makes finish() wait for
// the stream after every driver, so that an asynchronous fault is reported by the call
// that caused it (a debugging aid; results are the same).
#pragma once

#include <cstdint>
#include <string>

namespace fastmem::gpu {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items.
inline int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// Check the last launch (and, with FASTMEM_CUDA_SYNC=1, wait for the stream); return the
// error code (0 = success). Does not synchronise otherwise.
int finish();

// This thread's launch stream (nullptr: the default stream) and its setter.
void* launch_stream();
void set_launch_stream(void* stream);

// The device that owns `ptr`; `device` is -1 when the runtime does not know `ptr` as
// device-accessible memory (e.g. plain host memory). Returns an error code.
int pointer_device(const void* ptr, int& device);
int get_device(int& device);
int set_device(int device);

// Make `stream` wait (on the device, not the host) for the work queued so far on `other`.
int stream_wait(void* stream, void* other);

// Number of usable devices; on failure 0 and `why` holds the runtime's message.
int device_count(std::string& why);

std::string error_string(int code);

int runtime_version();

}  // namespace fastmem::gpu

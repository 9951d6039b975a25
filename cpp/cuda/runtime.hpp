// CUDA runtime helpers shared by all drivers. Declared without CUDA headers so
// the bindings compile with the host compiler; error codes are cudaError_t as int.
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

// Check the last launch, wait for the device, return the error code (0 = success).
int finish();

// Number of usable devices; on failure 0 and `why` holds the runtime's message.
int device_count(std::string& why);

std::string error_string(int code);

int runtime_version();

}  // namespace fastmem::gpu

// The stream the drivers launch on: the current binding call's (runtime.hpp, bind::Launch).
#pragma once

#include <cuda_runtime.h>

#include "runtime.hpp"

namespace fastmem::gpu {

inline cudaStream_t call_stream() { return static_cast<cudaStream_t>(launch_stream()); }

}  // namespace fastmem::gpu

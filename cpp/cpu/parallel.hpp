#pragma once

#include <cstdint>

namespace fastmem::cpu {

// Elementwise kernels below this many values run on the calling thread alone (an
// OpenMP `if` clause): one thread does 2^18 values in ~0.1-0.3 ms, about what a team's
// fork and join can cost on an idle machine, and far less than a join that waits for a
// team member another process has descheduled (milliseconds). The results are the same
// either way (each value is computed on its own).
constexpr int64_t kSerialBelow = int64_t{1} << 18;

}  // namespace fastmem::cpu

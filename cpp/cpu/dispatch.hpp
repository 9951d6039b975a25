#pragma once

#include <type_traits>

#include "fastmem/activations.hpp"

namespace fastmem::cpu {

// Call f with the activation kind as a compile-time constant
// (std::integral_constant<int, kind>): an elementwise loop written for one kind has no
// switch per value and vectorises into selects (see activate_kind in
// patterns_drivers.cpp). Unknown kinds are threshold, as activate's default branch.
template <class F>
void with_kind(int kind, F&& f) {
  switch (kind) {
    case kRelu:
      return f(std::integral_constant<int, kRelu>{});
    case kLeakyRelu:
      return f(std::integral_constant<int, kLeakyRelu>{});
    case kHardtanh:
      return f(std::integral_constant<int, kHardtanh>{});
    default:
      return f(std::integral_constant<int, kThreshold>{});
  }
}

}  // namespace fastmem::cpu

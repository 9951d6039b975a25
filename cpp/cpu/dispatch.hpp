#pragma once

#include "fastmem/activations.hpp"

// x86 builds with GCC or Clang compile a second, AVX2 build of the hottest loops
// (`__attribute__((target("avx2")))`) and pick it at run time with has_avx2().
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FASTMEM_X86_DISPATCH 1
#endif

namespace fastmem::cpu {

// Whether this CPU runs AVX2. Asked on first use (a function-local static), not while
// the module's constructors run; false where no AVX2 build is compiled.
inline bool has_avx2() {
#ifdef FASTMEM_X86_DISPATCH
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
#else
  return false;
#endif
}

// with_kind (a loop's activation kind as a constant): fastmem/activations.hpp.
using fastmem::with_kind;

}  // namespace fastmem::cpu

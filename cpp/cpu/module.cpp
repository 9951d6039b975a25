// The extension module fastmem._core: C++17/OpenMP kernels.
#include "bind.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastmem C++/OpenMP kernels";
  fastmem::bind::patterns(m);
  fastmem::bind::regions(m);
  fastmem::bind::memorize(m);
  fastmem::bind::information(m);
  fastmem::bind::critical(m);
  m.def("max_threads", &max_threads, "OpenMP threads a kernel uses (honours OMP_NUM_THREADS).");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}

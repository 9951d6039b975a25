// The extension module fastmem._core: C++17/OpenMP kernels.
#include "bind.hpp"

#include <stdexcept>

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

// omp_set_num_threads changes the calling thread's own setting only (each thread that
// OpenMP did not create has its own), so one Python thread can run its kernels on one
// core while another thread's kernels run on another.
void set_num_threads(int n) {
#ifdef _OPENMP
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1");
  omp_set_num_threads(n);
#else
  (void)n;
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
  fastmem::bind::plane(m);
  m.def("max_threads", &max_threads,
        "OpenMP threads a kernel called from this thread uses (honours OMP_NUM_THREADS).");
  m.def("set_num_threads", &set_num_threads, pybind11::arg("n"),
        "OpenMP threads of the kernels called from this thread (this thread only).");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}

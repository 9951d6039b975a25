// The extension module fastmem._cuda: CUDA kernels with the same names and
// arguments as fastmem._core, plus device discovery.
#include "bind.hpp"

namespace fastmem::bind {
void plane(py::module_& m);  // plane_bind.cpp
}  // namespace fastmem::bind

namespace {

pybind11::tuple device_status() {
  std::string why;
  const int n = fastmem::gpu::device_count(why);
  return pybind11::make_tuple(n, why);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastmem CUDA kernels (same names and arguments as fastmem._core)";
  fastmem::bind::patterns(m);
  fastmem::bind::regions(m);
  fastmem::bind::memorize(m);
  fastmem::bind::information(m);
  fastmem::bind::critical(m);
  fastmem::bind::plane(m);
  m.def("device_status", &device_status,
        "(number of devices, reason when there is none) from the CUDA runtime.");
  m.def("runtime_version", &fastmem::gpu::runtime_version);
}

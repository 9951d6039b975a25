// Shared helpers of the _core bindings and the per-topic registration hooks.
// Bindings check what the Python layer promised (dtype, C order, shapes) and
// raise on a mismatch instead of converting: a mismatch is a bug in fastmem.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

namespace fastmem::bind {

namespace py = pybind11;

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("fastmem._core: " + what);
}

// One registration function per kernel topic (each in <topic>_bind.cpp).
void patterns(py::module_& m);
void regions(py::module_& m);
void memorize(py::module_& m);
void information(py::module_& m);
void critical(py::module_& m);
void plane(py::module_& m);

}  // namespace fastmem::bind

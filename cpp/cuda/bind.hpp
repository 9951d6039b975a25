// Shared helpers of the _cuda bindings and the per-topic registration hooks.
// Arrays arrive as any object exposing __cuda_array_interface__ (CuPy, torch,
// Numba); DeviceView turns one into a raw device pointer after checking C order.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime.hpp"

namespace fastmem::bind {

namespace py = pybind11;

[[noreturn]] inline void fail(const std::string& what) {
  throw std::invalid_argument("fastmem._cuda: " + what);
}

inline void check(int code) {
  if (code != 0) throw std::runtime_error("fastmem._cuda: " + gpu::error_string(code));
}

struct DeviceView {
  uintptr_t ptr = 0;
  std::vector<int64_t> shape;
  std::string typestr;  // e.g. "<f8", "<u8"

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(ptr);
  }
};

inline DeviceView device_view(const py::object& obj, const char* name) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    fail(std::string(name) + " is not a device array (no __cuda_array_interface__)");
  const py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceView v;
  v.typestr = cai["typestr"].cast<std::string>();
  for (auto s : cai["shape"].cast<py::tuple>()) v.shape.push_back(s.cast<int64_t>());
  v.ptr = cai["data"].cast<py::tuple>()[0].cast<uintptr_t>();
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    const auto strides = cai["strides"].cast<std::vector<int64_t>>();
    int64_t expect = std::stoll(v.typestr.substr(2));
    for (int64_t d = v.ndim() - 1; d >= 0; --d) {
      if (v.shape[d] > 1 && strides[d] != expect) fail(std::string(name) + " must be C-contiguous");
      expect *= v.shape[d];
    }
  }
  return v;
}

// One registration function per kernel topic (each in <topic>_bind.cpp).
void patterns(py::module_& m);
void regions(py::module_& m);
void memorize(py::module_& m);
void information(py::module_& m);
void critical(py::module_& m);

}  // namespace fastmem::bind

// Shared helpers of the _cuda bindings and the per-topic registration hooks.
// Arrays arrive as any object exposing __cuda_array_interface__ (CuPy, torch,
// Numba); DeviceView turns one into a raw device pointer after checking C order, and
// keeps the interface's `stream` (v3: the stream the producer ordered the data on).
// Launch, opened by every binding over all of its arrays before the drivers run, is the
// device guard and picks the stream the drivers launch on.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
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
  std::string name;     // the argument's name, for messages
  // The interface's `stream`: 1 the legacy default stream, 2 the per-thread default
  // stream, otherwise a cudaStream_t (these are the runtime's own handle values);
  // has_stream is false when the producer gave none (v2, or None: no ordering needed).
  uintptr_t stream = 0;
  bool has_stream = false;

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
  v.name = name;
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
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    v.stream = cai["stream"].cast<uintptr_t>();
    if (v.stream == 0) fail(std::string(name) + ": __cuda_array_interface__ stream 0 is invalid");
    v.has_stream = true;
  }
  return v;
}

// The device guard and stream of one binding call, over all of the call's arrays
// (construct it, then release the GIL, then call the drivers):
// - every non-empty array must be device-accessible memory of one device; that device
//   is made current for the call and the previous one restored afterwards;
// - the drivers launch on the first array's stream (CuPy's current stream when the
//   array is CuPy's; the default stream when the producer names none), made to wait,
//   on the device, for any other stream an array names. Nothing waits on the host.
class Launch {
 public:
  Launch(std::initializer_list<const DeviceView*> views) {
    const DeviceView* first_device = nullptr;
    int device = -1;
    for (const DeviceView* v : views) {
      if (v->ptr == 0) continue;  // an empty array: no memory to check
      int d = -1;
      check(gpu::pointer_device(reinterpret_cast<const void*>(v->ptr), d));
      if (d < 0) fail(v->name + " is not CUDA device memory");
      if (first_device == nullptr) {
        first_device = v;
        device = d;
      } else if (d != device) {
        fail(v->name + " is on CUDA device " + std::to_string(d) + " but " + first_device->name +
             " is on device " + std::to_string(device));
      }
    }
    const DeviceView* with_stream = nullptr;
    for (const DeviceView* v : views)
      if (v->has_stream) {
        with_stream = v;
        break;
      }
    void* stream = with_stream ? reinterpret_cast<void*>(with_stream->stream) : nullptr;
    if (device >= 0) check(gpu::get_device(previous_device_));  // no CUDA call for empty arrays
    if (device >= 0 && device != previous_device_) {
      // A stream handle (not one of the default streams 1 / 2) belongs to the device
      // that was current when its producer exported it.
      if (with_stream && with_stream->stream > 2)
        fail("the arrays are on CUDA device " + std::to_string(device) + " but their stream (" +
             with_stream->name + "'s) belongs to the current device " +
             std::to_string(previous_device_) + "; call inside `with cupy.cuda.Device(" +
             std::to_string(device) + "):`");
      check(gpu::set_device(device));
      restore_device_ = true;
    }
    try {
      for (const DeviceView* v : views)
        if (v->has_stream && v->stream != with_stream->stream)
          check(gpu::stream_wait(stream, reinterpret_cast<void*>(v->stream)));
    } catch (...) {
      if (restore_device_) gpu::set_device(previous_device_);
      throw;
    }
    previous_stream_ = gpu::launch_stream();
    gpu::set_launch_stream(stream);
  }
  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;
  ~Launch() {
    gpu::set_launch_stream(previous_stream_);
    if (restore_device_) gpu::set_device(previous_device_);
  }

 private:
  int previous_device_ = 0;
  bool restore_device_ = false;
  void* previous_stream_ = nullptr;
};

// One registration function per kernel topic (each in <topic>_bind.cpp).
void patterns(py::module_& m);
void regions(py::module_& m);
void memorize(py::module_& m);
void information(py::module_& m);
void critical(py::module_& m);

}  // namespace fastmem::bind

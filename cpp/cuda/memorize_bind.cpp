// Bindings of the memorize kernels: linear_recurrence, relu_sum_eval, cover_margins,
// cover_matrix, cover_gains (same names and arguments as fastmem._core).
#include <cstdint>

#include "bind.hpp"
#include "memorize_drivers.hpp"

namespace fastmem::bind {

namespace {

DeviceView typed(const py::object& obj, const char* name, const char* typestr, int64_t ndim) {
  DeviceView v = device_view(obj, name);
  if (v.typestr != typestr)
    fail(std::string(name) + " must have dtype " + typestr + ", got " + v.typestr);
  if (v.ndim() != ndim) fail(std::string(name) + " has the wrong number of dimensions");
  return v;
}

void linear_recurrence(const py::object& alpha, const py::object& beta, const py::object& out) {
  const DeviceView a = typed(alpha, "alpha", "<f8", 1);
  const DeviceView b = typed(beta, "beta", "<f8", 1);
  const DeviceView o = typed(out, "out", "<f8", 1);
  if (a.shape[0] != b.shape[0] || b.shape[0] != o.shape[0])
    fail("alpha, beta and out must have the same length");
  py::gil_scoped_release release;
  check(gpu::linear_recurrence(a.as<const double>(), b.as<const double>(), o.shape[0],
                               o.as<double>()));
}

void relu_sum_eval(const py::object& t, const py::object& b, const py::object& w,
                   const py::object& prefix, const py::object& out) {
  const DeviceView tv = typed(t, "t", "<f8", 1);
  const DeviceView bv = typed(b, "b", "<f8", 1);
  const DeviceView wv = typed(w, "w", "<f8", 1);
  const DeviceView pv = typed(prefix, "prefix", "<f8", 2);
  const DeviceView ov = typed(out, "out", "<f8", 1);
  if (bv.shape[0] != wv.shape[0]) fail("b and w must have the same length");
  if (tv.shape[0] != ov.shape[0]) fail("t and out must have the same length");
  if (pv.shape[0] != bv.shape[0] + 1 || pv.shape[1] != 4) fail("prefix must be (len(b) + 1, 4)");
  py::gil_scoped_release release;
  check(gpu::relu_sum_eval(tv.as<const double>(), tv.shape[0], bv.as<const double>(),
                           wv.as<const double>(), bv.shape[0], pv.as<double>(),
                           ov.as<double>()));
}

void cover_margins(const py::object& neg, const py::object& pos, const py::object& m) {
  const DeviceView nv = typed(neg, "neg", "<u8", 2);
  const DeviceView pv = typed(pos, "pos", "<u8", 2);
  const DeviceView mv = typed(m, "m", "<i8", 1);
  if (nv.shape[1] != pv.shape[1]) fail("neg and pos must have the same number of words");
  if (mv.shape[0] != nv.shape[0]) fail("m must have one entry per row of neg");
  if (pv.shape[0] < 1) fail("pos must have at least one row");
  py::gil_scoped_release release;
  check(gpu::cover_margins(nv.as<const uint64_t>(), nv.shape[0], pv.as<const uint64_t>(),
                           pv.shape[0], nv.shape[1], mv.as<int64_t>()));
}

void cover_matrix(const py::object& neg, const py::object& m, const py::object& cover) {
  const DeviceView nv = typed(neg, "neg", "<u8", 2);
  const DeviceView mv = typed(m, "m", "<i8", 1);
  const DeviceView cv = typed(cover, "cover", "<u8", 2);
  if (mv.shape[0] != nv.shape[0] || cv.shape[0] != nv.shape[0])
    fail("m and cover must have one row per row of neg");
  if (cv.shape[1] != (nv.shape[0] + 63) / 64) fail("cover must have ceil(rows / 64) words");
  py::gil_scoped_release release;
  check(gpu::cover_matrix(nv.as<const uint64_t>(), nv.shape[0], nv.shape[1],
                          mv.as<const int64_t>(), cv.as<uint64_t>(), cv.shape[1]));
}

void cover_gains(const py::object& cover, const py::object& uncovered, const py::object& gains) {
  const DeviceView cv = typed(cover, "cover", "<u8", 2);
  const DeviceView uv = typed(uncovered, "uncovered", "<u8", 1);
  const DeviceView gv = typed(gains, "gains", "<i8", 1);
  if (uv.shape[0] != cv.shape[1]) fail("uncovered must have one word per cover column");
  if (gv.shape[0] != cv.shape[0]) fail("gains must have one entry per row of cover");
  py::gil_scoped_release release;
  check(gpu::cover_gains(cv.as<const uint64_t>(), cv.shape[0], cv.shape[1],
                         uv.as<const uint64_t>(), gv.as<int64_t>()));
}

}  // namespace

void memorize(py::module_& m) {
  m.def("linear_recurrence", &linear_recurrence, py::arg("alpha"), py::arg("beta"),
        py::arg("out"));
  m.def("relu_sum_eval", &relu_sum_eval, py::arg("t"), py::arg("b"), py::arg("w"),
        py::arg("prefix"), py::arg("out"));
  m.def("cover_margins", &cover_margins, py::arg("neg"), py::arg("pos"), py::arg("m"));
  m.def("cover_matrix", &cover_matrix, py::arg("neg"), py::arg("m"), py::arg("cover"));
  m.def("cover_gains", &cover_gains, py::arg("cover"), py::arg("uncovered"), py::arg("gains"));
}

}  // namespace fastmem::bind

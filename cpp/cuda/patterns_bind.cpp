// Bindings of the pattern kernels: apply_activation, pack_and_activate, hash_patterns,
// snap_thresholds.
#include "bind.hpp"
#include "fastmem/patterns.hpp"
#include "patterns_drivers.hpp"

namespace fastmem::bind {

namespace {

void check_kind(int kind) {
  if (kind < 0 || kind >= kNumActivationKinds) fail("unknown activation kind");
}

void apply_activation(const py::object& z, int kind, double slope) {
  const DeviceView zv = device_view(z, "z");
  if (zv.ndim() != 2) fail("z must be 2-D");
  check_kind(kind);
  const Launch launch({&zv});
  py::gil_scoped_release release;
  if (zv.typestr == "<f8")
    check(gpu::apply_activation<double>(zv.as<double>(), zv.shape[0], zv.shape[1], kind, slope));
  else if (zv.typestr == "<f4")
    check(gpu::apply_activation<float>(zv.as<float>(), zv.shape[0], zv.shape[1], kind,
                                       static_cast<float>(slope)));
  else
    fail("z must be float32 or float64");
}

void pack_and_activate(const py::object& z, const py::object& codes, int64_t bit_offset,
                       int kind, double slope) {
  const DeviceView zv = device_view(z, "z");
  const DeviceView cv = device_view(codes, "codes");
  if (zv.ndim() != 2 || cv.ndim() != 2) fail("z and codes must be 2-D");
  if (zv.shape[0] != cv.shape[0]) fail("z and codes must have the same number of rows");
  if (cv.typestr != "<u8") fail("codes must be uint64");
  check_kind(kind);
  const int64_t last_bit = bit_offset + zv.shape[1] * bits_per_neuron(kind);
  if (bit_offset < 0 || last_bit > 64 * cv.shape[1]) fail("pattern bits exceed codes width");
  auto* cp = cv.as<uint64_t>();
  const Launch launch({&zv, &cv});
  py::gil_scoped_release release;
  if (zv.typestr == "<f8")
    check(gpu::pack_and_activate<double>(zv.as<double>(), zv.shape[0], zv.shape[1], cp,
                                         cv.shape[1], bit_offset, kind, slope));
  else if (zv.typestr == "<f4")
    check(gpu::pack_and_activate<float>(zv.as<float>(), zv.shape[0], zv.shape[1], cp,
                                        cv.shape[1], bit_offset, kind, static_cast<float>(slope)));
  else
    fail("z must be float32 or float64");
}

void hash_patterns(const py::object& codes, const py::object& out) {
  const DeviceView cv = device_view(codes, "codes");
  const DeviceView ov = device_view(out, "out");
  if (cv.ndim() != 2 || ov.ndim() != 1) fail("codes must be 2-D and out 1-D");
  if (cv.shape[0] != ov.shape[0]) fail("codes and out must have the same number of rows");
  if (cv.typestr != "<u8" || ov.typestr != "<u8") fail("codes and out must be uint64");
  const Launch launch({&cv, &ov});
  py::gil_scoped_release release;
  check(gpu::hash_patterns(cv.as<const uint64_t>(), cv.shape[0], cv.shape[1],
                           ov.as<uint64_t>()));
}

void snap_thresholds(const py::object& z, const py::object& h, int64_t fan_in,
                     const py::object& w_abs_sum, const py::object& b_abs, int kind,
                     double gamma) {
  const DeviceView zv = device_view(z, "z");
  const DeviceView hv = device_view(h, "h");
  const DeviceView wv = device_view(w_abs_sum, "w_abs_sum");
  const DeviceView bv = device_view(b_abs, "b_abs");
  if (zv.ndim() != 2 || hv.ndim() != 2) fail("z and h must be 2-D");
  if (zv.shape[0] != hv.shape[0]) fail("z and h must have the same number of rows");
  if (fan_in < 0 || fan_in > hv.shape[1]) fail("fan_in exceeds h's columns");
  if (wv.ndim() != 1 || bv.ndim() != 1 || wv.shape[0] != zv.shape[1] ||
      bv.shape[0] != zv.shape[1])
    fail("w_abs_sum and b_abs must have one entry per column of z");
  for (const DeviceView* v : {&zv, &hv, &wv, &bv})
    if (v->typestr != "<f8") fail("z, h, w_abs_sum and b_abs must be float64");
  check_kind(kind);
  const Launch launch({&zv, &hv, &wv, &bv});
  py::gil_scoped_release release;
  check(gpu::snap_thresholds(zv.as<double>(), zv.shape[0], zv.shape[1], hv.as<double>(),
                             hv.shape[1], fan_in, wv.as<double>(), bv.as<double>(), kind,
                             gamma));
}

}  // namespace

void patterns(py::module_& m) {
  m.def("apply_activation", &apply_activation, py::arg("z"), py::arg("kind"), py::arg("slope"));
  m.def("pack_and_activate", &pack_and_activate, py::arg("z"), py::arg("codes"),
        py::arg("bit_offset"), py::arg("kind"), py::arg("slope"));
  m.def(
      "activation_kinds",
      [] {
        py::dict kinds;
        for (int kind = 0; kind < kNumActivationKinds; ++kind)
          kinds[py::str(kActivationNames[kind])] = py::make_tuple(kind, bits_per_neuron(kind));
        return kinds;
      },
      "{name: (kind code, pattern bits per neuron)} as the kernels define them.");
  m.def("hash_patterns", &hash_patterns, py::arg("codes"), py::arg("out"));
  m.def("snap_thresholds", &snap_thresholds, py::arg("z"), py::arg("h"), py::arg("fan_in"),
        py::arg("w_abs_sum"), py::arg("b_abs"), py::arg("kind"), py::arg("gamma"));
}

}  // namespace fastmem::bind

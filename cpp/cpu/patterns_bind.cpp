// Bindings of the pattern kernels: apply_activation, pack_and_activate, hash_patterns,
// snap_thresholds.
#include <cstdint>

#include "bind.hpp"
#include "fastmem/patterns.hpp"
#include "patterns_drivers.hpp"

namespace fastmem::bind {

namespace {

void check_kind(int kind) {
  require(kind >= 0 && kind < kNumActivationKinds, "unknown activation kind");
}

template <class T>
void apply_activation(CArray<T> z, int kind, double slope) {
  require(z.ndim() == 2, "z must be 2-D");
  check_kind(kind);
  T* zp = z.mutable_data();
  const int64_t rows = z.shape(0), width = z.shape(1);
  py::gil_scoped_release release;
  cpu::apply_activation<T>(zp, rows, width, kind, static_cast<T>(slope));
}

template <class T>
void pack_and_activate(CArray<T> z, CArray<uint64_t> codes, int64_t bit_offset, int kind,
                       double slope) {
  require(z.ndim() == 2 && codes.ndim() == 2, "z and codes must be 2-D");
  require(z.shape(0) == codes.shape(0), "z and codes must have the same number of rows");
  check_kind(kind);
  const int64_t width = z.shape(1), n_words = codes.shape(1);
  const int64_t last_bit = bit_offset + width * bits_per_neuron(kind);
  require(bit_offset >= 0 && last_bit <= 64 * n_words, "pattern bits exceed codes width");
  T* zp = z.mutable_data();
  uint64_t* cp = codes.mutable_data();
  const int64_t rows = z.shape(0);
  py::gil_scoped_release release;
  cpu::pack_and_activate<T>(zp, rows, width, cp, n_words, bit_offset, kind,
                            static_cast<T>(slope));
}

void hash_patterns(CArray<uint64_t> codes, CArray<uint64_t> out) {
  require(codes.ndim() == 2 && out.ndim() == 1, "codes must be 2-D and out 1-D");
  require(codes.shape(0) == out.shape(0), "codes and out must have the same number of rows");
  const uint64_t* cp = codes.data();
  uint64_t* op = out.mutable_data();
  const int64_t rows = codes.shape(0), n_words = codes.shape(1);
  py::gil_scoped_release release;
  cpu::hash_patterns(cp, rows, n_words, op);
}

void snap_thresholds(CArray<double> z, CArray<double> h, int64_t fan_in, CArray<double> w_abs_sum,
                     CArray<double> b_abs, int kind, double gamma) {
  require(z.ndim() == 2 && h.ndim() == 2, "z and h must be 2-D");
  require(z.shape(0) == h.shape(0), "z and h must have the same number of rows");
  require(fan_in >= 0 && fan_in <= h.shape(1), "fan_in exceeds h's columns");
  require(w_abs_sum.ndim() == 1 && b_abs.ndim() == 1, "w_abs_sum and b_abs must be 1-D");
  require(w_abs_sum.shape(0) == z.shape(1) && b_abs.shape(0) == z.shape(1),
          "w_abs_sum and b_abs must have one entry per column of z");
  check_kind(kind);
  double* zp = z.mutable_data();
  const double *hp = h.data(), *wp = w_abs_sum.data(), *bp = b_abs.data();
  const int64_t rows = z.shape(0), width = z.shape(1), stride = h.shape(1);
  py::gil_scoped_release release;
  cpu::snap_thresholds(zp, rows, width, hp, stride, fan_in, wp, bp, kind, gamma);
}

}  // namespace

void patterns(py::module_& m) {
  m.def("snap_thresholds", &snap_thresholds, py::arg("z").noconvert(), py::arg("h").noconvert(),
        py::arg("fan_in"), py::arg("w_abs_sum").noconvert(), py::arg("b_abs").noconvert(),
        py::arg("kind"), py::arg("gamma"));
  m.def("apply_activation", &apply_activation<double>, py::arg("z").noconvert(), py::arg("kind"),
        py::arg("slope"));
  m.def("apply_activation", &apply_activation<float>, py::arg("z").noconvert(), py::arg("kind"),
        py::arg("slope"));
  m.def("pack_and_activate", &pack_and_activate<double>, py::arg("z").noconvert(),
        py::arg("codes").noconvert(), py::arg("bit_offset"), py::arg("kind"), py::arg("slope"));
  m.def("pack_and_activate", &pack_and_activate<float>, py::arg("z").noconvert(),
        py::arg("codes").noconvert(), py::arg("bit_offset"), py::arg("kind"), py::arg("slope"));
  m.def(
      "activation_kinds",
      [] {
        py::dict kinds;
        for (int kind = 0; kind < kNumActivationKinds; ++kind)
          kinds[py::str(kActivationNames[kind])] = py::make_tuple(kind, bits_per_neuron(kind));
        return kinds;
      },
      "{name: (kind code, pattern bits per neuron)} as the kernels define them.");
  m.def("hash_patterns", &hash_patterns, py::arg("codes").noconvert(),
        py::arg("out").noconvert());
}

}  // namespace fastmem::bind

// Bindings of the memorize kernels: linear_recurrence, relu_sum_eval, cover_margins,
// cover_matrix, cover_gains, threshold_pack, cover_step, cover_walks, threshold_votes (same
// names and arguments as fastmem._core).
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
  const Launch launch({&a, &b, &o});
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
  const Launch launch({&tv, &bv, &wv, &pv, &ov});
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
  const Launch launch({&nv, &pv, &mv});
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
  const Launch launch({&nv, &mv, &cv});
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
  const Launch launch({&cv, &uv, &gv});
  py::gil_scoped_release release;
  check(gpu::cover_gains(cv.as<const uint64_t>(), cv.shape[0], cv.shape[1],
                         uv.as<const uint64_t>(), gv.as<int64_t>()));
}

void threshold_pack(const py::object& z, const py::object& b, const py::object& codes) {
  const DeviceView zv = typed(z, "z", "<f8", 2);
  const DeviceView bv = typed(b, "b", "<f8", 1);
  const DeviceView cv = typed(codes, "codes", "<u8", 2);
  if (bv.shape[0] != zv.shape[1]) fail("b must have one entry per column of z");
  if (cv.shape[0] != zv.shape[0]) fail("z and codes must have the same number of rows");
  if (cv.shape[1] != (zv.shape[1] + 63) / 64) fail("codes must have ceil(width / 64) words");
  const Launch launch({&zv, &bv, &cv});
  py::gil_scoped_release release;
  check(gpu::threshold_pack(zv.as<const double>(), zv.shape[0], zv.shape[1],
                            bv.as<const double>(), cv.as<uint64_t>(), cv.shape[1]));
}

// state[0] and alive live on the device and are not read back here: the Python layer
// keeps them consistent (the CPU bindings check them).
void cover_step(const py::object& neg, const py::object& pos, int64_t row, int64_t rule,
                const py::object& alive, const py::object& counts, const py::object& state) {
  const DeviceView nv = typed(neg, "neg", "<u8", 2);
  const DeviceView pv = typed(pos, "pos", "<u8", 2);
  const DeviceView av = typed(alive, "alive", "<i8", 1);
  const DeviceView cv = typed(counts, "counts", "<i8", 1);
  const DeviceView sv = typed(state, "state", "<i8", 1);
  if (nv.shape[1] != pv.shape[1]) fail("neg and pos must have the same number of words");
  if (pv.shape[0] < 1) fail("pos must have at least one row");
  if (row < 0 || row >= nv.shape[0]) fail("row must index a row of neg");
  if (rule != 0 && rule != 1) fail("rule must be 0 (code) or 1 (half)");
  if (av.shape[0] != nv.shape[0] || cv.shape[0] != nv.shape[0])
    fail("alive and counts must have one entry per row of neg");
  if (sv.shape[0] != 2) fail("state must have 2 entries");
  const Launch launch({&nv, &pv, &av, &cv, &sv});
  py::gil_scoped_release release;
  check(gpu::cover_step(nv.as<const uint64_t>(), pv.as<const uint64_t>(), pv.shape[0],
                        nv.shape[1], row, rule, av.as<int64_t>(), cv.as<int64_t>(),
                        sv.as<int64_t>()));
}

// sets and widths live on the device and are not read back here: the Python layer
// keeps them in range (the CPU bindings check them).
void cover_walks(const py::object& codes, int64_t n_neg, const py::object& sets,
                 const py::object& widths, const py::object& orders, int64_t rule,
                 const py::object& flags, const py::object& uncovered) {
  const DeviceView cv = typed(codes, "codes", "<u8", 3);
  const DeviceView sv = typed(sets, "sets", "<i8", 1);
  const DeviceView wv = typed(widths, "widths", "<i8", 1);
  const DeviceView ov = typed(orders, "orders", "<i8", 2);
  const DeviceView fv = typed(flags, "flags", "|u1", 2);
  const DeviceView uv = typed(uncovered, "uncovered", "<i8", 1);
  const int64_t n_rows = cv.shape[1], words = cv.shape[2], cells = wv.shape[0];
  if (n_neg < 0 || n_neg >= n_rows) fail("n_neg must leave at least one positive row of codes");
  if (rule != 0 && rule != 1) fail("rule must be 0 (code) or 1 (half)");
  if (sv.shape[0] != cells || uv.shape[0] != cells)
    fail("sets and uncovered must have one entry per width");
  if (ov.shape[0] != cells || ov.shape[1] != n_neg) fail("orders must be (len(widths), n_neg)");
  if (fv.shape[0] != cells || fv.shape[1] != n_neg) fail("flags must be (len(widths), n_neg)");
  const Launch launch({&cv, &sv, &wv, &ov, &fv, &uv});
  py::gil_scoped_release release;
  check(gpu::cover_walks(cv.as<const uint64_t>(), n_rows, n_neg, words, sv.as<const int64_t>(),
                         wv.as<const int64_t>(), ov.as<const int64_t>(), cells, rule,
                         fv.as<uint8_t>(), uv.as<int64_t>()));
}

void threshold_votes(const py::object& codes, const py::object& units, const py::object& bias,
                     const py::object& owner, const py::object& votes) {
  const DeviceView cv = typed(codes, "codes", "<u8", 2);
  const DeviceView uv = typed(units, "units", "<u8", 2);
  const DeviceView bv = typed(bias, "bias", "<f8", 1);
  const DeviceView ov = typed(owner, "owner", "<i8", 1);
  const DeviceView vv = typed(votes, "votes", "<i8", 2);
  if (uv.shape[1] != cv.shape[1]) fail("codes and units must have the same number of words");
  if (bv.shape[0] != uv.shape[0] || ov.shape[0] != uv.shape[0])
    fail("bias and owner must have one entry per row of units");
  if (vv.shape[0] != cv.shape[0]) fail("votes must have one row per row of codes");
  const Launch launch({&cv, &uv, &bv, &ov, &vv});
  py::gil_scoped_release release;
  check(gpu::threshold_votes(cv.as<const uint64_t>(), cv.shape[0], cv.shape[1],
                             uv.as<const uint64_t>(), bv.as<const double>(),
                             ov.as<const int64_t>(), uv.shape[0], vv.shape[1],
                             vv.as<int64_t>()));
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
  m.def("threshold_pack", &threshold_pack, py::arg("z"), py::arg("b"), py::arg("codes"));
  m.def("cover_step", &cover_step, py::arg("neg"), py::arg("pos"), py::arg("row"),
        py::arg("rule"), py::arg("alive"), py::arg("counts"), py::arg("state"));
  m.def("cover_walks", &cover_walks, py::arg("codes"), py::arg("n_neg"), py::arg("sets"),
        py::arg("widths"), py::arg("orders"), py::arg("rule"), py::arg("flags"),
        py::arg("uncovered"));
  m.def("threshold_votes", &threshold_votes, py::arg("codes"), py::arg("units"),
        py::arg("bias"), py::arg("owner"), py::arg("votes"));
}

}  // namespace fastmem::bind

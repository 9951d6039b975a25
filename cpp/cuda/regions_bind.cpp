// Bindings of the segment engine's splitting kernels on the GPU: the same names and
// arguments as fastmem._core (count_crossings, collect_crossings, emit_pieces,
// next_preactivations).
// Offsets live on the device, so totals are checked against the output shapes only.
#include <cmath>

#include "bind.hpp"
#include "fastmem/patterns.hpp"
#include "regions_drivers.hpp"

namespace fastmem::bind {

namespace {

void check_kind(int kind) {
  if (kind < 0 || kind >= kNumActivationKinds) fail("unknown activation kind");
}

void check_int64(const DeviceView& v, int64_t n, const char* what) {
  if (v.typestr != "<i8" || v.ndim() != 1 || v.shape[0] != n) fail(what);
}

void check_float(const DeviceView& v, const DeviceView& z, int64_t ndim, const char* what) {
  if (v.typestr != z.typestr || v.ndim() != ndim) fail(what);
}

// z: (vertices, width) float; pseg: (pieces,) int64 with vertices == pieces + segments.
void check_vertices(const DeviceView& z, const DeviceView& pseg) {
  if (z.ndim() != 2) fail("z must be 2-D (vertices, width)");
  if (z.typestr != "<f8" && z.typestr != "<f4") fail("z must be float32 or float64");
  if (pseg.ndim() != 1 || pseg.typestr != "<i8") fail("pseg must be 1-D int64");
  if (pseg.shape[0] > 0 && z.shape[0] < pseg.shape[0] + 1)
    fail("z must have more rows (vertices) than there are pieces");
}

void count_crossings(const py::object& z, const py::object& pseg, int kind,
                     const py::object& counts) {
  const DeviceView zv = device_view(z, "z"), sv = device_view(pseg, "pseg");
  const DeviceView cv = device_view(counts, "counts");
  check_vertices(zv, sv);
  check_kind(kind);
  const int64_t n = sv.shape[0];
  check_int64(cv, n, "counts must be int64 with one entry per piece");
  const Launch launch({&zv, &sv, &cv});
  py::gil_scoped_release release;
  if (zv.typestr == "<f8")
    check(gpu::count_crossings<double>(zv.as<double>(), sv.as<int64_t>(), n, zv.shape[1], kind,
                                       cv.as<int64_t>()));
  else
    check(gpu::count_crossings<float>(zv.as<float>(), sv.as<int64_t>(), n, zv.shape[1], kind,
                                      cv.as<int64_t>()));
}

void collect_crossings(const py::object& z, const py::object& vt, const py::object& pseg,
                       int kind, double tol, const py::object& offsets, const py::object& buf,
                       const py::object& n_distinct) {
  const DeviceView zv = device_view(z, "z"), tv = device_view(vt, "vt");
  const DeviceView sv = device_view(pseg, "pseg"), ov = device_view(offsets, "offsets");
  const DeviceView bv = device_view(buf, "buf"), nv = device_view(n_distinct, "n_distinct");
  check_vertices(zv, sv);
  check_kind(kind);
  const int64_t n = sv.shape[0];
  check_float(tv, zv, 1, "vt must be 1-D with z's dtype");
  if (tv.shape[0] != zv.shape[0]) fail("vt must have one entry per vertex");
  check_int64(ov, n + 1, "offsets must be int64 with n + 1 entries");
  check_int64(nv, n, "n_distinct must be int64 with one entry per piece");
  check_float(bv, zv, 1, "buf must be 1-D with z's dtype");
  const Launch launch({&zv, &tv, &sv, &ov, &bv, &nv});
  py::gil_scoped_release release;
  if (zv.typestr == "<f8")
    check(gpu::collect_crossings<double>(zv.as<double>(), tv.as<double>(), sv.as<int64_t>(), n,
                                         zv.shape[1], kind, tol, ov.as<int64_t>(),
                                         bv.as<double>(), nv.as<int64_t>()));
  else
    check(gpu::collect_crossings<float>(zv.as<float>(), tv.as<float>(), sv.as<int64_t>(), n,
                                        zv.shape[1], kind, static_cast<float>(tol),
                                        ov.as<int64_t>(), bv.as<float>(), nv.as<int64_t>()));
}

void emit_pieces(const py::object& z, const py::object& vt, const py::object& pseg,
                 const py::object& codes, const py::object& buf, const py::object& offsets,
                 const py::object& child_offsets, int kind, double slope, int64_t bit_offset,
                 bool write_values, const py::object& out_vt, const py::object& out_seg,
                 const py::object& out_codes, const py::object& out_h,
                 const py::object& scratch) {
  const DeviceView zv = device_view(z, "z"), tv = device_view(vt, "vt");
  const DeviceView sv = device_view(pseg, "pseg"), cv = device_view(codes, "codes");
  const DeviceView bv = device_view(buf, "buf"), ov = device_view(offsets, "offsets");
  const DeviceView kv = device_view(child_offsets, "child_offsets");
  const DeviceView otv = device_view(out_vt, "out_vt"), osv = device_view(out_seg, "out_seg");
  const DeviceView ocv = device_view(out_codes, "out_codes"), ohv = device_view(out_h, "out_h");
  check_vertices(zv, sv);
  check_kind(kind);
  const int64_t n = sv.shape[0], nv = zv.shape[0], width = zv.shape[1];
  check_float(tv, zv, 1, "vt must be 1-D with z's dtype");
  if (tv.shape[0] != nv) fail("vt must have one entry per vertex");
  if (cv.ndim() != 2 || cv.shape[0] != n || cv.typestr != "<u8")
    fail("codes must be uint64 (pieces, words)");
  const int64_t n_words = cv.shape[1];
  check_float(bv, zv, 1, "buf must be 1-D with z's dtype");
  check_int64(ov, n + 1, "offsets must be int64 with n + 1 entries");
  check_int64(kv, n + 1, "child_offsets must be int64 with n + 1 entries");
  if (osv.ndim() != 1) fail("out_seg must be 1-D");
  const int64_t nc = osv.shape[0];
  check_int64(osv, nc, "out_seg must be int64");
  check_float(otv, zv, 1, "out_vt must be 1-D with z's dtype");
  if (otv.shape[0] != nc + (nv - n)) fail("out_vt must have child_offsets[-1] + segments entries");
  if (ocv.ndim() != 2 || ocv.shape[0] != nc || ocv.shape[1] != n_words || ocv.typestr != "<u8")
    fail("out_codes must be uint64 (children, words)");
  const int64_t last_bit = bit_offset + width * bits_per_neuron(kind);
  if (bit_offset < 0 || last_bit > 64 * n_words) fail("pattern bits exceed codes width");
  // out_h (the old vertices' activations) may carry one extra column, set to 1 (the next
  // layer's bias in its GEMM)
  if (write_values) {
    check_float(ohv, zv, 2, "out_h must be 2-D with z's dtype");
    if (ohv.shape[0] != nv || (ohv.shape[1] != width && ohv.shape[1] != width + 1))
      fail("out_h must be (vertices, width) or (vertices, width + 1)");
  }
  const int64_t h_cols = write_values ? ohv.shape[1] : width;
  const DeviceView scv = device_view(scratch, "scratch");
  if (scv.ndim() != 1 || scv.typestr != "<i8") fail("scratch must be 1-D int64");
  const Launch launch({&zv, &tv, &sv, &cv, &bv, &ov, &kv, &otv, &osv, &ocv, &ohv, &scv});
  py::gil_scoped_release release;
  if (zv.typestr == "<f8")
    check(gpu::emit_pieces<double>(zv.as<double>(), tv.as<double>(), sv.as<int64_t>(),
                                   cv.as<uint64_t>(), n, width, n_words, bv.as<double>(),
                                   ov.as<int64_t>(), kv.as<int64_t>(), kind, slope, bit_offset,
                                   write_values, otv.as<double>(), osv.as<int64_t>(),
                                   ocv.as<uint64_t>(), ohv.as<double>(), h_cols,
                                   scv.as<int64_t>()));
  else
    check(gpu::emit_pieces<float>(zv.as<float>(), tv.as<float>(), sv.as<int64_t>(),
                                  cv.as<uint64_t>(), n, width, n_words, bv.as<float>(),
                                  ov.as<int64_t>(), kv.as<int64_t>(), kind,
                                  static_cast<float>(slope), bit_offset, write_values,
                                  otv.as<float>(), osv.as<int64_t>(), ocv.as<uint64_t>(),
                                  ohv.as<float>(), h_cols, scv.as<int64_t>()));
}

// The checks the dense and the sparse next_preactivations share (width_next given).
struct NextViews {
  DeviceView zv, tv, sv, bv, ov, kv, znv, scv, outv, ncv;
  int64_t n, width;
};

NextViews next_views(const py::object& z, const py::object& vt, const py::object& pseg,
                     const py::object& buf, const py::object& offsets,
                     const py::object& child_offsets, int kind, int64_t width_next,
                     const py::object& zn, const py::object& scratch, const py::object& out,
                     int kind_next, const py::object& next_counts) {
  NextViews a{device_view(z, "z"),
              device_view(vt, "vt"),
              device_view(pseg, "pseg"),
              device_view(buf, "buf"),
              device_view(offsets, "offsets"),
              device_view(child_offsets, "child_offsets"),
              device_view(zn, "zn"),
              device_view(scratch, "scratch"),
              device_view(out, "out"),
              device_view(next_counts, "next_counts"),
              0,
              0};
  check_vertices(a.zv, a.sv);
  check_kind(kind);
  const int64_t n = a.sv.shape[0], nv = a.zv.shape[0];
  a.n = n;
  a.width = a.zv.shape[1];
  check_float(a.tv, a.zv, 1, "vt must be 1-D with z's dtype");
  if (a.tv.shape[0] != nv) fail("vt must have one entry per vertex");
  check_float(a.bv, a.zv, 1, "buf must be 1-D with z's dtype");
  check_int64(a.ov, n + 1, "offsets must be int64 with n + 1 entries");
  check_int64(a.kv, n + 1, "child_offsets must be int64 with n + 1 entries");
  if (a.scv.ndim() != 1 || a.scv.typestr != "<i8") fail("scratch must be 1-D int64");
  check_float(a.znv, a.zv, 2, "zn must be 2-D with z's dtype");
  if (a.znv.shape[0] != nv || a.znv.shape[1] != width_next)
    fail("zn must be (vertices, width_next)");
  check_float(a.outv, a.zv, 2, "out must be 2-D with z's dtype");
  if (a.outv.shape[1] != width_next) fail("out must be (new vertices, width_next)");
  if (kind_next < -1 || kind_next >= kNumActivationKinds) fail("unknown activation kind_next");
  if (kind_next >= 0 && (a.ncv.ndim() != 1 || a.ncv.typestr != "<i8" ||
                         a.ncv.shape[0] != a.outv.shape[0] - (nv - n)))
    fail("next_counts must be int64 with child_offsets[-1] entries");
  return a;
}

// snap_to: None or (width_next,) with z's dtype; snap_unit, snap_w >= 0 (regions.hpp's
// Columns).
struct SnapArgs {
  DeviceView view;
  bool on;
};

SnapArgs snap_view(const py::object& snap_to, const DeviceView& zv, int64_t width_next,
                   double snap_unit, double snap_w) {
  if (!(std::isfinite(snap_unit) && snap_unit >= 0 && std::isfinite(snap_w) && snap_w >= 0))
    fail("snap_unit and snap_w must be finite and >= 0");
  if (snap_to.is_none()) return {DeviceView{}, false};  // empty: Launch skips it
  SnapArgs s{device_view(snap_to, "snap_to"), true};
  check_float(s.view, zv, 1, "snap_to must be 1-D (width_next,) with z's dtype");
  if (zv.typestr != "<f8") fail("snap_to: float64 only");
  if (s.view.shape[0] != width_next) fail("snap_to must be 1-D (width_next,) with z's dtype");
  return s;
}

void next_preactivations(const py::object& z, const py::object& vt, const py::object& pseg,
                         const py::object& buf, const py::object& offsets,
                         const py::object& child_offsets, int kind, double slope,
                         const py::object& wt, const py::object& zn, const py::object& scratch,
                         const py::object& out, int kind_next, const py::object& next_counts,
                         const py::object& snap_to, double snap_unit, double snap_w) {
  const DeviceView wv = device_view(wt, "wt"), zv0 = device_view(z, "z");
  check_float(wv, zv0, 2, "wt must be 2-D with z's dtype");
  if (zv0.ndim() != 2 || wv.shape[0] != zv0.shape[1] + 1)
    fail("wt must be (width + 1, width_next)");
  const int64_t width_next = wv.shape[1];
  const NextViews a = next_views(z, vt, pseg, buf, offsets, child_offsets, kind, width_next, zn,
                                 scratch, out, kind_next, next_counts);
  int64_t* nc = kind_next >= 0 ? a.ncv.as<int64_t>() : nullptr;
  const SnapArgs snap = snap_view(snap_to, a.zv, width_next, snap_unit, snap_w);
  const Launch launch({&a.zv, &a.tv, &a.sv, &a.bv, &a.ov, &a.kv, &wv, &a.znv, &a.scv, &a.outv,
                       &a.ncv, &snap.view});
  py::gil_scoped_release release;
  if (a.zv.typestr == "<f8")
    check(gpu::next_preactivations<double>(
        a.zv.as<double>(), a.tv.as<double>(), a.sv.as<int64_t>(), a.n, a.width,
        a.bv.as<double>(), a.ov.as<int64_t>(), a.kv.as<int64_t>(), kind, slope,
        wv.as<double>(), width_next, a.znv.as<double>(), a.scv.as<int64_t>(),
        a.outv.as<double>(), kind_next, nc, snap.on ? snap.view.as<double>() : nullptr,
        snap_unit, snap_w));
  else
    check(gpu::next_preactivations<float>(
        a.zv.as<float>(), a.tv.as<float>(), a.sv.as<int64_t>(), a.n, a.width, a.bv.as<float>(),
        a.ov.as<int64_t>(), a.kv.as<int64_t>(), kind, static_cast<float>(slope),
        wv.as<float>(), width_next, a.znv.as<float>(), a.scv.as<int64_t>(),
        a.outv.as<float>(), kind_next, nc, snap.on ? snap.view.as<float>() : nullptr,
        static_cast<float>(snap_unit), static_cast<float>(snap_w)));
}

// col_idx's values are trusted to lie in [0, width_next) (the layer graph builds them from
// the op's shapes): checking them would read the whole array back from the device.
void next_preactivations_sparse(const py::object& z, const py::object& vt,
                                const py::object& pseg, const py::object& buf,
                                const py::object& offsets, const py::object& child_offsets,
                                int kind, double slope, const py::object& col_ptr,
                                const py::object& col_idx, const py::object& col_val,
                                const py::object& bias, const py::object& zn,
                                const py::object& scratch, const py::object& out, int kind_next,
                                const py::object& next_counts, const py::object& snap_to,
                                double snap_unit, double snap_w) {
  const DeviceView zv0 = device_view(z, "z"), pv = device_view(col_ptr, "col_ptr");
  const DeviceView iv = device_view(col_idx, "col_idx"), vv = device_view(col_val, "col_val");
  const DeviceView bsv = device_view(bias, "bias");
  if (zv0.ndim() != 2) fail("z must be 2-D (vertices, width)");
  check_int64(pv, zv0.shape[1] + 1, "col_ptr must be int64 with width + 1 entries");
  if (iv.ndim() != 1 || iv.typestr != "<i8") fail("col_idx must be 1-D int64");
  check_float(vv, zv0, 1, "col_val must be 1-D with z's dtype");
  if (vv.shape[0] != iv.shape[0]) fail("col_idx and col_val must be of one length");
  check_float(bsv, zv0, 1, "bias must be 1-D with z's dtype");
  const int64_t width_next = bsv.shape[0];
  const NextViews a = next_views(z, vt, pseg, buf, offsets, child_offsets, kind, width_next, zn,
                                 scratch, out, kind_next, next_counts);
  int64_t* nc = kind_next >= 0 ? a.ncv.as<int64_t>() : nullptr;
  const SnapArgs snap = snap_view(snap_to, a.zv, width_next, snap_unit, snap_w);
  const Launch launch({&a.zv, &a.tv, &a.sv, &a.bv, &a.ov, &a.kv, &pv, &iv, &vv, &bsv, &a.znv,
                       &a.scv, &a.outv, &a.ncv, &snap.view});
  py::gil_scoped_release release;
  if (a.zv.typestr == "<f8")
    check(gpu::next_preactivations_sparse<double>(
        a.zv.as<double>(), a.tv.as<double>(), a.sv.as<int64_t>(), a.n, a.width,
        a.bv.as<double>(), a.ov.as<int64_t>(), a.kv.as<int64_t>(), kind, slope,
        pv.as<int64_t>(), iv.as<int64_t>(), vv.as<double>(), bsv.as<double>(), width_next,
        a.znv.as<double>(), a.scv.as<int64_t>(), a.outv.as<double>(), kind_next, nc,
        snap.on ? snap.view.as<double>() : nullptr, snap_unit, snap_w));
  else
    check(gpu::next_preactivations_sparse<float>(
        a.zv.as<float>(), a.tv.as<float>(), a.sv.as<int64_t>(), a.n, a.width, a.bv.as<float>(),
        a.ov.as<int64_t>(), a.kv.as<int64_t>(), kind, static_cast<float>(slope),
        pv.as<int64_t>(), iv.as<int64_t>(), vv.as<float>(), bsv.as<float>(), width_next,
        a.znv.as<float>(), a.scv.as<int64_t>(), a.outv.as<float>(), kind_next, nc,
        snap.on ? snap.view.as<float>() : nullptr, static_cast<float>(snap_unit),
        static_cast<float>(snap_w)));
}

}  // namespace

void regions(py::module_& m) {
  m.def("count_crossings", &count_crossings, py::arg("z"), py::arg("pseg"), py::arg("kind"),
        py::arg("counts"));
  m.def("collect_crossings", &collect_crossings, py::arg("z"), py::arg("vt"), py::arg("pseg"),
        py::arg("kind"), py::arg("tol"), py::arg("offsets"), py::arg("buf"),
        py::arg("n_distinct"));
  m.def("emit_pieces", &emit_pieces, py::arg("z"), py::arg("vt"), py::arg("pseg"),
        py::arg("codes"), py::arg("buf"), py::arg("offsets"), py::arg("child_offsets"),
        py::arg("kind"), py::arg("slope"), py::arg("bit_offset"), py::arg("write_values"),
        py::arg("out_vt"), py::arg("out_seg"), py::arg("out_codes"), py::arg("out_h"),
        py::arg("scratch"));
  m.def("next_preactivations", &next_preactivations, py::arg("z"), py::arg("vt"),
        py::arg("pseg"), py::arg("buf"), py::arg("offsets"), py::arg("child_offsets"),
        py::arg("kind"), py::arg("slope"), py::arg("wt"), py::arg("zn"), py::arg("scratch"),
        py::arg("out"), py::arg("kind_next"), py::arg("next_counts"),
        py::arg("snap_to") = py::none(), py::arg("snap_unit") = 0.0, py::arg("snap_w") = 0.0);
  m.def("next_preactivations_sparse", &next_preactivations_sparse, py::arg("z"), py::arg("vt"),
        py::arg("pseg"), py::arg("buf"), py::arg("offsets"), py::arg("child_offsets"),
        py::arg("kind"), py::arg("slope"), py::arg("col_ptr"), py::arg("col_idx"),
        py::arg("col_val"), py::arg("bias"), py::arg("zn"), py::arg("scratch"), py::arg("out"),
        py::arg("kind_next"), py::arg("next_counts"), py::arg("snap_to") = py::none(),
        py::arg("snap_unit") = 0.0, py::arg("snap_w") = 0.0);
}

}  // namespace fastmem::bind

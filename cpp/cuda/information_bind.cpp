// Bindings of the information kernels on CUDA: same names and arguments as fastmem._core.
#include <algorithm>
#include <vector>

#include "bind.hpp"
#include "information_drivers.hpp"

namespace fastmem::bind {

namespace {

DeviceView typed(const py::object& obj, const char* name, const char* typestr, int64_t ndim) {
  DeviceView v = device_view(obj, name);
  if (v.typestr != typestr) fail(std::string(name) + " has the wrong dtype");
  if (v.ndim() != ndim) fail(std::string(name) + " has the wrong number of dimensions");
  return v;
}

// `e` receives the edges' view (for the call's Launch).
BinSpec make_spec(int kind, const py::object& edges, double lo, double scale, int64_t n_codes,
                  DeviceView& e) {
  if (kind < 0 || kind > 3) fail("unknown bin kind");
  e = typed(edges, "edges", "<f8", 1);
  if (kind <= 1 && e.shape[0] < 1) fail("edge kinds need at least one edge");
  if (kind != 3 && n_codes < 1) fail("n_codes must be positive");
  return BinSpec{kind, e.as<const double>(), e.shape[0], lo, scale, n_codes};
}

DeviceView float_matrix(const py::object& a) {
  DeviceView v = device_view(a, "a");
  if (v.ndim() != 2) fail("a must be 2-D");
  if (v.typestr != "<f8" && v.typestr != "<f4") fail("a must be float32 or float64");
  return v;
}

void bin_keys(const py::object& a, int kind, const py::object& edges, double lo, double scale,
              int64_t n_codes, int64_t rows_per_segment, const py::object& key1,
              const py::object& key2, const py::object& occupancy, const py::object& bad) {
  const DeviceView av = float_matrix(a);
  DeviceView ev;
  const BinSpec s = make_spec(kind, edges, lo, scale, n_codes, ev);
  const int64_t rows = av.shape[0], width = av.shape[1];
  if (rows_per_segment < 1 || rows % rows_per_segment != 0)
    fail("rows must be a multiple of rows_per_segment");
  const DeviceView k1 = typed(key1, "key1", "<u8", 1), k2 = typed(key2, "key2", "<u8", 1);
  if (k1.shape[0] != rows || k2.shape[0] != rows) fail("key1 and key2 must have one entry per row");
  const DeviceView ov = typed(occupancy, "occupancy", "|u1", 1);
  const int64_t cells = (rows / rows_per_segment) * width * n_codes;
  if (ov.shape[0] != 0 && (kind == 3 || ov.shape[0] != cells))
    fail("occupancy must be empty or hold segments * width * n_codes flags");
  const DeviceView bv = typed(bad, "bad", "<i8", 1);
  if (bv.shape[0] != 1) fail("bad must have one entry");
  uint8_t* occ = ov.shape[0] ? ov.as<uint8_t>() : nullptr;
  const Launch launch({&av, &ev, &k1, &k2, &ov, &bv});
  py::gil_scoped_release release;
  if (av.typestr == "<f8")
    check(gpu::bin_keys<double>(av.as<const double>(), rows, width, s, rows_per_segment,
                                k1.as<uint64_t>(), k2.as<uint64_t>(), occ, bv.as<int64_t>()));
  else
    check(gpu::bin_keys<float>(av.as<const float>(), rows, width, s, rows_per_segment,
                               k1.as<uint64_t>(), k2.as<uint64_t>(), occ, bv.as<int64_t>()));
}

void bin_rows_equal(const py::object& a, int kind, const py::object& edges, double lo,
                    double scale, int64_t n_codes, const py::object& rows_a,
                    const py::object& rows_b, const py::object& differ) {
  const DeviceView av = float_matrix(a);
  DeviceView ev;
  const BinSpec s = make_spec(kind, edges, lo, scale, n_codes, ev);
  const DeviceView ra = typed(rows_a, "rows_a", "<i8", 1), rb = typed(rows_b, "rows_b", "<i8", 1);
  if (ra.shape[0] != rb.shape[0]) fail("rows_a and rows_b must be 1-D of equal length");
  const DeviceView dv = typed(differ, "differ", "<i8", 1);
  if (dv.shape[0] != 1) fail("differ must have one entry");
  // Row indices come from fastmem's own argsort over these rows: in range by construction.
  const Launch launch({&av, &ev, &ra, &rb, &dv});
  py::gil_scoped_release release;
  if (av.typestr == "<f8")
    check(gpu::bin_rows_equal<double>(av.as<const double>(), av.shape[1], s,
                                      ra.as<const int64_t>(), rb.as<const int64_t>(),
                                      ra.shape[0], dv.as<int64_t>()));
  else
    check(gpu::bin_rows_equal<float>(av.as<const float>(), av.shape[1], s,
                                     ra.as<const int64_t>(), rb.as<const int64_t>(), ra.shape[0],
                                     dv.as<int64_t>()));
}

void bin_codes(const py::object& a, int kind, const py::object& edges, double lo, double scale,
               int64_t n_codes, const py::object& out) {
  const DeviceView av = float_matrix(a);
  DeviceView ev;
  const BinSpec s = make_spec(kind, edges, lo, scale, n_codes, ev);
  const DeviceView ov = typed(out, "out", "<i8", 2);
  if (ov.shape != av.shape) fail("a and out must have the same shape");
  const Launch launch({&av, &ev, &ov});
  py::gil_scoped_release release;
  if (av.typestr == "<f8")
    check(gpu::bin_codes<double>(av.as<const double>(), av.shape[0], av.shape[1], s,
                                 ov.as<int64_t>()));
  else
    check(gpu::bin_codes<float>(av.as<const float>(), av.shape[0], av.shape[1], s,
                                ov.as<int64_t>()));
}

// segments: a list of (rows, width_g) device arrays of one dtype. Labels, inputs and edge
// offsets come from fastmem's own bookkeeping (information.py): checked there, not here
// (device memory); sizes are checked.
void bin_plane(const py::list& segments, int kind, const py::object& edges, int64_t n_edges,
               const py::object& edge_offsets, const py::object& lo, const py::object& scale,
               int64_t n_codes, const py::object& labels, int64_t n_labels,
               const py::object& inputs, int64_t n_inputs, const py::object& clog,
               const py::object& scratch, const py::object& out, const py::object& bad) {
  const int64_t count = static_cast<int64_t>(segments.size());
  if (count < 1) fail("segments: at least one");
  if (kind < 0 || kind > 3) fail("unknown bin kind");
  if (kind <= 1 && n_edges < 1) fail("edge kinds need at least one edge");
  if (kind != 3 && n_codes < 1) fail("n_codes must be positive");
  const DeviceView ev = typed(edges, "edges", "<f8", 1);
  const DeviceView eo = typed(edge_offsets, "edge_offsets", "<i8", 1);
  const DeviceView lv = typed(lo, "lo", "<f8", 1), sv = typed(scale, "scale", "<f8", 1);
  if (eo.shape[0] != count || lv.shape[0] != count || sv.shape[0] != count)
    fail("edge_offsets, lo, scale: one per segment");
  const DeviceView yv = typed(labels, "labels", "<i8", 1);
  const int64_t rows = yv.shape[0];
  if (rows < 1 || n_labels < 1) fail("labels: one per row");
  const DeviceView xv = typed(inputs, "inputs", "<i8", 1);
  if (xv.shape[0] != 0 && xv.shape[0] != rows) fail("inputs: empty or one per row");
  const DeviceView cv = typed(clog, "clog", "<f8", 1);
  if (cv.shape[0] != rows + 1) fail("clog: rows + 1 entries");
  const DeviceView ov = typed(out, "out", "<f8", 2);
  if (ov.shape[0] != count || ov.shape[1] != 3) fail("out must be (segments, 3)");
  const DeviceView bv = typed(bad, "bad", "<i8", 1);
  if (bv.shape[0] != 1) fail("bad must have one entry");
  std::vector<uintptr_t> ptrs(static_cast<size_t>(count));
  std::vector<int64_t> widths(static_cast<size_t>(count));
  std::string typestr;
  int64_t max_words = 1;
  const BinSpec probe{kind, nullptr, n_edges, 0.0, 0.0, n_codes};
  for (int64_t g = 0; g < count; ++g) {
    const DeviceView a = device_view(segments[static_cast<size_t>(g)], "segments[g]");
    if (g == 0) typestr = a.typestr;
    if (a.typestr != typestr || (typestr != "<f4" && typestr != "<f8"))
      fail("segments must all be float32 or all float64");
    if (a.ndim() != 2 || a.shape[0] != rows || a.shape[1] < 1)
      fail("every segment must be 2-D with one row per label and at least one column");
    ptrs[static_cast<size_t>(g)] = a.ptr;
    widths[static_cast<size_t>(g)] = a.shape[1];
    max_words = std::max(max_words, plane_words(probe, a.shape[1]));
  }
  const DeviceView wv = typed(scratch, "scratch", "<i8", 1);
  if (wv.shape[0] < 2 * count + count * plane_scratch_words(rows, max_words))
    fail("scratch too small: 2 + plane_scratch_words(rows, words) per segment");
  const int64_t* xp = xv.shape[0] ? xv.as<const int64_t>() : nullptr;
  py::gil_scoped_release release;
  if (typestr == "<f8")
    check(gpu::bin_plane<double>(
        reinterpret_cast<const double* const*>(ptrs.data()), widths.data(), count, rows, kind,
        ev.as<const double>(), n_edges, eo.as<const int64_t>(), lv.as<const double>(),
        sv.as<const double>(), n_codes, yv.as<const int64_t>(), n_labels, xp, n_inputs,
        cv.as<const double>(), wv.as<int64_t>(), ov.as<double>(), bv.as<int64_t>()));
  else
    check(gpu::bin_plane<float>(
        reinterpret_cast<const float* const*>(ptrs.data()), widths.data(), count, rows, kind,
        ev.as<const double>(), n_edges, eo.as<const int64_t>(), lv.as<const double>(),
        sv.as<const double>(), n_codes, yv.as<const int64_t>(), n_labels, xp, n_inputs,
        cv.as<const double>(), wv.as<int64_t>(), ov.as<double>(), bv.as<int64_t>()));
}

void kde_tile(const py::object& tile, const py::object& row_norms, const py::object& col_norms,
              const py::object& row_labels, const py::object& col_labels, double scale,
              int64_t row_offset, int64_t col_offset, const py::object& row_all,
              const py::object& row_cls, const py::object& col_all, const py::object& col_cls,
              bool columns) {
  const DeviceView tv = typed(tile, "tile", "<f8", 2);
  const int64_t rows = tv.shape[0], cols = tv.shape[1];
  const DeviceView rn = typed(row_norms, "row_norms", "<f8", 1);
  const DeviceView cn = typed(col_norms, "col_norms", "<f8", 1);
  const DeviceView ry = typed(row_labels, "row_labels", "<i8", 1);
  const DeviceView cy = typed(col_labels, "col_labels", "<i8", 1);
  const DeviceView ra = typed(row_all, "row_all", "<f8", 1);
  const DeviceView rc = typed(row_cls, "row_cls", "<f8", 1);
  const DeviceView ca = typed(col_all, "col_all", "<f8", 1);
  const DeviceView cc = typed(col_cls, "col_cls", "<f8", 1);
  for (const DeviceView* v : {&rn, &ry, &ra, &rc})
    if (v->shape[0] != rows) fail("row arrays must have one entry per tile row");
  for (const DeviceView* v : {&cn, &cy, &ca, &cc})
    if (v->shape[0] != cols) fail("column arrays must have one entry per tile column");
  const Launch launch({&tv, &rn, &cn, &ry, &cy, &ra, &rc, &ca, &cc});
  py::gil_scoped_release release;
  check(gpu::kde_tile(tv.as<double>(), rows, cols, rn.as<const double>(), cn.as<const double>(),
                      ry.as<const int64_t>(), cy.as<const int64_t>(), scale, row_offset,
                      col_offset, ra.as<double>(), rc.as<double>(), ca.as<double>(),
                      cc.as<double>(), columns));
}

void kde_screen(const py::object& tile, const py::object& row_norms, const py::object& col_norms,
                const py::object& row_lengths, const py::object& col_lengths, double err,
                double cutoff, int64_t row_offset, int64_t col_offset, const py::object& count) {
  const DeviceView tv = typed(tile, "tile", "<f4", 2);
  const int64_t rows = tv.shape[0], cols = tv.shape[1];
  const DeviceView rn = typed(row_norms, "row_norms", "<f8", 1);
  const DeviceView cn = typed(col_norms, "col_norms", "<f8", 1);
  const DeviceView rl = typed(row_lengths, "row_lengths", "<f8", 1);
  const DeviceView cl = typed(col_lengths, "col_lengths", "<f8", 1);
  const DeviceView cv = typed(count, "count", "<i8", 1);
  for (const DeviceView* v : {&rn, &rl})
    if (v->shape[0] != rows) fail("row arrays must have one entry per tile row");
  for (const DeviceView* v : {&cn, &cl})
    if (v->shape[0] != cols) fail("column arrays must have one entry per tile column");
  if (cv.shape[0] != 1) fail("count must have one entry");
  const Launch launch({&tv, &rn, &cn, &rl, &cl, &cv});
  py::gil_scoped_release release;
  check(gpu::kde_screen(tv.as<const float>(), rows, cols, rn.as<const double>(),
                        cn.as<const double>(), rl.as<const double>(), cl.as<const double>(), err,
                        cutoff, row_offset, col_offset, cv.as<int64_t>()));
}

void kde_sparse_tile(const py::object& tile, const py::object& a, const py::object& b,
                     const py::object& row_norms, const py::object& col_norms,
                     const py::object& row_lengths, const py::object& col_lengths,
                     const py::object& row_labels, const py::object& col_labels, double err,
                     double cutoff, double scale, int64_t row_offset, int64_t col_offset,
                     const py::object& row_all, const py::object& row_cls,
                     const py::object& col_all, const py::object& col_cls, bool columns) {
  const DeviceView tv = typed(tile, "tile", "<f4", 2);
  const int64_t rows = tv.shape[0], cols = tv.shape[1];
  const DeviceView av = typed(a, "a", "<f8", 2);
  const DeviceView bv = typed(b, "b", "<f8", 2);
  const int64_t d = av.shape[1];
  if (av.shape[0] != rows || bv.shape[0] != cols || bv.shape[1] != d)
    fail("a must hold the tile's rows and b its columns, of equal width");
  const DeviceView rn = typed(row_norms, "row_norms", "<f8", 1);
  const DeviceView cn = typed(col_norms, "col_norms", "<f8", 1);
  const DeviceView rl = typed(row_lengths, "row_lengths", "<f8", 1);
  const DeviceView cl = typed(col_lengths, "col_lengths", "<f8", 1);
  const DeviceView ry = typed(row_labels, "row_labels", "<i8", 1);
  const DeviceView cy = typed(col_labels, "col_labels", "<i8", 1);
  const DeviceView ra = typed(row_all, "row_all", "<f8", 1);
  const DeviceView rc = typed(row_cls, "row_cls", "<f8", 1);
  const DeviceView ca = typed(col_all, "col_all", "<f8", 1);
  const DeviceView cc = typed(col_cls, "col_cls", "<f8", 1);
  for (const DeviceView* v : {&rn, &rl, &ry, &ra, &rc})
    if (v->shape[0] != rows) fail("row arrays must have one entry per tile row");
  for (const DeviceView* v : {&cn, &cl, &cy, &ca, &cc})
    if (v->shape[0] != cols) fail("column arrays must have one entry per tile column");
  const Launch launch({&tv, &av, &bv, &rn, &cn, &rl, &cl, &ry, &cy, &ra, &rc, &ca, &cc});
  py::gil_scoped_release release;
  check(gpu::kde_sparse_tile(
      tv.as<const float>(), av.as<const double>(), bv.as<const double>(), rows, cols, d,
      rn.as<const double>(), cn.as<const double>(), rl.as<const double>(),
      cl.as<const double>(), ry.as<const int64_t>(), cy.as<const int64_t>(), err, cutoff, scale,
      row_offset, col_offset, ra.as<double>(), rc.as<double>(), ca.as<double>(),
      cc.as<double>(), columns));
}

}  // namespace

void information(py::module_& m) {
  m.def("bin_keys", &bin_keys, py::arg("a"), py::arg("kind"), py::arg("edges"), py::arg("lo"),
        py::arg("scale"), py::arg("n_codes"), py::arg("rows_per_segment"), py::arg("key1"),
        py::arg("key2"), py::arg("occupancy"), py::arg("bad"));
  m.def("bin_rows_equal", &bin_rows_equal, py::arg("a"), py::arg("kind"), py::arg("edges"),
        py::arg("lo"), py::arg("scale"), py::arg("n_codes"), py::arg("rows_a"),
        py::arg("rows_b"), py::arg("differ"));
  m.def("bin_codes", &bin_codes, py::arg("a"), py::arg("kind"), py::arg("edges"), py::arg("lo"),
        py::arg("scale"), py::arg("n_codes"), py::arg("out"));
  m.def("bin_plane", &bin_plane, py::arg("segments"), py::arg("kind"), py::arg("edges"),
        py::arg("n_edges"), py::arg("edge_offsets"), py::arg("lo"), py::arg("scale"),
        py::arg("n_codes"), py::arg("labels"), py::arg("n_labels"), py::arg("inputs"),
        py::arg("n_inputs"), py::arg("clog"), py::arg("scratch"), py::arg("out"),
        py::arg("bad"));
  m.def("kde_tile", &kde_tile, py::arg("tile"), py::arg("row_norms"), py::arg("col_norms"),
        py::arg("row_labels"), py::arg("col_labels"), py::arg("scale"), py::arg("row_offset"),
        py::arg("col_offset"), py::arg("row_all"), py::arg("row_cls"), py::arg("col_all"),
        py::arg("col_cls"), py::arg("columns"));
  m.def("kde_screen", &kde_screen, py::arg("tile"), py::arg("row_norms"), py::arg("col_norms"),
        py::arg("row_lengths"), py::arg("col_lengths"), py::arg("err"), py::arg("cutoff"),
        py::arg("row_offset"), py::arg("col_offset"), py::arg("count"));
  m.def("kde_sparse_tile", &kde_sparse_tile, py::arg("tile"), py::arg("a"), py::arg("b"),
        py::arg("row_norms"), py::arg("col_norms"), py::arg("row_lengths"),
        py::arg("col_lengths"), py::arg("row_labels"), py::arg("col_labels"), py::arg("err"),
        py::arg("cutoff"), py::arg("scale"), py::arg("row_offset"), py::arg("col_offset"),
        py::arg("row_all"), py::arg("row_cls"), py::arg("col_all"), py::arg("col_cls"),
        py::arg("columns"));
}

}  // namespace fastmem::bind

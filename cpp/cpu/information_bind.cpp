// Bindings of the information kernels: bin_keys, bin_rows_equal, bin_codes, bin_plane,
// kde_tile, kde_screen, kde_sparse_tile.
//
// The binning spec is passed as (kind, edges, lo, scale, n_codes); see
// fastmem/information.hpp. Counts are written into 1-element int64 arrays so that
// the CUDA module, whose results stay on the device, has the same signatures.
#include <cstdint>
#include <vector>

#include "bind.hpp"
#include "information_drivers.hpp"

namespace fastmem::bind {

namespace {

BinSpec make_spec(int kind, const CArray<double>& edges, double lo, double scale,
                  int64_t n_codes) {
  require(kind >= 0 && kind <= 3, "unknown bin kind");
  require(edges.ndim() == 1, "edges must be 1-D");
  require(kind > 1 || edges.shape(0) >= 1, "edge kinds need at least one edge");
  require(kind == 3 || n_codes >= 1, "n_codes must be positive");
  return BinSpec{kind, edges.data(), static_cast<int64_t>(edges.shape(0)), lo, scale, n_codes};
}

template <class T>
void bin_keys(CArray<T> a, int kind, CArray<double> edges, double lo, double scale,
              int64_t n_codes, int64_t rows_per_segment, CArray<uint64_t> key1,
              CArray<uint64_t> key2, CArray<uint8_t> occupancy, CArray<int64_t> bad) {
  require(a.ndim() == 2, "a must be 2-D");
  const BinSpec s = make_spec(kind, edges, lo, scale, n_codes);
  const int64_t rows = a.shape(0), width = a.shape(1);
  require(rows_per_segment >= 1 && rows % rows_per_segment == 0,
          "rows must be a multiple of rows_per_segment");
  require(key1.ndim() == 1 && key2.ndim() == 1 && key1.shape(0) == rows && key2.shape(0) == rows,
          "key1 and key2 must have one entry per row");
  require(bad.ndim() == 1 && bad.shape(0) == 1, "bad must have one entry");
  require(occupancy.ndim() == 1, "occupancy must be 1-D");
  const int64_t cells = (rows / rows_per_segment) * width * n_codes;
  require(occupancy.shape(0) == 0 || (kind != 3 && occupancy.shape(0) == cells),
          "occupancy must be empty or hold segments * width * n_codes flags");
  uint8_t* occ = occupancy.shape(0) ? occupancy.mutable_data() : nullptr;
  const T* ap = a.data();
  uint64_t* k1 = key1.mutable_data();
  uint64_t* k2 = key2.mutable_data();
  int64_t* bp = bad.mutable_data();
  py::gil_scoped_release release;
  *bp = cpu::bin_keys<T>(ap, rows, width, s, rows_per_segment, k1, k2, occ);
}

template <class T>
void bin_rows_equal(CArray<T> a, int kind, CArray<double> edges, double lo, double scale,
                    int64_t n_codes, CArray<int64_t> rows_a, CArray<int64_t> rows_b,
                    CArray<int64_t> differ) {
  require(a.ndim() == 2, "a must be 2-D");
  const BinSpec s = make_spec(kind, edges, lo, scale, n_codes);
  require(rows_a.ndim() == 1 && rows_b.ndim() == 1 && rows_a.shape(0) == rows_b.shape(0),
          "rows_a and rows_b must be 1-D of equal length");
  require(differ.ndim() == 1 && differ.shape(0) == 1, "differ must have one entry");
  const int64_t rows = a.shape(0), pairs = rows_a.shape(0);
  const int64_t* ra = rows_a.data();
  const int64_t* rb = rows_b.data();
  for (int64_t p = 0; p < pairs; ++p)
    require(ra[p] >= 0 && ra[p] < rows && rb[p] >= 0 && rb[p] < rows, "row index out of range");
  const T* ap = a.data();
  int64_t* dp = differ.mutable_data();
  const int64_t width = a.shape(1);
  py::gil_scoped_release release;
  *dp = cpu::bin_rows_equal<T>(ap, width, s, ra, rb, pairs);
}

template <class T>
void bin_codes(CArray<T> a, int kind, CArray<double> edges, double lo, double scale,
               int64_t n_codes, CArray<int64_t> out) {
  require(a.ndim() == 2 && out.ndim() == 2, "a and out must be 2-D");
  require(a.shape(0) == out.shape(0) && a.shape(1) == out.shape(1),
          "a and out must have the same shape");
  const BinSpec s = make_spec(kind, edges, lo, scale, n_codes);
  const T* ap = a.data();
  int64_t* op = out.mutable_data();
  const int64_t rows = a.shape(0), width = a.shape(1);
  py::gil_scoped_release release;
  cpu::bin_codes<T>(ap, rows, width, s, op);
}

template <class T>
int64_t run_plane(const py::list& segments, int64_t rows, int kind, const CArray<double>& edges,
                  int64_t n_edges, const CArray<int64_t>& edge_offsets, const CArray<double>& lo,
                  const CArray<double>& scale, int64_t n_codes, const CArray<int64_t>& labels,
                  int64_t n_labels, const int64_t* inputs, int64_t n_inputs,
                  const CArray<double>& clog, CArray<double>& out) {
  const int64_t count = static_cast<int64_t>(segments.size());
  std::vector<const T*> ptrs(static_cast<size_t>(count));
  std::vector<int64_t> widths(static_cast<size_t>(count));
  for (int64_t g = 0; g < count; ++g) {
    const py::handle h = segments[static_cast<size_t>(g)];
    require(py::isinstance<CArray<T>>(h),
            "segments must all be C-contiguous arrays of the first one's dtype");
    const auto arr = py::reinterpret_borrow<CArray<T>>(h);
    require(arr.ndim() == 2 && arr.shape(0) == rows && arr.shape(1) >= 1,
            "every segment must be 2-D with `rows` rows and at least one column");
    ptrs[static_cast<size_t>(g)] = arr.data();
    widths[static_cast<size_t>(g)] = arr.shape(1);
  }
  const double *ep = edges.data(), *lp = lo.data(), *sp = scale.data(), *cp = clog.data();
  const int64_t *eo = edge_offsets.data(), *yp = labels.data();
  double* outp = out.mutable_data();
  py::gil_scoped_release release;
  return cpu::bin_plane<T>(ptrs.data(), widths.data(), count, rows, kind, ep, n_edges, eo, lp, sp,
                           n_codes, yp, n_labels, inputs, n_inputs, cp, outp);
}

// segments: a list of (rows, width_g) float32 or float64 arrays, all of one dtype.
void bin_plane(const py::list& segments, int kind, CArray<double> edges, int64_t n_edges,
               CArray<int64_t> edge_offsets, CArray<double> lo, CArray<double> scale,
               int64_t n_codes, CArray<int64_t> labels, int64_t n_labels, CArray<int64_t> inputs,
               int64_t n_inputs, CArray<double> clog, CArray<int64_t> scratch,
               CArray<double> out, CArray<int64_t> bad) {
  const int64_t count = static_cast<int64_t>(segments.size());
  require(count >= 1, "segments: at least one");
  require(kind >= 0 && kind <= 3, "unknown bin kind");
  require(kind > 1 || n_edges >= 1, "edge kinds need at least one edge");
  require(kind == 3 || n_codes >= 1, "n_codes must be positive");
  require(n_edges >= 0, "n_edges must be non-negative");
  require(edge_offsets.ndim() == 1 && edge_offsets.shape(0) == count,
          "edge_offsets: one per segment");
  for (const auto* v : {&lo, &scale})
    require(v->ndim() == 1 && v->shape(0) == count, "lo, scale: one per segment");
  require(edges.ndim() == 1, "edges must be 1-D");
  const int64_t* eo = edge_offsets.data();
  for (int64_t g = 0; g < count; ++g)
    require(eo[g] >= 0 && n_edges <= edges.shape(0) - eo[g], "edge slice outside edges");
  require(labels.ndim() == 1 && labels.shape(0) >= 1, "labels: one per row");
  const int64_t rows = labels.shape(0);
  require(n_labels >= 1, "n_labels must be positive");
  const int64_t* yp = labels.data();
  for (int64_t i = 0; i < rows; ++i)
    require(yp[i] >= 0 && yp[i] < n_labels, "label out of range");
  require(inputs.ndim() == 1 && (inputs.shape(0) == 0 || inputs.shape(0) == rows),
          "inputs: empty or one per row");
  const int64_t* xp = inputs.shape(0) ? inputs.data() : nullptr;
  if (xp) {
    require(n_inputs >= 1, "n_inputs must be positive");
    for (int64_t i = 0; i < rows; ++i)
      require(xp[i] >= 0 && xp[i] < n_inputs, "input id out of range");
  }
  require(clog.ndim() == 1 && clog.shape(0) == rows + 1, "clog: rows + 1 entries");
  require(scratch.ndim() == 1, "scratch must be 1-D (unused on the CPU)");
  require(out.ndim() == 2 && out.shape(0) == count && out.shape(1) == 3,
          "out must be (segments, 3)");
  require(bad.ndim() == 1 && bad.shape(0) == 1, "bad must have one entry");
  int64_t* bp = bad.mutable_data();
  if (py::isinstance<CArray<float>>(segments[0]))
    *bp = run_plane<float>(segments, rows, kind, edges, n_edges, edge_offsets, lo, scale, n_codes,
                           labels, n_labels, xp, n_inputs, clog, out);
  else
    *bp = run_plane<double>(segments, rows, kind, edges, n_edges, edge_offsets, lo, scale,
                            n_codes, labels, n_labels, xp, n_inputs, clog, out);
}

void kde_tile(CArray<double> tile, CArray<double> row_norms, CArray<double> col_norms,
              CArray<int64_t> row_labels, CArray<int64_t> col_labels, double scale,
              int64_t row_offset, int64_t col_offset, CArray<double> row_all,
              CArray<double> row_cls, CArray<double> col_all, CArray<double> col_cls,
              bool columns) {
  require(tile.ndim() == 2, "tile must be 2-D");
  const int64_t rows = tile.shape(0), cols = tile.shape(1);
  for (const auto* v : {&row_norms, &row_all, &row_cls})
    require(v->ndim() == 1 && v->shape(0) == rows, "row arrays must have one entry per tile row");
  for (const auto* v : {&col_norms, &col_all, &col_cls})
    require(v->ndim() == 1 && v->shape(0) == cols,
            "column arrays must have one entry per tile column");
  require(row_labels.ndim() == 1 && row_labels.shape(0) == rows, "row_labels: wrong length");
  require(col_labels.ndim() == 1 && col_labels.shape(0) == cols, "col_labels: wrong length");
  double* tp = tile.mutable_data();
  const double *rn = row_norms.data(), *cn = col_norms.data();
  const int64_t *ry = row_labels.data(), *cy = col_labels.data();
  double *ra = row_all.mutable_data(), *rc = row_cls.mutable_data();
  double *ca = col_all.mutable_data(), *cc = col_cls.mutable_data();
  py::gil_scoped_release release;
  cpu::kde_tile(tp, rows, cols, rn, cn, ry, cy, scale, row_offset, col_offset, ra, rc, ca, cc,
                columns);
}

void kde_screen(CArray<float> tile, CArray<double> row_norms, CArray<double> col_norms,
                CArray<double> row_lengths, CArray<double> col_lengths, double err, double cutoff,
                int64_t row_offset, int64_t col_offset, CArray<int64_t> count) {
  require(tile.ndim() == 2, "tile must be 2-D");
  const int64_t rows = tile.shape(0), cols = tile.shape(1);
  for (const auto* v : {&row_norms, &row_lengths})
    require(v->ndim() == 1 && v->shape(0) == rows, "row arrays must have one entry per tile row");
  for (const auto* v : {&col_norms, &col_lengths})
    require(v->ndim() == 1 && v->shape(0) == cols,
            "column arrays must have one entry per tile column");
  require(count.ndim() == 1 && count.shape(0) == 1, "count must have one entry");
  const float* tp = tile.data();
  const double *rn = row_norms.data(), *cn = col_norms.data();
  const double *rl = row_lengths.data(), *cl = col_lengths.data();
  int64_t* out = count.mutable_data();
  py::gil_scoped_release release;
  *out = cpu::kde_screen(tp, rows, cols, rn, cn, rl, cl, err, cutoff, row_offset, col_offset);
}

void kde_sparse_tile(CArray<float> tile, CArray<double> a, CArray<double> b,
                     CArray<double> row_norms, CArray<double> col_norms,
                     CArray<double> row_lengths, CArray<double> col_lengths,
                     CArray<int64_t> row_labels, CArray<int64_t> col_labels, double err,
                     double cutoff, double scale, int64_t row_offset, int64_t col_offset,
                     CArray<double> row_all, CArray<double> row_cls, CArray<double> col_all,
                     CArray<double> col_cls, bool columns) {
  require(tile.ndim() == 2 && a.ndim() == 2 && b.ndim() == 2, "tile, a and b must be 2-D");
  const int64_t rows = tile.shape(0), cols = tile.shape(1), d = a.shape(1);
  require(a.shape(0) == rows && b.shape(0) == cols && b.shape(1) == d,
          "a must hold the tile's rows and b its columns, of equal width");
  for (const auto* v : {&row_norms, &row_lengths, &row_all, &row_cls})
    require(v->ndim() == 1 && v->shape(0) == rows, "row arrays must have one entry per tile row");
  for (const auto* v : {&col_norms, &col_lengths, &col_all, &col_cls})
    require(v->ndim() == 1 && v->shape(0) == cols,
            "column arrays must have one entry per tile column");
  require(row_labels.ndim() == 1 && row_labels.shape(0) == rows, "row_labels: wrong length");
  require(col_labels.ndim() == 1 && col_labels.shape(0) == cols, "col_labels: wrong length");
  const float* tp = tile.data();
  const double *ap = a.data(), *bp = b.data();
  const double *rn = row_norms.data(), *cn = col_norms.data();
  const double *rl = row_lengths.data(), *cl = col_lengths.data();
  const int64_t *ry = row_labels.data(), *cy = col_labels.data();
  double *ra = row_all.mutable_data(), *rc = row_cls.mutable_data();
  double *ca = col_all.mutable_data(), *cc = col_cls.mutable_data();
  py::gil_scoped_release release;
  cpu::kde_sparse_tile(tp, ap, bp, rows, cols, d, rn, cn, rl, cl, ry, cy, err, cutoff, scale,
                       row_offset, col_offset, ra, rc, ca, cc, columns);
}

template <class T>
void def_typed(py::module_& m) {
  m.def("bin_keys", &bin_keys<T>, py::arg("a").noconvert(), py::arg("kind"),
        py::arg("edges").noconvert(), py::arg("lo"), py::arg("scale"), py::arg("n_codes"),
        py::arg("rows_per_segment"), py::arg("key1").noconvert(), py::arg("key2").noconvert(),
        py::arg("occupancy").noconvert(), py::arg("bad").noconvert());
  m.def("bin_rows_equal", &bin_rows_equal<T>, py::arg("a").noconvert(), py::arg("kind"),
        py::arg("edges").noconvert(), py::arg("lo"), py::arg("scale"), py::arg("n_codes"),
        py::arg("rows_a").noconvert(), py::arg("rows_b").noconvert(),
        py::arg("differ").noconvert());
  m.def("bin_codes", &bin_codes<T>, py::arg("a").noconvert(), py::arg("kind"),
        py::arg("edges").noconvert(), py::arg("lo"), py::arg("scale"), py::arg("n_codes"),
        py::arg("out").noconvert());
}

}  // namespace

void information(py::module_& m) {
  def_typed<double>(m);
  def_typed<float>(m);
  m.def("bin_plane", &bin_plane, py::arg("segments"), py::arg("kind"),
        py::arg("edges").noconvert(), py::arg("n_edges"), py::arg("edge_offsets").noconvert(),
        py::arg("lo").noconvert(), py::arg("scale").noconvert(), py::arg("n_codes"),
        py::arg("labels").noconvert(), py::arg("n_labels"), py::arg("inputs").noconvert(),
        py::arg("n_inputs"), py::arg("clog").noconvert(), py::arg("scratch").noconvert(),
        py::arg("out").noconvert(), py::arg("bad").noconvert());
  m.def("kde_tile", &kde_tile, py::arg("tile").noconvert(), py::arg("row_norms").noconvert(),
        py::arg("col_norms").noconvert(), py::arg("row_labels").noconvert(),
        py::arg("col_labels").noconvert(), py::arg("scale"), py::arg("row_offset"),
        py::arg("col_offset"), py::arg("row_all").noconvert(), py::arg("row_cls").noconvert(),
        py::arg("col_all").noconvert(), py::arg("col_cls").noconvert(), py::arg("columns"));
  m.def("kde_screen", &kde_screen, py::arg("tile").noconvert(), py::arg("row_norms").noconvert(),
        py::arg("col_norms").noconvert(), py::arg("row_lengths").noconvert(),
        py::arg("col_lengths").noconvert(), py::arg("err"), py::arg("cutoff"),
        py::arg("row_offset"), py::arg("col_offset"), py::arg("count").noconvert());
  m.def("kde_sparse_tile", &kde_sparse_tile, py::arg("tile").noconvert(),
        py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("row_norms").noconvert(),
        py::arg("col_norms").noconvert(), py::arg("row_lengths").noconvert(),
        py::arg("col_lengths").noconvert(), py::arg("row_labels").noconvert(),
        py::arg("col_labels").noconvert(), py::arg("err"), py::arg("cutoff"), py::arg("scale"),
        py::arg("row_offset"), py::arg("col_offset"), py::arg("row_all").noconvert(),
        py::arg("row_cls").noconvert(), py::arg("col_all").noconvert(),
        py::arg("col_cls").noconvert(), py::arg("columns"));
}

}  // namespace fastmem::bind

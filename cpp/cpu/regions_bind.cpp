// Bindings of the segment engine's splitting kernels: count_crossings, collect_crossings,
// emit_pieces, next_preactivations(_sparse) (see fastmem/regions.hpp for the vertex layout and what
// each pass does).
#include <cmath>
#include <cstdint>
#include <optional>

#include <pybind11/stl.h>

#include "bind.hpp"
#include "fastmem/patterns.hpp"
#include "regions_drivers.hpp"

namespace fastmem::bind {

namespace {

void check_kind(int kind) {
  require(kind >= 0 && kind < kNumActivationKinds, "unknown activation kind");
}

// z: (vertices, width); pseg: (pieces,) with vertices == pieces + segments.
template <class T>
void check_vertices(const CArray<T>& z, const CArray<int64_t>& pseg) {
  require(z.ndim() == 2, "z must be 2-D (vertices, width)");
  require(pseg.ndim() == 1, "pseg must be 1-D");
  const int64_t n = pseg.shape(0), nv = z.shape(0);
  require(n == 0 || nv >= n + 1, "z must have more rows (vertices) than there are pieces");
  if (n > 0) {
    const int64_t* s = pseg.data();
    require(s[0] >= 0 && n - 1 + s[n - 1] + 1 < nv, "pseg does not match the vertices of z");
  }
}

template <class T>
void count_crossings(CArray<T> z, CArray<int64_t> pseg, int kind, CArray<int64_t> counts) {
  check_vertices(z, pseg);
  check_kind(kind);
  const int64_t n = pseg.shape(0), width = z.shape(1);
  require(counts.ndim() == 1 && counts.shape(0) == n, "counts must have one entry per piece");
  const T* zp = z.data();
  const int64_t* sp = pseg.data();
  int64_t* c = counts.mutable_data();
  py::gil_scoped_release release;
  cpu::count_crossings<T>(zp, sp, n, width, kind, c);
}

template <class T>
void collect_crossings(CArray<T> z, CArray<T> vt, CArray<int64_t> pseg, int kind, double tol,
                       CArray<int64_t> offsets, CArray<T> buf, CArray<int64_t> n_distinct) {
  check_vertices(z, pseg);
  check_kind(kind);
  const int64_t n = pseg.shape(0), width = z.shape(1);
  require(vt.ndim() == 1 && vt.shape(0) == z.shape(0), "vt must have one entry per vertex");
  require(offsets.ndim() == 1 && offsets.shape(0) == n + 1, "offsets must have n + 1 entries");
  require(n_distinct.ndim() == 1 && n_distinct.shape(0) == n,
          "n_distinct must have one entry per piece");
  const int64_t* off = offsets.data();
  require(buf.ndim() == 1 && off[0] == 0 && off[n] <= buf.shape(0),
          "buf must be 1-D with at least offsets[-1] entries");
  const T *zp = z.data(), *tp = vt.data();
  const int64_t* sp = pseg.data();
  T* bp = buf.mutable_data();
  int64_t* nd = n_distinct.mutable_data();
  py::gil_scoped_release release;
  cpu::collect_crossings<T>(zp, tp, sp, n, width, kind, static_cast<T>(tol), off, bp, nd);
}

template <class T>
void emit_pieces(CArray<T> z, CArray<T> vt, CArray<int64_t> pseg, CArray<uint64_t> codes,
                 CArray<T> buf, CArray<int64_t> offsets, CArray<int64_t> child_offsets, int kind,
                 double slope, int64_t bit_offset, bool write_values, CArray<T> out_vt,
                 CArray<int64_t> out_seg, CArray<uint64_t> out_codes, CArray<T> out_h,
                 CArray<int64_t> scratch) {
  check_vertices(z, pseg);
  check_kind(kind);
  const int64_t n = pseg.shape(0), width = z.shape(1), nv = z.shape(0);
  require(vt.ndim() == 1 && vt.shape(0) == nv, "vt must have one entry per vertex");
  require(codes.ndim() == 2 && codes.shape(0) == n, "codes must be (pieces, words)");
  const int64_t n_words = codes.shape(1);
  require(offsets.ndim() == 1 && offsets.shape(0) == n + 1, "offsets must have n + 1 entries");
  require(child_offsets.ndim() == 1 && child_offsets.shape(0) == n + 1,
          "child_offsets must have n + 1 entries");
  require(buf.ndim() == 1 && offsets.data()[n] <= buf.shape(0),
          "buf must be 1-D with at least offsets[-1] entries");
  const int64_t nc = child_offsets.data()[n];
  const int64_t nv_out = nc + (nv - n);  // one extra vertex per segment
  require(out_vt.ndim() == 1 && out_vt.shape(0) == nv_out,
          "out_vt must have child_offsets[-1] + segments entries");
  require(out_seg.ndim() == 1 && out_seg.shape(0) == nc,
          "out_seg must have child_offsets[-1] entries");
  require(out_codes.ndim() == 2 && out_codes.shape(0) == nc && out_codes.shape(1) == n_words,
          "out_codes must be (children, words)");
  const int64_t last_bit = bit_offset + width * bits_per_neuron(kind);
  require(bit_offset >= 0 && last_bit <= 64 * n_words, "pattern bits exceed codes width");
  // out_h (the old vertices' activations) may carry one extra column, set to 1 (the next
  // layer's bias in its GEMM)
  if (write_values)
    require(out_h.ndim() == 2 && out_h.shape(0) == nv &&
                (out_h.shape(1) == width || out_h.shape(1) == width + 1),
            "out_h must be (vertices, width) or (vertices, width + 1)");
  const int64_t h_cols = write_values ? out_h.shape(1) : width;
  require(scratch.ndim() == 1 && offsets.data()[n] <= scratch.shape(0) / 2,
          "scratch must be 1-D with at least 2 * offsets[-1] entries");
  const T *zp = z.data(), *tp = vt.data(), *bp = buf.data();
  const int64_t *sp = pseg.data(), *off = offsets.data(), *coff = child_offsets.data();
  const uint64_t* cp = codes.data();
  T* ovt = out_vt.mutable_data();
  int64_t* oseg = out_seg.mutable_data();
  uint64_t* ocodes = out_codes.mutable_data();
  T* oh = write_values ? out_h.mutable_data() : nullptr;
  int64_t* scr = scratch.mutable_data();
  py::gil_scoped_release release;
  cpu::emit_pieces<T>(zp, tp, sp, cp, n, width, n_words, bp, off, coff, kind,
                      static_cast<T>(slope), bit_offset, write_values, ovt, oseg, ocodes, oh,
                      h_cols, scr);
}

// The checks of the passes over a layer's pieces and their breakpoints (z, vt, pseg, the
// crossings buf by offsets, the children by child_offsets; scratch: 2 * offsets[-1]
// entries, when the pass takes one).
template <class T>
void check_pieces(const CArray<T>& z, const CArray<T>& vt, const CArray<int64_t>& pseg,
                  const CArray<T>& buf, const CArray<int64_t>& offsets,
                  const CArray<int64_t>& child_offsets, int kind,
                  const CArray<int64_t>* scratch) {
  check_vertices(z, pseg);
  check_kind(kind);
  const int64_t n = pseg.shape(0), nv = z.shape(0);
  require(vt.ndim() == 1 && vt.shape(0) == nv, "vt must have one entry per vertex");
  require(offsets.ndim() == 1 && offsets.shape(0) == n + 1, "offsets must have n + 1 entries");
  require(child_offsets.ndim() == 1 && child_offsets.shape(0) == n + 1,
          "child_offsets must have n + 1 entries");
  const int64_t total = offsets.data()[n];
  require(buf.ndim() == 1 && total <= buf.shape(0),
          "buf must be 1-D with at least offsets[-1] entries");
  if (scratch)
    require(scratch->ndim() == 1 && 2 * total <= scratch->shape(0),
            "scratch must be 1-D with at least 2 * offsets[-1] entries");
}

// The checks and pointers that the dense and the sparse next_preactivations share.
template <class T>
struct NextArgs {
  int64_t n, width, width_next;
  const T *zp, *tp, *bp, *np_;
  const int64_t *sp, *off, *coff;
  int64_t* scr;
  T* op;
  int64_t* nc;
};

template <class T>
NextArgs<T> next_args(CArray<T>& z, CArray<T>& vt, CArray<int64_t>& pseg, CArray<T>& buf,
                      CArray<int64_t>& offsets, CArray<int64_t>& child_offsets, int kind,
                      int64_t width_next, CArray<T>& zn, CArray<int64_t>& scratch, CArray<T>& out,
                      int kind_next, CArray<int64_t>& next_counts) {
  check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind, &scratch);
  const int64_t n = pseg.shape(0), width = z.shape(1), nv = z.shape(0);
  require(zn.ndim() == 2 && zn.shape(0) == nv && zn.shape(1) == width_next,
          "zn must be (vertices, width_next)");
  const int64_t nv_out = child_offsets.data()[n] + (nv - n);
  require(out.ndim() == 2 && out.shape(0) == nv_out && out.shape(1) == width_next,
          "out must be (child_offsets[-1] + segments, width_next)");
  require(kind_next >= -1 && kind_next < kNumActivationKinds, "unknown activation kind_next");
  if (kind_next >= 0)
    require(next_counts.ndim() == 1 && next_counts.shape(0) == child_offsets.data()[n],
            "next_counts must have child_offsets[-1] entries");
  return {n,
          width,
          width_next,
          z.data(),
          vt.data(),
          buf.data(),
          zn.data(),
          pseg.data(),
          offsets.data(),
          child_offsets.data(),
          scratch.mutable_data(),
          out.mutable_data(),
          kind_next >= 0 ? next_counts.mutable_data() : nullptr};
}

// snap_to (width_next,) or None, snap_unit, snap_w >= 0: Columns' snap (regions.hpp).
template <class T>
const T* snap_pointer(const std::optional<CArray<T>>& snap_to, int64_t width_next,
                      double snap_unit, double snap_w) {
  require(std::isfinite(snap_unit) && snap_unit >= 0 && std::isfinite(snap_w) && snap_w >= 0,
          "snap_unit and snap_w must be finite and >= 0");
  if (!snap_to) return nullptr;
  require(sizeof(T) == 8, "snap_to: float64 only");
  require(snap_to->ndim() == 1 && snap_to->shape(0) == width_next,
          "snap_to must be 1-D (width_next,)");
  return snap_to->data();
}

template <class T>
void next_preactivations(CArray<T> z, CArray<T> vt, CArray<int64_t> pseg, CArray<T> buf,
                         CArray<int64_t> offsets, CArray<int64_t> child_offsets, int kind,
                         double slope, CArray<T> wt, CArray<T> zn, CArray<int64_t> scratch,
                         CArray<T> out, int kind_next, CArray<int64_t> next_counts,
                         std::optional<CArray<T>> snap_to, double snap_unit, double snap_w) {
  require(wt.ndim() == 2 && z.ndim() == 2 && wt.shape(0) == z.shape(1) + 1,
          "wt must be (width + 1, width_next)");
  const NextArgs<T> a = next_args(z, vt, pseg, buf, offsets, child_offsets, kind, wt.shape(1),
                                  zn, scratch, out, kind_next, next_counts);
  const T* wp = wt.data();
  const T* sp = snap_pointer(snap_to, a.width_next, snap_unit, snap_w);
  py::gil_scoped_release release;
  cpu::next_preactivations<T>(a.zp, a.tp, a.sp, a.n, a.width, a.bp, a.off, a.coff, kind,
                              static_cast<T>(slope), wp, a.width_next, a.np_, a.scr, a.op,
                              kind_next, a.nc, sp, static_cast<T>(snap_unit),
                              static_cast<T>(snap_w));
}

template <class T>
void next_preactivations_sparse(CArray<T> z, CArray<T> vt, CArray<int64_t> pseg, CArray<T> buf,
                                CArray<int64_t> offsets, CArray<int64_t> child_offsets,
                                int kind, double slope, CArray<int64_t> col_ptr,
                                CArray<int64_t> col_idx, CArray<T> col_val, CArray<T> bias,
                                CArray<T> zn, CArray<int64_t> scratch, CArray<T> out,
                                int kind_next, CArray<int64_t> next_counts,
                                std::optional<CArray<T>> snap_to, double snap_unit,
                                double snap_w) {
  require(z.ndim() == 2 && col_ptr.ndim() == 1 && col_ptr.shape(0) == z.shape(1) + 1,
          "col_ptr must have width + 1 entries");
  require(bias.ndim() == 1, "bias must be 1-D (width_next,)");
  const int64_t width_next = bias.shape(0), width = z.shape(1);
  const int64_t* ptr = col_ptr.data();
  require(col_idx.ndim() == 1 && col_val.ndim() == 1 && col_idx.shape(0) == col_val.shape(0),
          "col_idx and col_val must be 1-D of one length");
  require(ptr[0] == 0 && ptr[width] <= col_idx.shape(0),
          "col_ptr must start at 0 and end within col_idx");
  for (int64_t j = 0; j < width; ++j) require(ptr[j] <= ptr[j + 1], "col_ptr must not decrease");
  const int64_t* idx = col_idx.data();
  bool in_range = true;
  for (int64_t q = 0; q < ptr[width]; ++q) in_range &= (idx[q] >= 0) & (idx[q] < width_next);
  require(in_range, "col_idx must lie in [0, width_next)");
  const NextArgs<T> a = next_args(z, vt, pseg, buf, offsets, child_offsets, kind, width_next,
                                  zn, scratch, out, kind_next, next_counts);
  const T *vp = col_val.data(), *bp = bias.data();
  const T* sp = snap_pointer(snap_to, a.width_next, snap_unit, snap_w);
  py::gil_scoped_release release;
  cpu::next_preactivations_sparse<T>(a.zp, a.tp, a.sp, a.n, a.width, a.bp, a.off, a.coff, kind,
                                     static_cast<T>(slope), ptr, idx, vp, bp, a.width_next,
                                     a.np_, a.scr, a.op, kind_next, a.nc, sp,
                                     static_cast<T>(snap_unit), static_cast<T>(snap_w));
}

template <class T>
void breakpoint_causes(CArray<T> z, CArray<T> vt, CArray<int64_t> pseg, CArray<T> buf,
                       CArray<int64_t> offsets, CArray<int64_t> child_offsets, int kind,
                       double slope, CArray<int64_t> scratch, CArray<int64_t> out,
                       CArray<T> out_val) {
  check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind, &scratch);
  const int64_t n = pseg.shape(0), width = z.shape(1), nv = z.shape(0);
  require(out.ndim() == 1 && out.shape(0) == child_offsets.data()[n] + (nv - n),
          "out must have child_offsets[-1] + segments entries");
  require(out_val.ndim() == 1 && out_val.shape(0) == out.shape(0),
          "out_val must have one entry per entry of out");
  const T *zp = z.data(), *tp = vt.data(), *bp = buf.data();
  const int64_t *sp = pseg.data(), *off = offsets.data(), *coff = child_offsets.data();
  int64_t* scr = scratch.mutable_data();
  int64_t* op = out.mutable_data();
  T* ovp = out_val.mutable_data();
  py::gil_scoped_release release;
  cpu::breakpoint_causes<T>(zp, tp, sp, n, width, bp, off, coff, kind, static_cast<T>(slope),
                            scr, op, ovp);
}

template <class T>
void chain_values(CArray<T> z, CArray<T> vt, CArray<int64_t> pseg, CArray<int64_t> seg_pieces,
                  CArray<T> buf, CArray<int64_t> offsets, CArray<int64_t> child_offsets,
                  int kind, double slope, CArray<T> wt, CArray<int64_t> cause,
                  CArray<T> cause_val, CArray<int64_t> rf_ptr, CArray<int64_t> rf_idx,
                  CArray<T> rf_val, int64_t period, CArray<T> zn) {
  check_pieces(z, vt, pseg, buf, offsets, child_offsets, kind,
               static_cast<const CArray<int64_t>*>(nullptr));
  require(kind != 3, "the chained pass needs a piecewise linear activation, not a threshold");
  const int64_t n = pseg.shape(0), width = z.shape(1), nv = z.shape(0);
  require(wt.ndim() == 2 && wt.shape(0) == width + 1, "wt must be (width + 1, width_next)");
  const int64_t width_next = wt.shape(1);
  require(zn.ndim() == 2 && zn.shape(0) == nv && zn.shape(1) == width_next,
          "zn must be (vertices, width_next)");
  require(cause.ndim() == 1 && cause.shape(0) == nv, "cause must have one entry per vertex");
  require(cause_val.ndim() == 1 && cause_val.shape(0) == nv,
          "cause_val must have one entry per vertex");
  require(period >= 1, "period must be positive");
  // the segments: consecutive runs of pieces, covering all of them in order
  require(seg_pieces.ndim() == 1 && seg_pieces.shape(0) == nv - n + 1,
          "seg_pieces must have segments + 1 entries");
  const int64_t n_seg = nv - n;
  const int64_t *gp = seg_pieces.data(), *sp = pseg.data();
  require(gp[0] == 0 && gp[n_seg] == n, "seg_pieces must run from 0 to the pieces");
  for (int64_t g = 0; g < n_seg; ++g) {
    require(gp[g] < gp[g + 1], "seg_pieces must increase (each segment has a piece)");
    require(sp[gp[g]] == g && sp[gp[g + 1] - 1] == g, "seg_pieces does not match pseg");
  }
  // receptive fields: rows of width entries each, within [0, width)
  require(rf_ptr.ndim() == 1 && rf_idx.ndim() == 1 && rf_val.ndim() == 1 &&
              rf_val.shape(0) == rf_idx.shape(0),
          "rf_ptr, rf_idx and rf_val must be 1-D (rf_idx and rf_val of one length)");
  const int64_t n_rf = rf_ptr.shape(0) - 1;
  require(n_rf >= 0, "rf_ptr must not be empty");
  const int64_t *rp = rf_ptr.data(), *ri = rf_idx.data();
  require(rp[0] == 0 && rp[n_rf] <= rf_idx.shape(0), "rf_ptr must start at 0, end in rf_idx");
  for (int64_t j = 0; j < n_rf; ++j) require(rp[j] <= rp[j + 1], "rf_ptr must not decrease");
  bool in_range = true;
  for (int64_t q = 0; q < rp[n_rf]; ++q) in_range &= (ri[q] >= 0) & (ri[q] < width);
  require(in_range, "rf_idx must lie in [0, width)");
  const int64_t* cp = cause.data();
  bool causes_ok = true;
  for (int64_t v = 0; v < nv; ++v) causes_ok &= (cp[v] >= -2) & (cp[v] < n_rf);
  require(causes_ok, "cause must lie in [-2, len(rf_ptr) - 1)");
  const T *zp = z.data(), *tp = vt.data(), *bp = buf.data(), *wp = wt.data();
  const T *cvp = cause_val.data(), *rvp = rf_val.data();
  const int64_t *off = offsets.data(), *coff = child_offsets.data();
  T* znp = zn.mutable_data();
  py::gil_scoped_release release;
  cpu::chain_values<T>(zp, tp, sp, gp, n_seg, width, bp, off, coff, kind, static_cast<T>(slope),
                       wp, width_next, cp, cvp, rp, ri, rvp, period, znp);
}

template <class T>
void def_all(py::module_& m) {
  m.def("count_crossings", &count_crossings<T>, py::arg("z").noconvert(),
        py::arg("pseg").noconvert(), py::arg("kind"), py::arg("counts").noconvert());
  m.def("collect_crossings", &collect_crossings<T>, py::arg("z").noconvert(),
        py::arg("vt").noconvert(), py::arg("pseg").noconvert(), py::arg("kind"),
        py::arg("tol"), py::arg("offsets").noconvert(), py::arg("buf").noconvert(),
        py::arg("n_distinct").noconvert());
  m.def("emit_pieces", &emit_pieces<T>, py::arg("z").noconvert(), py::arg("vt").noconvert(),
        py::arg("pseg").noconvert(), py::arg("codes").noconvert(), py::arg("buf").noconvert(),
        py::arg("offsets").noconvert(), py::arg("child_offsets").noconvert(), py::arg("kind"),
        py::arg("slope"), py::arg("bit_offset"), py::arg("write_values"),
        py::arg("out_vt").noconvert(), py::arg("out_seg").noconvert(),
        py::arg("out_codes").noconvert(), py::arg("out_h").noconvert(),
        py::arg("scratch").noconvert());
  m.def("next_preactivations", &next_preactivations<T>, py::arg("z").noconvert(),
        py::arg("vt").noconvert(), py::arg("pseg").noconvert(), py::arg("buf").noconvert(),
        py::arg("offsets").noconvert(), py::arg("child_offsets").noconvert(), py::arg("kind"),
        py::arg("slope"), py::arg("wt").noconvert(), py::arg("zn").noconvert(),
        py::arg("scratch").noconvert(), py::arg("out").noconvert(), py::arg("kind_next"),
        py::arg("next_counts").noconvert(), py::arg("snap_to").noconvert() = py::none(),
        py::arg("snap_unit") = 0.0, py::arg("snap_w") = 0.0);
  m.def("next_preactivations_sparse", &next_preactivations_sparse<T>, py::arg("z").noconvert(),
        py::arg("vt").noconvert(), py::arg("pseg").noconvert(), py::arg("buf").noconvert(),
        py::arg("offsets").noconvert(), py::arg("child_offsets").noconvert(), py::arg("kind"),
        py::arg("slope"), py::arg("col_ptr").noconvert(), py::arg("col_idx").noconvert(),
        py::arg("col_val").noconvert(), py::arg("bias").noconvert(), py::arg("zn").noconvert(),
        py::arg("scratch").noconvert(), py::arg("out").noconvert(), py::arg("kind_next"),
        py::arg("next_counts").noconvert(), py::arg("snap_to").noconvert() = py::none(),
        py::arg("snap_unit") = 0.0, py::arg("snap_w") = 0.0);
  m.def("breakpoint_causes", &breakpoint_causes<T>, py::arg("z").noconvert(),
        py::arg("vt").noconvert(), py::arg("pseg").noconvert(), py::arg("buf").noconvert(),
        py::arg("offsets").noconvert(), py::arg("child_offsets").noconvert(), py::arg("kind"),
        py::arg("slope"), py::arg("scratch").noconvert(), py::arg("out").noconvert(),
        py::arg("out_val").noconvert());
  m.def("chain_values", &chain_values<T>, py::arg("z").noconvert(), py::arg("vt").noconvert(),
        py::arg("pseg").noconvert(), py::arg("seg_pieces").noconvert(),
        py::arg("buf").noconvert(), py::arg("offsets").noconvert(),
        py::arg("child_offsets").noconvert(), py::arg("kind"), py::arg("slope"),
        py::arg("wt").noconvert(), py::arg("cause").noconvert(),
        py::arg("cause_val").noconvert(), py::arg("rf_ptr").noconvert(),
        py::arg("rf_idx").noconvert(), py::arg("rf_val").noconvert(), py::arg("period"),
        py::arg("zn").noconvert());
}

}  // namespace

void regions(py::module_& m) {
  def_all<double>(m);
  def_all<float>(m);
}

}  // namespace fastmem::bind

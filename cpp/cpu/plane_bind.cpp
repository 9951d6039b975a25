// Bindings of the 2-D slice kernels: plane_cut_count, plane_cut_emit, plane_children.
#include <cstdint>
#include <optional>

#include <pybind11/stl.h>

#include "bind.hpp"
#include "fastmem/activations.hpp"
#include "plane_drivers.hpp"

namespace fastmem::bind {

namespace {

cpu::PlaneMesh mesh_view(const CArray<double>& S, const CArray<double>& T,
                         const CArray<double>& maps, const CArray<int64_t>& owner,
                         const CArray<int64_t>& corners, const CArray<int64_t>& off, int kind,
                         const CArray<double>& tolz) {
  require(S.ndim() == 1 && T.ndim() == 1 && S.shape(0) == T.shape(0), "S, T must be 1-D, equal");
  require(corners.ndim() == 1 && off.ndim() == 1 && off.shape(0) >= 1, "corners, off: 1-D");
  const int64_t n_parents = off.shape(0) - 1;
  require(maps.ndim() == 3 && maps.shape(0) == 3 && maps.shape(1) == n_parents,
          "maps must be (3, parents, width)");
  require(owner.ndim() == 1 && owner.shape(0) == S.shape(0), "owner must have one per vertex");
  require(tolz.ndim() == 1 && tolz.shape(0) == maps.shape(2), "tolz must have width entries");
  require(kind >= 0 && kind < kNumActivationKinds, "unknown activation kind");
  const int64_t* o = off.data();
  const int64_t n_vertices = S.shape(0);
  require(o[0] == 0 && o[n_parents] == corners.shape(0), "off must span corners");
  for (int64_t p = 0; p < n_parents; ++p) require(o[p + 1] - o[p] >= 3, "polygons need 3 corners");
  const int64_t* c = corners.data();
  for (int64_t k = 0; k < corners.shape(0); ++k)
    require(c[k] >= 0 && c[k] < n_vertices, "corner index out of range");
  const int64_t* w = owner.data();
  for (int64_t v = 0; v < n_vertices; ++v)
    require(w[v] >= 0 && w[v] < n_parents, "owner index out of range");
  return {S.data(), T.data(), maps.data(), w, n_vertices, maps.shape(2), c, o, n_parents, kind,
          tolz.data()};
}

void plane_cut_count(CArray<double> S, CArray<double> T, CArray<double> maps,
                     CArray<int64_t> owner, CArray<int64_t> corners, CArray<int64_t> off,
                     int kind, CArray<double> tolz, CArray<int64_t> counts) {
  const cpu::PlaneMesh mesh = mesh_view(S, T, maps, owner, corners, off, kind, tolz);
  require(counts.ndim() == 2 && counts.shape(0) == mesh.n_parents && counts.shape(1) == 3,
          "counts must be (parents, 3)");
  int64_t* cp = counts.mutable_data();
  py::gil_scoped_release release;
  cpu::plane_cut_count(mesh, cp);
}

void plane_cut_emit(CArray<double> S, CArray<double> T, CArray<double> maps,
                    CArray<int64_t> owner, CArray<int64_t> corners, CArray<int64_t> off,
                    int kind, CArray<double> tolz, CArray<int64_t> offsets, CArray<int64_t> out_sizes,
                    CArray<int64_t> out_corners, CArray<int64_t> out_parent,
                    CArray<double> out_st) {
  const cpu::PlaneMesh mesh = mesh_view(S, T, maps, owner, corners, off, kind, tolz);
  require(offsets.ndim() == 2 && offsets.shape(0) == mesh.n_parents + 1 && offsets.shape(1) == 3,
          "offsets must be (parents + 1, 3)");
  const int64_t* op = offsets.data();
  const int64_t last = 3 * mesh.n_parents;
  require(out_sizes.ndim() == 1 && out_sizes.shape(0) == op[last] && out_parent.ndim() == 1 &&
              out_parent.shape(0) == op[last],
          "out_sizes, out_parent must have offsets[-1, 0] entries");
  require(out_corners.ndim() == 1 && out_corners.shape(0) == op[last + 1],
          "out_corners must have offsets[-1, 1] entries");
  require(out_st.ndim() == 2 && out_st.shape(0) == op[last + 2] && out_st.shape(1) == 2,
          "out_st must be (offsets[-1, 2], 2)");
  int64_t* sp = out_sizes.mutable_data();
  int64_t* cp = out_corners.mutable_data();
  int64_t* pp = out_parent.mutable_data();
  double* stp = out_st.mutable_data();
  py::gil_scoped_release release;
  cpu::plane_cut_emit(mesh, op, sp, cp, pp, stp);
}

// The cut in one pass: (sizes, corners, parent, st), as plane_cut_emit writes them; of the
// parents lo .. hi - 1 only (hi None: to the last), whose new vertices are numbered from
// S.shape[0] (callers that cut a mesh by ranges on several threads renumber them).
py::tuple plane_cut(CArray<double> S, CArray<double> T, CArray<double> maps,
                    CArray<int64_t> owner, CArray<int64_t> corners, CArray<int64_t> off,
                    int kind, CArray<double> tolz, int64_t lo, std::optional<int64_t> hi_) {
  const cpu::PlaneMesh mesh = mesh_view(S, T, maps, owner, corners, off, kind, tolz);
  const int64_t hi = hi_.value_or(mesh.n_parents);
  require(0 <= lo && lo <= hi && hi <= mesh.n_parents, "lo, hi must be a range of parents");
  // the calling thread's, kept from call to call (fresh buffers' pages fault in on every
  // call); released when they grew beyond cpu::kPlaneKeepBytes
  static thread_local cpu::PlaneCut cut;
  {
    py::gil_scoped_release release;
    cpu::plane_cut(mesh, cut, lo, hi);
  }
  const int64_t* last = cut.offsets.data() + 3 * (hi - lo);
  py::array_t<int64_t> sizes(last[0]), out_corners(last[1]), parent(last[0]);
  py::array_t<double> st({last[2], int64_t{2}});
  int64_t* sp = sizes.mutable_data();
  int64_t* cp = out_corners.mutable_data();
  int64_t* pp = parent.mutable_data();
  double* stp = st.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::plane_cut_gather(mesh, cut, lo, hi, sp, cp, pp, stp);
    cut.release_if_large(cpu::kPlaneKeepBytes);
  }
  return py::make_tuple(sizes, out_corners, parent, st);
}

void plane_children(CArray<double> maps, CArray<int64_t> parent, CArray<double> st, int kind,
                    double slope, CArray<uint64_t> codes, int64_t bit_offset,
                    CArray<double> h) {
  require(maps.ndim() == 3 && maps.shape(0) == 3, "maps must be (3, parents, width)");
  const int64_t n_parents = maps.shape(1), width = maps.shape(2);
  require(parent.ndim() == 1, "parent must be 1-D");
  const int64_t n = parent.shape(0);
  require(st.ndim() == 2 && st.shape(0) == n && st.shape(1) == 2, "st must be (children, 2)");
  require(codes.ndim() == 2 && codes.shape(0) == n, "codes must be (children, words)");
  require(kind >= 0 && kind < kNumActivationKinds, "unknown activation kind");
  require(bit_offset >= 0 && bit_offset + width * bits_per_neuron(kind) <= 64 * codes.shape(1),
          "pattern bits exceed codes width");
  const bool write_h = h.size() > 0;
  require(!write_h || (h.ndim() == 3 && h.shape(0) == 3 && h.shape(1) == n &&
                       h.shape(2) == width),
          "h must be (3, children, width) or empty");
  const int64_t* pp = parent.data();
  for (int64_t i = 0; i < n; ++i) require(pp[i] >= 0 && pp[i] < n_parents, "parent out of range");
  const double* mp = maps.data();
  const double* sp = st.data();
  uint64_t* cp = codes.mutable_data();
  double* hp = write_h ? h.mutable_data() : nullptr;
  const int64_t n_words = codes.shape(1);
  py::gil_scoped_release release;
  cpu::plane_children(mp, n_parents, width, pp, sp, n, kind, slope, cp, n_words, bit_offset, hp);
}

// Per region: the top class at its interior point st and whether it is constant on the
// region / ties at two corners (flags bits 0 / 1): fastmem/plane.hpp plane_decide_region.
// off: n + 1 ascending offsets into corners (a slice of a mesh's: its values index the
// whole corners array).
void plane_decide(CArray<double> L, CArray<double> S, CArray<double> T,
                  CArray<int64_t> corners, CArray<int64_t> off, CArray<double> st, double tol,
                  CArray<int64_t> top, CArray<uint8_t> flags) {
  require(L.ndim() == 3 && L.shape(1) == 3 && L.shape(2) >= 1, "L must be (regions, 3, classes)");
  const int64_t n = L.shape(0);
  require(S.ndim() == 1 && T.ndim() == 1 && S.shape(0) == T.shape(0), "S, T must be 1-D, equal");
  require(corners.ndim() == 1, "corners must be 1-D");
  require(off.ndim() == 1 && off.shape(0) == n + 1, "off must have regions + 1 entries");
  require(st.ndim() == 2 && st.shape(0) == n && st.shape(1) == 2, "st must be (regions, 2)");
  require(top.ndim() == 1 && top.shape(0) == n && flags.ndim() == 1 && flags.shape(0) == n,
          "top, flags must have one entry per region");
  const int64_t* o = off.data();
  require(n == 0 || (o[0] >= 0 && o[n] <= corners.shape(0)), "off must lie in corners");
  for (int64_t i = 0; i < n; ++i) require(o[i + 1] - o[i] >= 1, "regions need corners");
  const int64_t* c = corners.data();
  const int64_t nv = S.shape(0);
  if (n > 0)
    for (int64_t k = o[0]; k < o[n]; ++k)
      require(c[k] >= 0 && c[k] < nv, "corner index out of range");
  const double* lp = L.data();
  const double* sp = S.data();
  const double* tp = T.data();
  const double* stp = st.data();
  int64_t* topp = top.mutable_data();
  uint8_t* fp = flags.mutable_data();
  const int64_t n_classes = L.shape(2);
  py::gil_scoped_release release;
  cpu::plane_decide(lp, n, n_classes, sp, tp, c, o, stp, tol, topp, fp);
}

}  // namespace

void plane(py::module_& m) {
  m.def("plane_decide", &plane_decide, py::arg("L").noconvert(), py::arg("S").noconvert(),
        py::arg("T").noconvert(), py::arg("corners").noconvert(), py::arg("off").noconvert(),
        py::arg("st").noconvert(), py::arg("tol"), py::arg("top").noconvert(),
        py::arg("flags").noconvert());
  m.def("plane_cut", &plane_cut, py::arg("S").noconvert(), py::arg("T").noconvert(),
        py::arg("maps").noconvert(), py::arg("owner").noconvert(),
        py::arg("corners").noconvert(), py::arg("off").noconvert(), py::arg("kind"),
        py::arg("tolz").noconvert(), py::arg("lo") = 0, py::arg("hi") = py::none());
  m.def("plane_children", &plane_children, py::arg("maps").noconvert(),
        py::arg("parent").noconvert(), py::arg("st").noconvert(), py::arg("kind"),
        py::arg("slope"), py::arg("codes").noconvert(), py::arg("bit_offset"),
        py::arg("h").noconvert());
  m.def("plane_cut_count", &plane_cut_count, py::arg("S").noconvert(), py::arg("T").noconvert(),
        py::arg("maps").noconvert(), py::arg("owner").noconvert(), py::arg("corners").noconvert(), py::arg("off").noconvert(),
        py::arg("kind"), py::arg("tolz").noconvert(), py::arg("counts").noconvert());
  m.def("plane_cut_emit", &plane_cut_emit, py::arg("S").noconvert(), py::arg("T").noconvert(),
        py::arg("maps").noconvert(), py::arg("owner").noconvert(), py::arg("corners").noconvert(), py::arg("off").noconvert(),
        py::arg("kind"), py::arg("tolz").noconvert(), py::arg("offsets").noconvert(),
        py::arg("out_sizes").noconvert(), py::arg("out_corners").noconvert(),
        py::arg("out_parent").noconvert(), py::arg("out_st").noconvert());
}

}  // namespace fastmem::bind

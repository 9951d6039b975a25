// Bindings of the 2-D slice kernels on the GPU: the same names and arguments as
// fastmem._core (plane_cut_count, plane_cut_emit, plane_children). The arrays live on the
// device, so only shapes and dtypes are checked here (not indices nor offsets' totals).
#include <cstdint>
#include <string>

#include "bind.hpp"
#include "fastmem/activations.hpp"
#include "plane_drivers.hpp"

namespace fastmem::bind {

namespace {

void need(const DeviceView& v, const char* typestr, int64_t ndim, const char* what) {
  if (v.typestr != typestr || v.ndim() != ndim) fail(std::string(v.name) + ": " + what);
}

struct MeshViews {
  DeviceView S, T, maps, owner, corners, off, tolz;
};

MeshViews mesh_views(const py::object& S, const py::object& T, const py::object& maps,
                     const py::object& owner, const py::object& corners, const py::object& off,
                     int kind, const py::object& tolz) {
  MeshViews v{device_view(S, "S"),       device_view(T, "T"),
              device_view(maps, "maps"), device_view(owner, "owner"),
              device_view(corners, "corners"), device_view(off, "off"),
              device_view(tolz, "tolz")};
  need(v.S, "<f8", 1, "must be 1-D float64");
  need(v.T, "<f8", 1, "must be 1-D float64");
  if (v.S.shape[0] != v.T.shape[0]) fail("S, T must have equal lengths");
  need(v.maps, "<f8", 3, "must be (3, parents, width) float64");
  need(v.owner, "<i8", 1, "must be 1-D int64");
  need(v.corners, "<i8", 1, "must be 1-D int64");
  need(v.off, "<i8", 1, "must be 1-D int64");
  need(v.tolz, "<f8", 1, "must be 1-D float64");
  if (v.off.shape[0] < 1) fail("off must have parents + 1 entries");
  const int64_t n_parents = v.off.shape[0] - 1;
  if (v.maps.shape[0] != 3 || v.maps.shape[1] != n_parents)
    fail("maps must be (3, parents, width)");
  if (v.owner.shape[0] != v.S.shape[0]) fail("owner must have one per vertex");
  if (v.tolz.shape[0] != v.maps.shape[2]) fail("tolz must have width entries");
  if (kind < 0 || kind >= kNumActivationKinds) fail("unknown activation kind");
  return v;
}

PlaneMesh mesh_of(const MeshViews& v, int kind) {
  return {v.S.as<const double>(),     v.T.as<const double>(),    v.maps.as<const double>(),
          v.owner.as<const int64_t>(), v.S.shape[0],             v.maps.shape[2],
          v.corners.as<const int64_t>(), v.off.as<const int64_t>(), v.off.shape[0] - 1,
          kind,                        v.tolz.as<const double>()};
}

void plane_cut_count(const py::object& S, const py::object& T, const py::object& maps,
                     const py::object& owner, const py::object& corners, const py::object& off,
                     int kind, const py::object& tolz, const py::object& counts) {
  const MeshViews v = mesh_views(S, T, maps, owner, corners, off, kind, tolz);
  const DeviceView cv = device_view(counts, "counts");
  need(cv, "<i8", 2, "must be (parents, 3) int64");
  if (cv.shape[0] != v.off.shape[0] - 1 || cv.shape[1] != 3) fail("counts must be (parents, 3)");
  const PlaneMesh mesh = mesh_of(v, kind);
  const Launch launch({&v.S, &v.T, &v.maps, &v.owner, &v.corners, &v.off, &v.tolz, &cv});
  py::gil_scoped_release release;
  check(gpu::plane_cut_count(mesh, cv.as<int64_t>()));
}

void plane_cut_emit(const py::object& S, const py::object& T, const py::object& maps,
                    const py::object& owner, const py::object& corners, const py::object& off,
                    int kind, const py::object& tolz, const py::object& offsets,
                    const py::object& out_sizes, const py::object& out_corners,
                    const py::object& out_parent, const py::object& out_st) {
  const MeshViews v = mesh_views(S, T, maps, owner, corners, off, kind, tolz);
  const DeviceView ov = device_view(offsets, "offsets"), sv = device_view(out_sizes, "out_sizes");
  const DeviceView kv = device_view(out_corners, "out_corners");
  const DeviceView pv = device_view(out_parent, "out_parent"), tv = device_view(out_st, "out_st");
  need(ov, "<i8", 2, "must be (parents + 1, 3) int64");
  if (ov.shape[0] != v.off.shape[0] || ov.shape[1] != 3) fail("offsets must be (parents + 1, 3)");
  need(sv, "<i8", 1, "must be 1-D int64");
  need(kv, "<i8", 1, "must be 1-D int64");
  need(pv, "<i8", 1, "must be 1-D int64");
  need(tv, "<f8", 2, "must be (new vertices, 2) float64");
  if (sv.shape[0] != pv.shape[0]) fail("out_sizes, out_parent must have equal lengths");
  if (tv.shape[1] != 2) fail("out_st must be (new vertices, 2)");
  const PlaneMesh mesh = mesh_of(v, kind);
  const Launch launch(
      {&v.S, &v.T, &v.maps, &v.owner, &v.corners, &v.off, &v.tolz, &ov, &sv, &kv, &pv, &tv});
  py::gil_scoped_release release;
  check(gpu::plane_cut_emit(mesh, ov.as<int64_t>(), sv.as<int64_t>(), kv.as<int64_t>(),
                            pv.as<int64_t>(), tv.as<double>()));
}

void plane_children(const py::object& maps, const py::object& parent, const py::object& st,
                    int kind, double slope, const py::object& codes, int64_t bit_offset,
                    const py::object& h) {
  const DeviceView mv = device_view(maps, "maps"), pv = device_view(parent, "parent");
  const DeviceView sv = device_view(st, "st"), cv = device_view(codes, "codes");
  const DeviceView hv = device_view(h, "h");
  need(mv, "<f8", 3, "must be (3, parents, width) float64");
  if (mv.shape[0] != 3) fail("maps must be (3, parents, width)");
  const int64_t n_parents = mv.shape[1], width = mv.shape[2];
  need(pv, "<i8", 1, "must be 1-D int64");
  const int64_t n = pv.shape[0];
  need(sv, "<f8", 2, "must be (children, 2) float64");
  if (sv.shape[0] != n || sv.shape[1] != 2) fail("st must be (children, 2)");
  need(cv, "<u8", 2, "must be (children, words) uint64");
  if (cv.shape[0] != n) fail("codes must be (children, words)");
  if (kind < 0 || kind >= kNumActivationKinds) fail("unknown activation kind");
  if (bit_offset < 0 || bit_offset + width * bits_per_neuron(kind) > 64 * cv.shape[1])
    fail("pattern bits exceed codes width");
  int64_t h_size = 1;
  for (const int64_t e : hv.shape) h_size *= e;
  const bool write_h = h_size > 0;
  if (write_h && (hv.typestr != "<f8" || hv.ndim() != 3 || hv.shape[0] != 3 ||
                  hv.shape[1] != n || hv.shape[2] != width))
    fail("h must be (3, children, width) float64 or empty");
  const Launch launch({&mv, &pv, &sv, &cv, &hv});
  py::gil_scoped_release release;
  check(gpu::plane_children(mv.as<double>(), n_parents, width, pv.as<int64_t>(), sv.as<double>(),
                            n, kind, slope, cv.as<uint64_t>(), cv.shape[1], bit_offset,
                            write_h ? hv.as<double>() : nullptr));
}

}  // namespace

void plane(py::module_& m) {
  m.def("plane_children", &plane_children, py::arg("maps"), py::arg("parent"), py::arg("st"),
        py::arg("kind"), py::arg("slope"), py::arg("codes"), py::arg("bit_offset"),
        py::arg("h"));
  m.def("plane_cut_count", &plane_cut_count, py::arg("S"), py::arg("T"), py::arg("maps"),
        py::arg("owner"), py::arg("corners"), py::arg("off"), py::arg("kind"), py::arg("tolz"),
        py::arg("counts"));
  m.def("plane_cut_emit", &plane_cut_emit, py::arg("S"), py::arg("T"), py::arg("maps"),
        py::arg("owner"), py::arg("corners"), py::arg("off"), py::arg("kind"), py::arg("tolz"),
        py::arg("offsets"), py::arg("out_sizes"), py::arg("out_corners"),
        py::arg("out_parent"), py::arg("out_st"));
}

}  // namespace fastmem::bind

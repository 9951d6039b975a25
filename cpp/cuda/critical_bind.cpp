// Bindings of the critical-sample kernels on CUDA arrays (same names and arguments as _core).
// Index arrays are not range-checked here (they live on the device); the Python layer builds
// them from valid sample indices.
#include <string>

#include "bind.hpp"
#include "critical_drivers.hpp"
#include "fastmem/activations.hpp"

namespace fastmem::bind {

namespace {

void check_kind(int kind) {
  if (kind < 0 || kind >= kNumActivationKinds) fail("unknown activation kind");
}

void same(const DeviceView& a, const DeviceView& b, const char* what) {
  if (a.shape != b.shape || a.typestr != b.typestr)
    fail(std::string(what) + " must match in shape and dtype");
}

bool is_f64(const DeviceView& v) {
  if (v.typestr == "<f8") return true;
  if (v.typestr == "<f4") return false;
  fail("arrays must be float32 or float64");
}

void index(const DeviceView& v, const char* name, int64_t n) {
  if (v.typestr != "<i8" || v.ndim() != 1 || v.shape[0] != n)
    fail(std::string(name) + " must be 1-D int64 with one entry per row");
}

void crit_activate(const py::object& z, const py::object& deriv, int kind, double slope) {
  const DeviceView zv = device_view(z, "z"), dv = device_view(deriv, "deriv");
  if (zv.ndim() != 2) fail("z must be 2-D");
  same(zv, dv, "z and deriv");
  check_kind(kind);
  const bool f64 = is_f64(zv);
  const Launch launch({&zv, &dv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_activate<double>(zv.as<double>(), dv.as<double>(), zv.shape[0], zv.shape[1],
                                     kind, slope));
  else
    check(gpu::crit_activate<float>(zv.as<float>(), dv.as<float>(), zv.shape[0], zv.shape[1],
                                    kind, static_cast<float>(slope)));
}

void crit_step(const py::object& x, const py::object& grad, const py::object& lo,
               const py::object& hi, const py::object& ids, uint64_t seed, uint64_t stream,
               double step_size, double noise) {
  const DeviceView xv = device_view(x, "x"), gv = device_view(grad, "grad");
  const DeviceView lv = device_view(lo, "lo"), hv = device_view(hi, "hi");
  const DeviceView iv = device_view(ids, "ids");
  if (xv.ndim() != 2 || lv.ndim() != 2) fail("x and lo must be 2-D");
  same(xv, gv, "x and grad");
  same(lv, hv, "lo and hi");
  if (xv.typestr != lv.typestr || xv.shape[1] != lv.shape[1]) fail("x and lo must match");
  index(iv, "ids", xv.shape[0]);
  const bool f64 = is_f64(xv);
  const bool use_noise = noise != 0.0;
  const Launch launch({&xv, &gv, &lv, &hv, &iv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_step<double>(xv.as<double>(), gv.as<const double>(), lv.as<const double>(),
                                 hv.as<const double>(), iv.as<const int64_t>(), xv.shape[0],
                                 xv.shape[1], seed, stream, step_size, noise, use_noise));
  else
    check(gpu::crit_step<float>(xv.as<float>(), gv.as<const float>(), lv.as<const float>(),
                                hv.as<const float>(), iv.as<const int64_t>(), xv.shape[0],
                                xv.shape[1], seed, stream, static_cast<float>(step_size),
                                static_cast<float>(noise), use_noise));
}

void crit_random_start(const py::object& x, const py::object& lo, const py::object& hi,
                       const py::object& ids, uint64_t seed, uint64_t stream) {
  const DeviceView xv = device_view(x, "x");
  const DeviceView lv = device_view(lo, "lo"), hv = device_view(hi, "hi");
  const DeviceView iv = device_view(ids, "ids");
  if (xv.ndim() != 2 || lv.ndim() != 2) fail("x and lo must be 2-D");
  same(lv, hv, "lo and hi");
  if (xv.typestr != lv.typestr || xv.shape[1] != lv.shape[1]) fail("x and lo must match");
  index(iv, "ids", xv.shape[0]);
  const bool f64 = is_f64(xv);
  const Launch launch({&xv, &lv, &hv, &iv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_random_start<double>(xv.as<double>(), lv.as<const double>(),
                                         hv.as<const double>(), iv.as<const int64_t>(),
                                         xv.shape[0], xv.shape[1], seed, stream));
  else
    check(gpu::crit_random_start<float>(xv.as<float>(), lv.as<const float>(),
                                        hv.as<const float>(), iv.as<const int64_t>(),
                                        xv.shape[0], xv.shape[1], seed, stream));
}

void crit_check(const py::object& logits, const py::object& labels, const py::object& changed) {
  const DeviceView zv = device_view(logits, "logits");
  const DeviceView lv = device_view(labels, "labels"), cv = device_view(changed, "changed");
  if (zv.ndim() != 2 || zv.shape[1] < 1) fail("logits must be 2-D with a column");
  index(lv, "labels", zv.shape[0]);
  if (cv.typestr != "|u1" || cv.ndim() != 1 || cv.shape[0] != zv.shape[0])
    fail("changed must be 1-D uint8 with one entry per row");
  const bool f64 = is_f64(zv);
  const Launch launch({&zv, &lv, &cv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_check<double>(zv.as<const double>(), lv.as<const int64_t>(),
                                  cv.as<uint8_t>(), zv.shape[0], zv.shape[1]));
  else
    check(gpu::crit_check<float>(zv.as<const float>(), lv.as<const int64_t>(), cv.as<uint8_t>(),
                                 zv.shape[0], zv.shape[1]));
}

void crit_interval(const py::object& lo, const py::object& hi, int kind, double slope) {
  const DeviceView lv = device_view(lo, "lo"), hv = device_view(hi, "hi");
  if (lv.ndim() != 2) fail("lo must be 2-D");
  same(lv, hv, "lo and hi");
  check_kind(kind);
  const int64_t n = lv.shape[0] * lv.shape[1];
  const bool f64 = is_f64(lv);
  const Launch launch({&lv, &hv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_interval<double>(lv.as<double>(), hv.as<double>(), n, kind, slope));
  else
    check(gpu::crit_interval<float>(lv.as<float>(), hv.as<float>(), n, kind,
                                    static_cast<float>(slope)));
}

void crit_relax(const py::object& lo, const py::object& hi, int kind, double slope,
                const py::object& aL, const py::object& bL, const py::object& aU,
                const py::object& bU) {
  const DeviceView lv = device_view(lo, "lo"), hv = device_view(hi, "hi");
  const DeviceView a = device_view(aL, "aL"), b = device_view(bL, "bL");
  const DeviceView c = device_view(aU, "aU"), e = device_view(bU, "bU");
  if (lv.ndim() != 2) fail("lo must be 2-D");
  same(lv, hv, "lo and hi");
  same(lv, a, "lo and aL");
  same(lv, b, "lo and bL");
  same(lv, c, "lo and aU");
  same(lv, e, "lo and bU");
  check_kind(kind);
  const int64_t n = lv.shape[0] * lv.shape[1];
  const bool f64 = is_f64(lv);
  const Launch launch({&lv, &hv, &a, &b, &c, &e});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_relax<double>(lv.as<const double>(), hv.as<const double>(), n, kind, slope,
                                  a.as<double>(), b.as<double>(), c.as<double>(), e.as<double>()));
  else
    check(gpu::crit_relax<float>(lv.as<const float>(), hv.as<const float>(), n, kind,
                                 static_cast<double>(static_cast<float>(slope)), a.as<float>(),
                                 b.as<float>(), c.as<float>(), e.as<float>()));
}

void crit_backward(const py::object& lam, const py::object& rows, const py::object& aL,
                   const py::object& bL, const py::object& aU, const py::object& bU,
                   const py::object& cst) {
  const DeviceView lv = device_view(lam, "lam"), rv = device_view(rows, "rows");
  const DeviceView a = device_view(aL, "aL"), b = device_view(bL, "bL");
  const DeviceView c = device_view(aU, "aU"), e = device_view(bU, "bU");
  const DeviceView kv = device_view(cst, "const");
  if (lv.ndim() != 2 || a.ndim() != 2) fail("lam and aL must be 2-D");
  same(a, b, "aL and bL");
  same(a, c, "aL and aU");
  same(a, e, "aL and bU");
  if (lv.typestr != a.typestr || lv.shape[1] != a.shape[1]) fail("lam and aL must match");
  index(rv, "rows", lv.shape[0]);
  if (kv.typestr != lv.typestr || kv.ndim() != 1 || kv.shape[0] != lv.shape[0])
    fail("const shape");
  const bool f64 = is_f64(lv);
  const Launch launch({&lv, &rv, &a, &b, &c, &e, &kv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_backward<double>(lv.as<double>(), rv.as<const int64_t>(), lv.shape[0],
                                     lv.shape[1], a.as<const double>(), b.as<const double>(),
                                     c.as<const double>(), e.as<const double>(),
                                     kv.as<double>()));
  else
    check(gpu::crit_backward<float>(lv.as<float>(), rv.as<const int64_t>(), lv.shape[0],
                                    lv.shape[1], a.as<const float>(), b.as<const float>(),
                                    c.as<const float>(), e.as<const float>(), kv.as<float>()));
}

void crit_backward_err(const py::object& lam, const py::object& rows, const py::object& aL,
                       const py::object& bL, const py::object& aU, const py::object& bU,
                       const py::object& act, const py::object& lin, bool with_lin,
                       const py::object& cst, const py::object& err) {
  const DeviceView lv = device_view(lam, "lam"), rv = device_view(rows, "rows");
  const DeviceView a = device_view(aL, "aL"), b = device_view(bL, "bL");
  const DeviceView c = device_view(aU, "aU"), e = device_view(bU, "bU");
  const DeviceView av = device_view(act, "act"), nv = device_view(lin, "lin");
  const DeviceView kv = device_view(cst, "const"), ev = device_view(err, "err");
  if (lv.ndim() != 2 || a.ndim() != 2) fail("lam and aL must be 2-D");
  same(a, b, "aL and bL");
  same(a, c, "aL and aU");
  same(a, e, "aL and bU");
  same(a, av, "aL and act");
  same(a, nv, "aL and lin");
  if (lv.typestr != a.typestr || lv.shape[1] != a.shape[1]) fail("lam and aL must match");
  index(rv, "rows", lv.shape[0]);
  if (kv.typestr != lv.typestr || kv.ndim() != 1 || kv.shape[0] != lv.shape[0])
    fail("const shape");
  if (ev.typestr != lv.typestr || ev.ndim() != 1 || ev.shape[0] != lv.shape[0])
    fail("err shape");
  const bool f64 = is_f64(lv);
  const Launch launch({&lv, &rv, &a, &b, &c, &e, &av, &nv, &kv, &ev});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_backward_err<double>(
        lv.as<double>(), rv.as<const int64_t>(), lv.shape[0], lv.shape[1], a.as<const double>(),
        b.as<const double>(), c.as<const double>(), e.as<const double>(), av.as<const double>(),
        nv.as<const double>(), with_lin, kv.as<double>(), ev.as<double>()));
  else
    check(gpu::crit_backward_err<float>(
        lv.as<float>(), rv.as<const int64_t>(), lv.shape[0], lv.shape[1], a.as<const float>(),
        b.as<const float>(), c.as<const float>(), e.as<const float>(), av.as<const float>(),
        nv.as<const float>(), with_lin, kv.as<float>(), ev.as<float>()));
}

void crit_concretize(const py::object& lam, const py::object& rows, const py::object& lo,
                     const py::object& hi, const py::object& cst) {
  const DeviceView lv = device_view(lam, "lam"), rv = device_view(rows, "rows");
  const DeviceView a = device_view(lo, "lo"), b = device_view(hi, "hi");
  const DeviceView kv = device_view(cst, "const");
  if (lv.ndim() != 2 || a.ndim() != 2) fail("lam and lo must be 2-D");
  same(a, b, "lo and hi");
  if (lv.typestr != a.typestr || lv.shape[1] != a.shape[1]) fail("lam and lo must match");
  index(rv, "rows", lv.shape[0]);
  if (kv.typestr != lv.typestr || kv.ndim() != 1 || kv.shape[0] != lv.shape[0])
    fail("const shape");
  const bool f64 = is_f64(lv);
  const Launch launch({&lv, &rv, &a, &b, &kv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_concretize<double>(lv.as<const double>(), rv.as<const int64_t>(),
                                       lv.shape[0], lv.shape[1], a.as<const double>(),
                                       b.as<const double>(), kv.as<double>()));
  else
    check(gpu::crit_concretize<float>(lv.as<const float>(), rv.as<const int64_t>(), lv.shape[0],
                                      lv.shape[1], a.as<const float>(), b.as<const float>(),
                                      kv.as<float>()));
}

void crit_ball(const py::object& x, const py::object& r, double box_lo, double box_hi,
               const py::object& lo, const py::object& hi) {
  const DeviceView xv = device_view(x, "x"), rv = device_view(r, "r");
  const DeviceView lv = device_view(lo, "lo"), hv = device_view(hi, "hi");
  if (xv.ndim() != 2) fail("x must be 2-D");
  same(xv, lv, "x and lo");
  same(xv, hv, "x and hi");
  if (rv.typestr != xv.typestr || rv.ndim() != 1 || (rv.shape[0] != 1 && rv.shape[0] != xv.shape[0]))
    fail("r must be 1-D with one entry or one per row");
  const bool f64 = is_f64(xv), per_row = rv.shape[0] != 1;
  const Launch launch({&xv, &rv, &lv, &hv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_ball<double>(xv.as<const double>(), xv.shape[0], xv.shape[1],
                                 rv.as<const double>(), per_row, box_lo, box_hi, lv.as<double>(),
                                 hv.as<double>()));
  else
    check(gpu::crit_ball<float>(xv.as<const float>(), xv.shape[0], xv.shape[1],
                                rv.as<const float>(), per_row, static_cast<float>(box_lo),
                                static_cast<float>(box_hi), lv.as<float>(), hv.as<float>()));
}

void rows_of(const DeviceView& v, const char* name, int64_t n, const std::string& typestr) {
  if (v.typestr != typestr || v.ndim() != 1 || v.shape[0] != n)
    fail(std::string(name) + ": one entry per row");
}

void crit_centre(const py::object& lo, const py::object& hi, double up, double thr,
                 const py::object& c, const py::object& radius, const py::object& rmax,
                 const py::object& cmax, const py::object& low) {
  const DeviceView lv = device_view(lo, "lo"), hv = device_view(hi, "hi");
  const DeviceView cv = device_view(c, "c"), rv = device_view(radius, "radius");
  const DeviceView mv = device_view(rmax, "rmax"), av = device_view(cmax, "cmax");
  const DeviceView nv = device_view(low, "low");
  if (lv.ndim() != 2 || lv.shape[1] < 1) fail("lo must be 2-D with a column");
  same(lv, hv, "lo and hi");
  same(lv, rv, "lo and radius");
  if (cv.typestr != "<f8" || cv.shape != lv.shape) fail("lo and c must match in shape");
  rows_of(mv, "rmax", lv.shape[0], lv.typestr);
  rows_of(av, "cmax", lv.shape[0], lv.typestr);
  rows_of(nv, "low", lv.shape[0], "<i8");
  const bool f64 = is_f64(lv);
  const Launch launch({&lv, &hv, &cv, &rv, &mv, &av, &nv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_centre<double>(lv.as<const double>(), hv.as<const double>(), lv.shape[0],
                                   lv.shape[1], up, thr, cv.as<double>(), rv.as<double>(),
                                   mv.as<double>(), av.as<double>(), nv.as<int64_t>()));
  else
    check(gpu::crit_centre<float>(lv.as<const float>(), hv.as<const float>(), lv.shape[0],
                                  lv.shape[1], static_cast<float>(up), static_cast<float>(thr),
                                  cv.as<double>(), rv.as<float>(), mv.as<float>(), av.as<float>(),
                                  nv.as<int64_t>()));
}

void crit_radius_share(const py::object& radius, const py::object& rmax, const py::object& low,
                       double thr, const py::object& absw, const py::object& share) {
  const DeviceView rv = device_view(radius, "radius"), mv = device_view(rmax, "rmax");
  const DeviceView nv = device_view(low, "low"), av = device_view(absw, "absw");
  const DeviceView sv = device_view(share, "share");
  if (rv.ndim() != 2 || av.ndim() != 2 || sv.ndim() != 2) fail("radius, absw and share must be 2-D");
  if (av.typestr != "<f8" || sv.typestr != "<f8") fail("absw and share must be float64");
  rows_of(mv, "rmax", rv.shape[0], rv.typestr);
  rows_of(nv, "low", rv.shape[0], "<i8");
  if (av.shape[0] != rv.shape[1]) fail("absw must have one row per input");
  if (sv.shape[0] != rv.shape[0] || sv.shape[1] != av.shape[1]) fail("share shape");
  const bool f64 = is_f64(rv);
  const Launch launch({&rv, &mv, &nv, &av, &sv});
  py::gil_scoped_release release;
  if (f64)
    check(gpu::crit_radius_share<double>(rv.as<const double>(), mv.as<const double>(),
                                         nv.as<const int64_t>(), rv.shape[0], rv.shape[1], thr,
                                         av.as<const double>(), av.shape[1], sv.as<double>()));
  else
    check(gpu::crit_radius_share<float>(rv.as<const float>(), mv.as<const float>(),
                                        nv.as<const int64_t>(), rv.shape[0], rv.shape[1],
                                        static_cast<float>(thr), av.as<const double>(),
                                        av.shape[1], sv.as<double>()));
}

}  // namespace

void critical(py::module_& m) {
  m.def("crit_activate", &crit_activate, py::arg("z"), py::arg("deriv"), py::arg("kind"),
        py::arg("slope"));
  m.def("crit_step", &crit_step, py::arg("x"), py::arg("grad"), py::arg("lo"), py::arg("hi"),
        py::arg("ids"), py::arg("seed"), py::arg("stream"), py::arg("step_size"),
        py::arg("noise"));
  m.def("crit_random_start", &crit_random_start, py::arg("x"), py::arg("lo"), py::arg("hi"),
        py::arg("ids"), py::arg("seed"), py::arg("stream"));
  m.def("crit_check", &crit_check, py::arg("logits"), py::arg("labels"), py::arg("changed"));
  m.def("crit_interval", &crit_interval, py::arg("lo"), py::arg("hi"), py::arg("kind"),
        py::arg("slope"));
  m.def("crit_relax", &crit_relax, py::arg("lo"), py::arg("hi"), py::arg("kind"),
        py::arg("slope"), py::arg("aL"), py::arg("bL"), py::arg("aU"), py::arg("bU"));
  m.def("crit_backward_err", &crit_backward_err, py::arg("lam"), py::arg("rows"),
        py::arg("aL"), py::arg("bL"), py::arg("aU"), py::arg("bU"), py::arg("act"),
        py::arg("lin"), py::arg("with_lin"), py::arg("const"), py::arg("err"));
  m.def("crit_backward", &crit_backward, py::arg("lam"), py::arg("rows"), py::arg("aL"),
        py::arg("bL"), py::arg("aU"), py::arg("bU"), py::arg("const"));
  m.def("crit_concretize", &crit_concretize, py::arg("lam"), py::arg("rows"), py::arg("lo"),
        py::arg("hi"), py::arg("const"));
  m.def("crit_ball", &crit_ball, py::arg("x"), py::arg("r"), py::arg("box_lo"), py::arg("box_hi"),
        py::arg("lo"), py::arg("hi"));
  m.def("crit_centre", &crit_centre, py::arg("lo"), py::arg("hi"), py::arg("up"), py::arg("thr"),
        py::arg("c"), py::arg("radius"), py::arg("rmax"), py::arg("cmax"), py::arg("low"));
  m.def("crit_radius_share", &crit_radius_share, py::arg("radius"), py::arg("rmax"),
        py::arg("low"), py::arg("thr"), py::arg("absw"), py::arg("share"));
}

}  // namespace fastmem::bind

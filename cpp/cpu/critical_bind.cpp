// Bindings of the critical-sample kernels (see fastmem/critical.hpp).
#include <cstdint>

#include "bind.hpp"
#include "critical_drivers.hpp"
#include "fastmem/activations.hpp"

namespace fastmem::bind {

namespace {

void check_kind(int kind) {
  require(kind >= 0 && kind < kNumActivationKinds, "unknown activation kind");
}

template <class A, class B>
void same_shape(const A& a, const B& b, const char* what) {
  require(a.ndim() == b.ndim(), std::string(what) + " must match in shape");
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    require(a.shape(i) == b.shape(i), std::string(what) + " must match in shape");
}

void check_index(const CArray<int64_t>& ids, const char* name, int64_t n, int64_t upper) {
  require(ids.ndim() == 1 && ids.shape(0) == n, std::string(name) + " has the wrong length");
  const int64_t* p = ids.data();
  for (int64_t i = 0; i < n; ++i)
    require(p[i] >= 0 && p[i] < upper, std::string(name) + " out of range");
}

template <class T>
void crit_activate(CArray<T> z, CArray<T> deriv, int kind, double slope) {
  require(z.ndim() == 2, "z must be 2-D");
  same_shape(z, deriv, "z and deriv");
  check_kind(kind);
  T* zp = z.mutable_data();
  T* dp = deriv.mutable_data();
  const int64_t rows = z.shape(0), width = z.shape(1);
  py::gil_scoped_release release;
  cpu::crit_activate<T>(zp, dp, rows, width, kind, static_cast<T>(slope));
}

template <class T>
void crit_step(CArray<T> x, CArray<T> grad, CArray<T> lo, CArray<T> hi, CArray<int64_t> ids,
               uint64_t seed, uint64_t stream, double step_size, double noise) {
  require(x.ndim() == 2 && lo.ndim() == 2, "x and lo must be 2-D");
  same_shape(x, grad, "x and grad");
  same_shape(lo, hi, "lo and hi");
  require(x.shape(1) == lo.shape(1), "x and lo must match");
  check_index(ids, "ids", x.shape(0), lo.shape(0));
  T* xp = x.mutable_data();
  const T *gp = grad.data(), *lp = lo.data(), *hp = hi.data();
  const int64_t* ip = ids.data();
  const int64_t rows = x.shape(0), d = x.shape(1);
  py::gil_scoped_release release;
  cpu::crit_step<T>(xp, gp, lp, hp, ip, rows, d, seed, stream, static_cast<T>(step_size),
                    static_cast<T>(noise), noise != 0.0);
}

template <class T>
void crit_random_start(CArray<T> x, CArray<T> lo, CArray<T> hi, CArray<int64_t> ids,
                       uint64_t seed, uint64_t stream) {
  require(x.ndim() == 2 && lo.ndim() == 2, "x and lo must be 2-D");
  same_shape(lo, hi, "lo and hi");
  require(x.shape(1) == lo.shape(1), "x and lo must match");
  check_index(ids, "ids", x.shape(0), lo.shape(0));
  T* xp = x.mutable_data();
  const T *lp = lo.data(), *hp = hi.data();
  const int64_t* ip = ids.data();
  const int64_t rows = x.shape(0), d = x.shape(1);
  py::gil_scoped_release release;
  cpu::crit_random_start<T>(xp, lp, hp, ip, rows, d, seed, stream);
}

template <class T>
void crit_check(CArray<T> logits, CArray<int64_t> labels, CArray<uint8_t> changed) {
  require(logits.ndim() == 2 && logits.shape(1) >= 1, "logits must be 2-D with a column");
  require(labels.ndim() == 1 && changed.ndim() == 1, "labels and changed must be 1-D");
  require(labels.shape(0) == logits.shape(0) && changed.shape(0) == logits.shape(0),
          "row counts must match");
  const T* zp = logits.data();
  const int64_t* lp = labels.data();
  uint8_t* cp = changed.mutable_data();
  const int64_t rows = logits.shape(0), k = logits.shape(1);
  py::gil_scoped_release release;
  cpu::crit_check<T>(zp, lp, cp, rows, k);
}

template <class T>
void crit_interval(CArray<T> lo, CArray<T> hi, int kind, double slope) {
  require(lo.ndim() == 2, "lo must be 2-D");
  same_shape(lo, hi, "lo and hi");
  check_kind(kind);
  T* lp = lo.mutable_data();
  T* hp = hi.mutable_data();
  const int64_t n = lo.size();
  py::gil_scoped_release release;
  cpu::crit_interval<T>(lp, hp, n, kind, static_cast<T>(slope));
}

template <class T>
void crit_relax(CArray<T> lo, CArray<T> hi, int kind, double slope, CArray<T> aL, CArray<T> bL,
                CArray<T> aU, CArray<T> bU) {
  require(lo.ndim() == 2, "lo must be 2-D");
  same_shape(lo, hi, "lo and hi");
  same_shape(lo, aL, "lo and aL");
  same_shape(lo, bL, "lo and bL");
  same_shape(lo, aU, "lo and aU");
  same_shape(lo, bU, "lo and bU");
  check_kind(kind);
  const T *lp = lo.data(), *hp = hi.data();
  T *a = aL.mutable_data(), *b = bL.mutable_data(), *c = aU.mutable_data(),
    *e = bU.mutable_data();
  const int64_t n = lo.size();
  // the slope is rounded to the dtype first, as the Numba kernels do
  const double s = static_cast<double>(static_cast<T>(slope));
  py::gil_scoped_release release;
  cpu::crit_relax<T>(lp, hp, n, kind, s, a, b, c, e);
}

template <class T>
void crit_backward(CArray<T> lam, CArray<int64_t> rows, CArray<T> aL, CArray<T> bL,
                   CArray<T> aU, CArray<T> bU, CArray<T> cst) {
  require(lam.ndim() == 2 && aL.ndim() == 2, "lam and aL must be 2-D");
  same_shape(aL, bL, "aL and bL");
  same_shape(aL, aU, "aL and aU");
  same_shape(aL, bU, "aL and bU");
  require(lam.shape(1) == aL.shape(1), "lam and aL must match");
  check_index(rows, "rows", lam.shape(0), aL.shape(0));
  require(cst.ndim() == 1 && cst.shape(0) == lam.shape(0), "const shape");
  T* lp = lam.mutable_data();
  const int64_t* rp = rows.data();
  const T *a = aL.data(), *b = bL.data(), *c = aU.data(), *e = bU.data();
  T* cp = cst.mutable_data();
  const int64_t n = lam.shape(0), w = lam.shape(1);
  py::gil_scoped_release release;
  cpu::crit_backward<T>(lp, rp, n, w, a, b, c, e, cp);
}

template <class T>
void crit_backward_err(CArray<T> lam, CArray<int64_t> rows, CArray<T> aL, CArray<T> bL,
                       CArray<T> aU, CArray<T> bU, CArray<T> act, CArray<T> lin, bool with_lin,
                       CArray<T> cst, CArray<T> err) {
  require(lam.ndim() == 2 && aL.ndim() == 2, "lam and aL must be 2-D");
  same_shape(aL, bL, "aL and bL");
  same_shape(aL, aU, "aL and aU");
  same_shape(aL, bU, "aL and bU");
  same_shape(aL, act, "aL and act");
  same_shape(aL, lin, "aL and lin");
  require(lam.shape(1) == aL.shape(1), "lam and aL must match");
  check_index(rows, "rows", lam.shape(0), aL.shape(0));
  require(cst.ndim() == 1 && cst.shape(0) == lam.shape(0), "const shape");
  require(err.ndim() == 1 && err.shape(0) == lam.shape(0), "err shape");
  T* lp = lam.mutable_data();
  const int64_t* rp = rows.data();
  const T *a = aL.data(), *b = bL.data(), *c = aU.data(), *e = bU.data();
  const T *ap = act.data(), *np = lin.data();
  T* cp = cst.mutable_data();
  T* ep = err.mutable_data();
  const int64_t n = lam.shape(0), w = lam.shape(1);
  py::gil_scoped_release release;
  cpu::crit_backward_err<T>(lp, rp, n, w, a, b, c, e, ap, np, with_lin, cp, ep);
}

template <class T>
void crit_concretize(CArray<T> lam, CArray<int64_t> rows, CArray<T> lo, CArray<T> hi,
                     CArray<T> cst) {
  require(lam.ndim() == 2 && lo.ndim() == 2, "lam and lo must be 2-D");
  same_shape(lo, hi, "lo and hi");
  require(lam.shape(1) == lo.shape(1), "lam and lo must match");
  check_index(rows, "rows", lam.shape(0), lo.shape(0));
  require(cst.ndim() == 1 && cst.shape(0) == lam.shape(0), "const shape");
  const T* lp = lam.data();
  const int64_t* rp = rows.data();
  const T *a = lo.data(), *b = hi.data();
  T* cp = cst.mutable_data();
  const int64_t n = lam.shape(0), d = lam.shape(1);
  py::gil_scoped_release release;
  cpu::crit_concretize<T>(lp, rp, n, d, a, b, cp);
}

template <class T>
void crit_ball(CArray<T> x, CArray<T> r, double box_lo, double box_hi, CArray<T> lo,
               CArray<T> hi) {
  require(x.ndim() == 2, "x must be 2-D");
  same_shape(x, lo, "x and lo");
  same_shape(x, hi, "x and hi");
  require(r.ndim() == 1 && (r.shape(0) == 1 || r.shape(0) == x.shape(0)),
          "r must be 1-D with one entry or one per row");
  const T *xp = x.data(), *rp = r.data();
  T *lp = lo.mutable_data(), *hp = hi.mutable_data();
  const int64_t rows = x.shape(0), d = x.shape(1);
  const bool per_row = r.shape(0) != 1;
  py::gil_scoped_release release;
  cpu::crit_ball<T>(xp, rows, d, rp, per_row, static_cast<T>(box_lo), static_cast<T>(box_hi), lp,
                    hp);
}

template <class T>
void crit_centre(CArray<T> lo, CArray<T> hi, double up, double thr, CArray<double> c,
                 CArray<T> radius, CArray<T> rmax, CArray<T> cmax, CArray<int64_t> low) {
  require(lo.ndim() == 2 && lo.shape(1) >= 1, "lo must be 2-D with a column");
  same_shape(lo, hi, "lo and hi");
  same_shape(lo, c, "lo and c");
  same_shape(lo, radius, "lo and radius");
  for (const auto* a : {&rmax, &cmax})
    require(a->ndim() == 1 && a->shape(0) == lo.shape(0), "rmax and cmax: one entry per row");
  require(low.ndim() == 1 && low.shape(0) == lo.shape(0), "low: one entry per row");
  const T *lp = lo.data(), *hp = hi.data();
  double* cp = c.mutable_data();
  T *rp = radius.mutable_data(), *mp = rmax.mutable_data(), *ap = cmax.mutable_data();
  int64_t* np = low.mutable_data();
  const int64_t rows = lo.shape(0), d = lo.shape(1);
  py::gil_scoped_release release;
  cpu::crit_centre<T>(lp, hp, rows, d, static_cast<T>(up), static_cast<T>(thr), cp, rp, mp, ap,
                      np);
}

template <class T>
void crit_radius_share(CArray<T> radius, CArray<T> rmax, CArray<int64_t> low, double thr,
                       CArray<double> absw, CArray<double> share) {
  require(radius.ndim() == 2 && absw.ndim() == 2 && share.ndim() == 2,
          "radius, absw and share must be 2-D");
  require(rmax.ndim() == 1 && rmax.shape(0) == radius.shape(0), "rmax: one entry per row");
  require(low.ndim() == 1 && low.shape(0) == radius.shape(0), "low: one entry per row");
  require(absw.shape(0) == radius.shape(1), "absw must have one row per input");
  require(share.shape(0) == radius.shape(0) && share.shape(1) == absw.shape(1), "share shape");
  const T *rp = radius.data(), *mp = rmax.data();
  const int64_t* np = low.data();
  const double* ap = absw.data();
  double* sp = share.mutable_data();
  const int64_t rows = radius.shape(0), d = radius.shape(1), w = absw.shape(1);
  py::gil_scoped_release release;
  cpu::crit_radius_share<T>(rp, mp, np, rows, d, static_cast<T>(thr), ap, w, sp);
}

template <class T>
void define(py::module_& m) {
  m.def("crit_activate", &crit_activate<T>, py::arg("z").noconvert(),
        py::arg("deriv").noconvert(), py::arg("kind"), py::arg("slope"));
  m.def("crit_step", &crit_step<T>, py::arg("x").noconvert(), py::arg("grad").noconvert(),
        py::arg("lo").noconvert(), py::arg("hi").noconvert(), py::arg("ids").noconvert(),
        py::arg("seed"), py::arg("stream"), py::arg("step_size"), py::arg("noise"));
  m.def("crit_random_start", &crit_random_start<T>, py::arg("x").noconvert(),
        py::arg("lo").noconvert(), py::arg("hi").noconvert(), py::arg("ids").noconvert(),
        py::arg("seed"), py::arg("stream"));
  m.def("crit_check", &crit_check<T>, py::arg("logits").noconvert(),
        py::arg("labels").noconvert(), py::arg("changed").noconvert());
  m.def("crit_interval", &crit_interval<T>, py::arg("lo").noconvert(), py::arg("hi").noconvert(),
        py::arg("kind"), py::arg("slope"));
  m.def("crit_relax", &crit_relax<T>, py::arg("lo").noconvert(), py::arg("hi").noconvert(),
        py::arg("kind"), py::arg("slope"), py::arg("aL").noconvert(), py::arg("bL").noconvert(),
        py::arg("aU").noconvert(), py::arg("bU").noconvert());
  m.def("crit_backward", &crit_backward<T>, py::arg("lam").noconvert(),
        py::arg("rows").noconvert(), py::arg("aL").noconvert(), py::arg("bL").noconvert(),
        py::arg("aU").noconvert(), py::arg("bU").noconvert(), py::arg("const").noconvert());
  m.def("crit_backward_err", &crit_backward_err<T>, py::arg("lam").noconvert(),
        py::arg("rows").noconvert(), py::arg("aL").noconvert(), py::arg("bL").noconvert(),
        py::arg("aU").noconvert(), py::arg("bU").noconvert(), py::arg("act").noconvert(),
        py::arg("lin").noconvert(), py::arg("with_lin"), py::arg("const").noconvert(),
        py::arg("err").noconvert());
  m.def("crit_concretize", &crit_concretize<T>, py::arg("lam").noconvert(),
        py::arg("rows").noconvert(), py::arg("lo").noconvert(), py::arg("hi").noconvert(),
        py::arg("const").noconvert());
  m.def("crit_ball", &crit_ball<T>, py::arg("x").noconvert(), py::arg("r").noconvert(),
        py::arg("box_lo"), py::arg("box_hi"), py::arg("lo").noconvert(), py::arg("hi").noconvert());
  m.def("crit_centre", &crit_centre<T>, py::arg("lo").noconvert(), py::arg("hi").noconvert(),
        py::arg("up"), py::arg("thr"), py::arg("c").noconvert(), py::arg("radius").noconvert(),
        py::arg("rmax").noconvert(), py::arg("cmax").noconvert(), py::arg("low").noconvert());
  m.def("crit_radius_share", &crit_radius_share<T>, py::arg("radius").noconvert(),
        py::arg("rmax").noconvert(), py::arg("low").noconvert(), py::arg("thr"),
        py::arg("absw").noconvert(),
        py::arg("share").noconvert());
}

}  // namespace

void critical(py::module_& m) {
  define<double>(m);
  define<float>(m);
}

}  // namespace fastmem::bind

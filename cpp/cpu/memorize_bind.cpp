// Bindings of the memorize kernels: linear_recurrence, relu_sum_eval, cover_margins,
// cover_matrix, cover_gains.
#include <cstdint>

#include "bind.hpp"
#include "memorize_drivers.hpp"

namespace fastmem::bind {

namespace {

void linear_recurrence(CArray<double> alpha, CArray<double> beta, CArray<double> out) {
  require(alpha.ndim() == 1 && beta.ndim() == 1 && out.ndim() == 1,
          "alpha, beta and out must be 1-D");
  require(alpha.shape(0) == beta.shape(0) && beta.shape(0) == out.shape(0),
          "alpha, beta and out must have the same length");
  const double* ap = alpha.data();
  const double* bp = beta.data();
  double* op = out.mutable_data();
  const int64_t n = out.shape(0);
  py::gil_scoped_release release;
  cpu::linear_recurrence(ap, bp, n, op);
}

void relu_sum_eval(CArray<double> t, CArray<double> b, CArray<double> w, CArray<double> prefix,
                   CArray<double> out) {
  require(t.ndim() == 1 && b.ndim() == 1 && w.ndim() == 1 && out.ndim() == 1,
          "t, b, w and out must be 1-D");
  require(b.shape(0) == w.shape(0), "b and w must have the same length");
  require(t.shape(0) == out.shape(0), "t and out must have the same length");
  require(prefix.ndim() == 2 && prefix.shape(0) == b.shape(0) + 1 && prefix.shape(1) == 4,
          "prefix must be (len(b) + 1, 4)");
  const double *tp = t.data(), *bp = b.data(), *wp = w.data();
  double* pp = prefix.mutable_data();
  double* op = out.mutable_data();
  const int64_t n_t = t.shape(0), n = b.shape(0);
  py::gil_scoped_release release;
  cpu::relu_sum_eval(tp, n_t, bp, wp, n, pp, op);
}

void cover_margins(CArray<uint64_t> neg, CArray<uint64_t> pos, CArray<int64_t> m) {
  require(neg.ndim() == 2 && pos.ndim() == 2 && m.ndim() == 1,
          "neg and pos must be 2-D and m 1-D");
  require(neg.shape(1) == pos.shape(1), "neg and pos must have the same number of words");
  require(m.shape(0) == neg.shape(0), "m must have one entry per row of neg");
  require(pos.shape(0) >= 1, "pos must have at least one row");
  const uint64_t *np_ = neg.data(), *pp = pos.data();
  int64_t* mp = m.mutable_data();
  const int64_t n_neg = neg.shape(0), n_pos = pos.shape(0), words = neg.shape(1);
  py::gil_scoped_release release;
  cpu::cover_margins(np_, n_neg, pp, n_pos, words, mp);
}

void cover_matrix(CArray<uint64_t> neg, CArray<int64_t> m, CArray<uint64_t> cover) {
  require(neg.ndim() == 2 && m.ndim() == 1 && cover.ndim() == 2,
          "neg and cover must be 2-D and m 1-D");
  require(m.shape(0) == neg.shape(0) && cover.shape(0) == neg.shape(0),
          "m and cover must have one row per row of neg");
  require(cover.shape(1) == (neg.shape(0) + 63) / 64, "cover must have ceil(rows / 64) words");
  const uint64_t* np_ = neg.data();
  const int64_t* mp = m.data();
  uint64_t* cp = cover.mutable_data();
  const int64_t n_neg = neg.shape(0), words = neg.shape(1), cw = cover.shape(1);
  py::gil_scoped_release release;
  cpu::cover_matrix(np_, n_neg, words, mp, cp, cw);
}

void cover_gains(CArray<uint64_t> cover, CArray<uint64_t> uncovered, CArray<int64_t> gains) {
  require(cover.ndim() == 2 && uncovered.ndim() == 1 && gains.ndim() == 1,
          "cover must be 2-D, uncovered and gains 1-D");
  require(uncovered.shape(0) == cover.shape(1), "uncovered must have one word per cover column");
  require(gains.shape(0) == cover.shape(0), "gains must have one entry per row of cover");
  const uint64_t *cp = cover.data(), *up = uncovered.data();
  int64_t* gp = gains.mutable_data();
  const int64_t rows = cover.shape(0), words = cover.shape(1);
  py::gil_scoped_release release;
  cpu::cover_gains(cp, rows, words, up, gp);
}

}  // namespace

void memorize(py::module_& m) {
  m.def("linear_recurrence", &linear_recurrence, py::arg("alpha").noconvert(),
        py::arg("beta").noconvert(), py::arg("out").noconvert());
  m.def("relu_sum_eval", &relu_sum_eval, py::arg("t").noconvert(), py::arg("b").noconvert(),
        py::arg("w").noconvert(), py::arg("prefix").noconvert(), py::arg("out").noconvert());
  m.def("cover_margins", &cover_margins, py::arg("neg").noconvert(), py::arg("pos").noconvert(),
        py::arg("m").noconvert());
  m.def("cover_matrix", &cover_matrix, py::arg("neg").noconvert(), py::arg("m").noconvert(),
        py::arg("cover").noconvert());
  m.def("cover_gains", &cover_gains, py::arg("cover").noconvert(),
        py::arg("uncovered").noconvert(), py::arg("gains").noconvert());
}

}  // namespace fastmem::bind

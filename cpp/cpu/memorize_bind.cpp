// Bindings of the memorize kernels: linear_recurrence, relu_sum_eval, cover_margins,
// cover_matrix, cover_gains, threshold_pack, cover_step, cover_walks, threshold_votes.
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

void threshold_pack(CArray<double> z, CArray<double> b, CArray<uint64_t> codes) {
  require(z.ndim() == 2 && b.ndim() == 1 && codes.ndim() == 2,
          "z and codes must be 2-D and b 1-D");
  require(b.shape(0) == z.shape(1), "b must have one entry per column of z");
  require(codes.shape(0) == z.shape(0), "z and codes must have the same number of rows");
  require(codes.shape(1) == (z.shape(1) + 63) / 64, "codes must have ceil(width / 64) words");
  const double *zp = z.data(), *bp = b.data();
  uint64_t* cp = codes.mutable_data();
  const int64_t rows = z.shape(0), width = z.shape(1), words = codes.shape(1);
  py::gil_scoped_release release;
  cpu::threshold_pack(zp, rows, width, bp, cp, words);
}

void cover_step(CArray<uint64_t> neg, CArray<uint64_t> pos, int64_t row, int64_t rule,
                CArray<int64_t> alive, CArray<int64_t> counts, CArray<int64_t> state) {
  require(neg.ndim() == 2 && pos.ndim() == 2, "neg and pos must be 2-D");
  require(alive.ndim() == 1 && counts.ndim() == 1 && state.ndim() == 1,
          "alive, counts and state must be 1-D");
  require(neg.shape(1) == pos.shape(1), "neg and pos must have the same number of words");
  require(pos.shape(0) >= 1, "pos must have at least one row");
  require(row >= 0 && row < neg.shape(0), "row must index a row of neg");
  require(rule == 0 || rule == 1, "rule must be 0 (code) or 1 (half)");
  require(alive.shape(0) == neg.shape(0) && counts.shape(0) == neg.shape(0),
          "alive and counts must have one entry per row of neg");
  require(state.shape(0) == 2, "state must have 2 entries");
  int64_t* sp = state.mutable_data();
  require(sp[0] >= 0 && sp[0] <= neg.shape(0), "state[0] must be in [0, rows of neg]");
  const int64_t* ap0 = alive.data();
  for (int64_t j = 0; j < sp[0]; ++j)
    require(ap0[j] >= 0 && ap0[j] < neg.shape(0), "alive must hold row indices of neg");
  const uint64_t *np_ = neg.data(), *pp = pos.data();
  int64_t* ap = alive.mutable_data();
  int64_t* cp = counts.mutable_data();
  const int64_t n_pos = pos.shape(0), words = neg.shape(1);
  py::gil_scoped_release release;
  cpu::cover_step(np_, pp, n_pos, words, row, rule, ap, cp, sp);
}

void cover_walks(CArray<uint64_t> codes, int64_t n_neg, CArray<int64_t> sets,
                 CArray<int64_t> widths, CArray<int64_t> orders, int64_t rule,
                 CArray<uint8_t> flags, CArray<int64_t> uncovered) {
  require(codes.ndim() == 3, "codes must be 3-D (sets, rows, words)");
  require(sets.ndim() == 1 && widths.ndim() == 1 && uncovered.ndim() == 1,
          "sets, widths and uncovered must be 1-D");
  require(orders.ndim() == 2 && flags.ndim() == 2, "orders and flags must be 2-D");
  const int64_t n_sets = codes.shape(0), n_rows = codes.shape(1), words = codes.shape(2);
  require(n_neg >= 0 && n_neg < n_rows, "n_neg must leave at least one positive row of codes");
  require(rule == 0 || rule == 1, "rule must be 0 (code) or 1 (half)");
  const int64_t cells = widths.shape(0);
  require(sets.shape(0) == cells && uncovered.shape(0) == cells,
          "sets and uncovered must have one entry per width");
  require(orders.shape(0) == cells && orders.shape(1) == n_neg,
          "orders must be (len(widths), n_neg)");
  require(flags.shape(0) == cells && flags.shape(1) == n_neg,
          "flags must be (len(widths), n_neg)");
  const int64_t *wp = widths.data(), *sp = sets.data();
  for (int64_t c = 0; c < cells; ++c) {
    require(wp[c] >= 1 && wp[c] <= 64 * words, "widths must be in [1, 64 * words]");
    require(sp[c] >= 0 && sp[c] < n_sets, "sets must index the first axis of codes");
  }
  const uint64_t* cp = codes.data();
  const int64_t* op = orders.data();
  uint8_t* fp = flags.mutable_data();
  int64_t* up = uncovered.mutable_data();
  py::gil_scoped_release release;
  cpu::cover_walks(cp, n_rows, n_neg, words, sp, wp, op, cells, rule, fp, up);
}

void threshold_votes(CArray<uint64_t> codes, CArray<uint64_t> units, CArray<double> bias,
                     CArray<int64_t> owner, CArray<int64_t> votes) {
  require(codes.ndim() == 2 && units.ndim() == 2 && votes.ndim() == 2,
          "codes, units and votes must be 2-D");
  require(bias.ndim() == 1 && owner.ndim() == 1, "bias and owner must be 1-D");
  require(units.shape(1) == codes.shape(1), "codes and units must have the same number of words");
  require(bias.shape(0) == units.shape(0) && owner.shape(0) == units.shape(0),
          "bias and owner must have one entry per row of units");
  require(votes.shape(0) == codes.shape(0), "votes must have one row per row of codes");
  const int64_t n_classes = votes.shape(1);
  const int64_t* op = owner.data();
  for (int64_t q = 0; q < owner.shape(0); ++q)
    require(op[q] >= 0 && op[q] < n_classes, "owner must index a column of votes");
  const uint64_t *cp = codes.data(), *up = units.data();
  const double* bp = bias.data();
  int64_t* vp = votes.mutable_data();
  const int64_t rows = codes.shape(0), words = codes.shape(1), k = units.shape(0);
  py::gil_scoped_release release;
  cpu::threshold_votes(cp, rows, words, up, bp, op, k, n_classes, vp);
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
  m.def("threshold_pack", &threshold_pack, py::arg("z").noconvert(), py::arg("b").noconvert(),
        py::arg("codes").noconvert());
  m.def("cover_step", &cover_step, py::arg("neg").noconvert(), py::arg("pos").noconvert(),
        py::arg("row"), py::arg("rule"), py::arg("alive").noconvert(),
        py::arg("counts").noconvert(), py::arg("state").noconvert());
  m.def("cover_walks", &cover_walks, py::arg("codes").noconvert(), py::arg("n_neg"),
        py::arg("sets").noconvert(), py::arg("widths").noconvert(),
        py::arg("orders").noconvert(), py::arg("rule"), py::arg("flags").noconvert(),
        py::arg("uncovered").noconvert());
  m.def("threshold_votes", &threshold_votes, py::arg("codes").noconvert(),
        py::arg("units").noconvert(), py::arg("bias").noconvert(), py::arg("owner").noconvert(),
        py::arg("votes").noconvert());
}

}  // namespace fastmem::bind

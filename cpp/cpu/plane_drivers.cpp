#include "plane_drivers.hpp"

#include <utility>
#include <vector>

#include "fastmem/plane.hpp"

namespace fastmem::cpu {

namespace {

// A polygon waiting to be cut: its corners at cpool[c0 .. c0 + nc) (with, per corner, whether
// the side after it lies on the parent's boundary: bpool), and the lines that separate two
// of its corners at lpool[l0 .. l0 + nl) (codes 2 j + i: neuron j, threshold i), in order.
struct Pending {
  int64_t c0, nc, l0, nl;
};

// The cut of one parent, kept per thread and reused. Local vertex v < m is the parent's
// corner v (global id corners[off[p] + v], values zc); v >= m is new vertex i = v - m at
// (s[i], t[i]). A new vertex on the parent's boundary keeps a row of values (row[i] into z,
// interpolated from the side's ends, as the neighbour on that side does); one inside the
// parent reads its values from the parent's maps when a line asks (row[i] = -1): rows for
// every new vertex would take (vertices x width) memory, cubic in the lines of a parent.
// The final polygons are poly[poly_off[q] .. poly_off[q + 1]).
struct Scratch {
  std::vector<double> s, t, z, zc, zmin, zmax;
  std::vector<int64_t> row, poly_off, poly, cpool, lpool, cur, cross, child[2], lines[2], key[2];
  std::vector<uint8_t> bpool, bcur, bchild[2];
  std::vector<Pending> stack;
  std::vector<int> side;
};

// The parent is cut like a binary space partition: a polygon is cut by the first of its
// lines; each child keeps those of the later lines that separate two of its own corners.
// A line meets the polygon containing a given side in (neuron, threshold) order whatever
// the other lines do, so the cuts on a side shared with another parent are the same, in
// the same order and from the same rows, in both (see plane.hpp); and a polygon is never
// visited by the lines that do not cross it.
void cut_parent(const PlaneMesh& M, int64_t p, Scratch& w) {
  const int64_t c0 = M.off[p];
  const int64_t m = M.off[p + 1] - c0;
  const int64_t* gid = M.corners + c0;
  const int64_t width = M.width;
  const double* A = M.maps + p * width;  // the parent's own maps
  const double* GS = A + M.n_parents * width;
  const double* GT = GS + M.n_parents * width;
  w.s.clear();
  w.t.clear();
  w.z.clear();
  w.row.clear();
  // the corners' values, each from its owner's maps (the same rows in every parent)
  w.zc.resize(m * width);
  for (int64_t v = 0; v < m; ++v) {
    const int64_t g = gid[v];
    plane_vertex_row(M.maps, M.n_parents, width, M.owner[g], M.S[g], M.T[g],
                     w.zc.data() + v * width);
  }
  // a vertex's row of values, or null when it is read from the parent's maps
  auto rows = [&](int64_t v) -> const double* {
    if (v < m) return w.zc.data() + v * width;
    const int64_t r = w.row[v - m];
    return r < 0 ? nullptr : w.z.data() + r * width;
  };
  auto value = [&](int64_t v, int64_t j) {
    const double* r = rows(v);
    if (r != nullptr) return r[j];
    return (A[j] + w.s[v - m] * GS[j]) + w.t[v - m] * GT[j];
  };
  auto coord_s = [&](int64_t v) { return v < m ? M.S[gid[v]] : w.s[v - m]; };
  auto coord_t = [&](int64_t v) { return v < m ? M.T[gid[v]] : w.t[v - m]; };
  // The range of every neuron over the parent's corners, row by row (contiguous): the
  // lines strictly inside it are the parent's lines (plane_straddles).
  w.zmin.assign(w.zc.begin(), w.zc.begin() + width);
  w.zmax = w.zmin;
  for (int64_t v = 1; v < m; ++v) {
    const double* z = w.zc.data() + v * width;
    for (int64_t j = 0; j < width; ++j) {
      w.zmin[j] = z[j] < w.zmin[j] ? z[j] : w.zmin[j];
      w.zmax[j] = z[j] > w.zmax[j] ? z[j] : w.zmax[j];
    }
  }
  const int nt = n_thresholds(M.kind);
  w.lpool.clear();
  for (int64_t j = 0; j < width; ++j)
    for (int i = 0; i < nt; ++i)
      if (plane_straddles(w.zmin[j], w.zmax[j], threshold_value<double>(M.kind, i), M.tolz[j]))
        w.lpool.push_back(2 * j + i);
  w.cpool.resize(m);
  w.bpool.assign(m, 1);
  for (int64_t v = 0; v < m; ++v) w.cpool[v] = v;
  w.poly.clear();
  w.poly_off.assign(1, 0);
  w.stack.assign(1, Pending{0, m, 0, static_cast<int64_t>(w.lpool.size())});
  // whether line `code` separates two of the corners in `ids`
  auto straddles = [&](const std::vector<int64_t>& ids, int64_t code) {
    const int64_t j = code >> 1;
    const double c = threshold_value<double>(M.kind, static_cast<int>(code & 1));
    const double tol = M.tolz[j];
    bool above = false, below = false;
    for (const int64_t v : ids) {
      const int sd = plane_side(value(v, j) - c, tol);
      above |= sd > 0;
      below |= sd < 0;
    }
    return above && below;
  };
  while (!w.stack.empty()) {
    const Pending nd = w.stack.back();
    w.stack.pop_back();
    w.cur.assign(w.cpool.begin() + nd.c0, w.cpool.begin() + nd.c0 + nd.nc);
    w.bcur.assign(w.bpool.begin() + nd.c0, w.bpool.begin() + nd.c0 + nd.nc);
    if (nd.nl == 0) {  // no line crosses it: a final polygon
      w.poly.insert(w.poly.end(), w.cur.begin(), w.cur.end());
      w.poly_off.push_back(static_cast<int64_t>(w.poly.size()));
      w.cpool.resize(nd.c0);
      w.bpool.resize(nd.c0);
      w.lpool.resize(nd.l0);
      continue;
    }
    const int64_t code = w.lpool[nd.l0];
    const int64_t j = code >> 1;
    const double c = threshold_value<double>(M.kind, static_cast<int>(code & 1));
    const double tol = M.tolz[j];
    const int64_t n = nd.nc;
    w.side.resize(n);
    for (int64_t k = 0; k < n; ++k) w.side[k] = plane_side(value(w.cur[k], j) - c, tol);
    // one new vertex per crossed side (k, k + 1)
    w.cross.assign(n, -1);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t k2 = k + 1 == n ? 0 : k + 1;
      if (w.side[k] * w.side[k2] >= 0) continue;
      const int64_t a = w.cur[k], b = w.cur[k2];
      double s, t;
      if (w.bcur[k]) {  // on the parent's boundary: a row, as the neighbour makes it
        const size_t base = w.z.size();
        w.z.resize(base + width);  // before taking row pointers: it may move
        plane_cross(coord_s(a), coord_t(a), rows(a), coord_s(b), coord_t(b), rows(b), j, c,
                    width, &s, &t, w.z.data() + base);
        w.row.push_back(static_cast<int64_t>(base) / width);
      } else {  // inside: coordinates only
        plane_cross_point(coord_s(a), coord_t(a), value(a, j) - c, coord_s(b), coord_t(b),
                          value(b, j) - c, &s, &t);
        w.row.push_back(-1);
      }
      w.cross[k] = m + static_cast<int64_t>(w.s.size());
      w.s.push_back(s);
      w.t.push_back(t);
    }
    for (int h = 0; h < 2; ++h) {  // child 0: the side >= 0, child 1: the side <= 0
      const int sgn = h == 0 ? 1 : -1;
      std::vector<int64_t>& ch = w.child[h];
      std::vector<int64_t>& key = w.key[h];  // 2 k for corner k, 2 k + 1 for cross(k)
      ch.clear();
      key.clear();
      for (int64_t k = 0; k < n; ++k) {
        if (w.side[k] * sgn >= 0) {
          ch.push_back(w.cur[k]);
          key.push_back(2 * k);
        }
        if (w.cross[k] >= 0) {
          ch.push_back(w.cross[k]);
          key.push_back(2 * k + 1);
        }
      }
      // the side after an item stays on the parent's side (k, k + 1) when the next item is
      // on it too (cross(k) or corner k + 1); otherwise it runs along the cut line
      const int64_t nc = static_cast<int64_t>(ch.size());
      w.bchild[h].resize(nc);
      for (int64_t q = 0; q < nc; ++q) {
        const int64_t k = key[q] >> 1;
        const int64_t nk = key[q + 1 == nc ? 0 : q + 1];
        const int64_t k1 = k + 1 == n ? 0 : k + 1;
        const bool same = nk == 2 * k + 1 || nk == 2 * k1;
        w.bchild[h][q] = static_cast<uint8_t>(same && w.bcur[k]);
      }
      w.lines[h].clear();
      for (int64_t q = nd.l0 + 1; q < nd.l0 + nd.nl; ++q)
        if (straddles(ch, w.lpool[q])) w.lines[h].push_back(w.lpool[q]);
    }
    w.cpool.resize(nd.c0);
    w.bpool.resize(nd.c0);
    w.lpool.resize(nd.l0);
    for (int h = 1; h >= 0; --h) {  // child 0 on top: cut (and emitted) first
      w.stack.push_back(Pending{static_cast<int64_t>(w.cpool.size()),
                                static_cast<int64_t>(w.child[h].size()),
                                static_cast<int64_t>(w.lpool.size()),
                                static_cast<int64_t>(w.lines[h].size())});
      w.cpool.insert(w.cpool.end(), w.child[h].begin(), w.child[h].end());
      w.bpool.insert(w.bpool.end(), w.bchild[h].begin(), w.bchild[h].end());
      w.lpool.insert(w.lpool.end(), w.lines[h].begin(), w.lines[h].end());
    }
  }
}

}  // namespace

void plane_cut_count(const PlaneMesh& M, int64_t* counts) {
#pragma omp parallel
  {
    Scratch w;
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < M.n_parents; ++p) {
      cut_parent(M, p, w);
      counts[3 * p] = static_cast<int64_t>(w.poly_off.size()) - 1;
      counts[3 * p + 1] = static_cast<int64_t>(w.poly.size());
      counts[3 * p + 2] = static_cast<int64_t>(w.s.size());
    }
  }
}

void plane_cut_emit(const PlaneMesh& M, const int64_t* offsets, int64_t* out_sizes,
                    int64_t* out_corners, int64_t* out_parent, double* out_st) {
#pragma omp parallel
  {
    Scratch w;
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < M.n_parents; ++p) {
      cut_parent(M, p, w);
      const int64_t m = M.off[p + 1] - M.off[p];
      const int64_t* gid = M.corners + M.off[p];
      const int64_t q0 = offsets[3 * p], k0 = offsets[3 * p + 1], v0 = offsets[3 * p + 2];
      const int64_t n_poly = static_cast<int64_t>(w.poly_off.size()) - 1;
      for (int64_t q = 0; q < n_poly; ++q) {
        out_sizes[q0 + q] = w.poly_off[q + 1] - w.poly_off[q];
        out_parent[q0 + q] = p;
      }
      for (size_t k = 0; k < w.poly.size(); ++k) {
        const int64_t v = w.poly[k];
        out_corners[k0 + static_cast<int64_t>(k)] = v < m ? gid[v] : M.n_vertices + v0 + (v - m);
      }
      for (size_t i = 0; i < w.s.size(); ++i) {
        out_st[2 * (v0 + static_cast<int64_t>(i))] = w.s[i];
        out_st[2 * (v0 + static_cast<int64_t>(i)) + 1] = w.t[i];
      }
    }
  }
}

void plane_children(const double* maps, int64_t n_parents, int64_t width, const int64_t* parent,
                    const double* st, int64_t n, int kind, double slope, uint64_t* codes,
                    int64_t n_words, int64_t bit_offset, double* h) {
#pragma omp parallel
  {
    std::vector<double> zrow(width);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      plane_child_row(maps, n_parents, width, parent[i], st[2 * i], st[2 * i + 1], kind, slope,
                      codes + i * n_words, bit_offset, h == nullptr ? nullptr : h + i * width,
                      n * width, zrow.data());
  }
}

}  // namespace fastmem::cpu

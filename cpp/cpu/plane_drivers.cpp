#include "plane_drivers.hpp"

#include <utility>
#include <vector>

#include "fastmem/plane.hpp"

namespace fastmem::cpu {

namespace {

// The cut of one parent, kept per thread and reused: local vertex v < m is the parent's
// corner v (global id corners[off[p] + v]); v >= m is new vertex v - m (s, t, z here).
struct Scratch {
  std::vector<double> s, t, z;
  std::vector<int64_t> poly_off, poly, next_off, next_poly, cross;
  std::vector<int> side;
  std::vector<double> zmin, zmax, zc;
};

void cut_parent(const PlaneMesh& M, int64_t p, Scratch& w) {
  const int64_t c0 = M.off[p];
  const int64_t m = M.off[p + 1] - c0;
  const int64_t* gid = M.corners + c0;
  const int64_t width = M.width;
  w.s.clear();
  w.t.clear();
  w.z.clear();
  w.poly.resize(m);
  for (int64_t v = 0; v < m; ++v) w.poly[v] = v;
  w.poly_off.assign({0, m});
  // the corners' values, each from its owner's maps (the same rows in every parent)
  w.zc.resize(m * width);
  for (int64_t v = 0; v < m; ++v) {
    const int64_t g = gid[v];
    plane_vertex_row(M.maps, M.n_parents, width, M.owner[g], M.S[g], M.T[g],
                     w.zc.data() + v * width);
  }
  auto rows = [&](int64_t v) -> const double* {
    return v < m ? w.zc.data() + v * width : w.z.data() + (v - m) * width;
  };
  // The range of every neuron over the parent's corners, row by row (contiguous): only
  // the lines strictly inside it can cut the parent (plane_straddles, for all neurons).
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
  for (int64_t j = 0; j < width; ++j) {
    const double tol = M.tolz[j];
    for (int i = 0; i < nt; ++i) {
      const double c = threshold_value<double>(M.kind, i);
      if (!plane_straddles(w.zmin[j], w.zmax[j], c, tol)) continue;
      w.next_off.assign(1, 0);
      w.next_poly.clear();
      const int64_t n_poly = static_cast<int64_t>(w.poly_off.size()) - 1;
      for (int64_t q = 0; q < n_poly; ++q) {
        const int64_t q0 = w.poly_off[q], n = w.poly_off[q + 1] - q0;
        w.side.resize(n);
        bool above = false, below = false;
        for (int64_t k = 0; k < n; ++k) {
          const int sd = plane_side(rows(w.poly[q0 + k])[j] - c, tol);
          w.side[k] = sd;
          above |= sd > 0;
          below |= sd < 0;
        }
        if (!(above && below)) {
          w.next_poly.insert(w.next_poly.end(), w.poly.begin() + q0, w.poly.begin() + q0 + n);
          w.next_off.push_back(static_cast<int64_t>(w.next_poly.size()));
          continue;
        }
        // one new vertex per crossed side (k, k + 1)
        w.cross.assign(n, -1);
        for (int64_t k = 0; k < n; ++k) {
          const int64_t k2 = k + 1 == n ? 0 : k + 1;
          if (w.side[k] * w.side[k2] >= 0) continue;
          const int64_t a = w.poly[q0 + k], b = w.poly[q0 + k2];
          const size_t base = w.z.size();
          w.z.resize(base + width);  // before taking row pointers: it may move
          double s, t;
          const double sa = a < m ? M.S[gid[a]] : w.s[a - m];
          const double ta = a < m ? M.T[gid[a]] : w.t[a - m];
          const double sb = b < m ? M.S[gid[b]] : w.s[b - m];
          const double tb = b < m ? M.T[gid[b]] : w.t[b - m];
          plane_cross(sa, ta, rows(a), sb, tb, rows(b), j, c, width, &s, &t, w.z.data() + base);
          w.cross[k] = m + static_cast<int64_t>(w.s.size());
          w.s.push_back(s);
          w.t.push_back(t);
        }
        for (int sgn = 1; sgn >= -1; sgn -= 2) {  // the side >= 0, then the side <= 0
          for (int64_t k = 0; k < n; ++k) {
            if (w.side[k] * sgn >= 0) w.next_poly.push_back(w.poly[q0 + k]);
            if (w.cross[k] >= 0) w.next_poly.push_back(w.cross[k]);
          }
          w.next_off.push_back(static_cast<int64_t>(w.next_poly.size()));
        }
      }
      std::swap(w.poly, w.next_poly);
      std::swap(w.poly_off, w.next_off);
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

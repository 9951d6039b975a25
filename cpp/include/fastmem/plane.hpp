// Exact 2-D slices: cutting convex polygons by a layer's threshold lines (src/fastmem/plane.py).
//
// A layer starts with a conforming mesh of convex polygons (the *parents*) on each of which
// the layer's pre-activations z are affine (the maps: value at (0, 0), d/ds, d/dt). Each
// parent is cut, independently of the others, by the threshold lines z_j = c (c = 0, or -1
// and +1 for hard-tanh) that separate two of its corners, as a binary space partition: a
// polygon is cut by the first of its lines in (j, c) order (Sutherland-Hodgman: a corner on
// the line, |z_j - c| <= tol_j, goes to both children), and each child keeps those of the
// later lines that separate two of its own corners. A new vertex on the side (a, b) is
// computed from its ends in a canonical order (the lexicographically smaller (s, t) first):
//   r = f_a / (f_a - f_b),  (s, t) = (s, t)_a + r ((s, t)_b - (s, t)_a)
// On the parent's boundary it also gets a row of values, z = z_a + r (z_b - z_a): the lines
// crossing a boundary side meet it in (j, c) order whatever the others do, from the same
// rows, with one tolerance tol_j per neuron, so the neighbour across that side makes bitwise
// the same vertices (the caller merges equal coordinates) and the mesh stays conforming.
// Inside the parent a new vertex reads its values from the parent's maps when asked (rows
// there would take memory cubic in the parent's lines).
//
// A parent's corner gets its values from the maps of one polygon that owns it (`owner`):
// every parent with that corner reads the same row (plane_vertex_row), bitwise.
//
// After the cut, plane_child_row evaluates each child at an interior point (its vertex
// mean): the layer's pattern bits (pack_and_activate_row, as Network.pattern_hashes) and
// the maps of the post-activations, h = act(z) = d z + (act(z) - d z) with d the slope of
// the child's branch, which the next layer's GEMM turns into its maps.
//
// The functions here work on caller-provided buffers (no allocation); the drivers keep the
// per-parent scratch.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastmem/activations.hpp"
#include "fastmem/hd.hpp"
#include "fastmem/patterns.hpp"
#include "fastmem/regions.hpp"

namespace fastmem {

// -1, 0 or +1: the side of the line a value f = z - c is on, 0 within tol.
FASTMEM_HD inline int plane_side(double f, double tol) {
  return f > tol ? 1 : (f < -tol ? -1 : 0);
}

// Whether a's coordinates come after b's (lexicographic on (s, t)): the canonical order
// of a side's ends.
FASTMEM_HD inline bool plane_after(double sa, double ta, double sb, double tb) {
  return sa > sb || (sa == sb && ta > tb);
}

// The new vertex where the line (value f = z_j - c) crosses the side (a, b):
// coordinates into *s, *t and the layer's values into z (width entries).
FASTMEM_HD inline void plane_cross(double sa, double ta, const double* za, double sb, double tb,
                                   const double* zb, int64_t j, double c, int64_t width,
                                   double* s, double* t, double* z) {
  if (plane_after(sa, ta, sb, tb)) {
    const double* zt = za;
    za = zb;
    zb = zt;
    double x = sa;
    sa = sb;
    sb = x;
    x = ta;
    ta = tb;
    tb = x;
  }
  const double fa = za[j] - c, fb = zb[j] - c;
  const double r = fa / (fa - fb);
  *s = sa + r * (sb - sa);
  *t = ta + r * (tb - ta);
  for (int64_t k = 0; k < width; ++k) z[k] = za[k] + r * (zb[k] - za[k]);
}

// The layer's values at a vertex (s, t) from polygon p's maps (maps: 3 blocks of
// n_poly x width: value at (0, 0), d/ds, d/dt).
FASTMEM_HD inline void plane_vertex_row(const double* maps, int64_t n_poly, int64_t width,
                                        int64_t p, double s, double t, double* z) {
  const double* a = maps + p * width;
  const double* gs = a + n_poly * width;
  const double* gt = gs + n_poly * width;
  for (int64_t j = 0; j < width; ++j) z[j] = (a[j] + s * gs[j]) + t * gt[j];
}

// The maps of the post-activations of one child (see plane_child_row), for one kind.
template <int Kind>
FASTMEM_HD inline void plane_child_maps(const double* a, const double* gs, const double* gt,
                                        const double* zrow, int64_t width, double slope,
                                        double* h, int64_t h_stride) {
  for (int64_t j = 0; j < width; ++j) {
    const double z = zrow[j];
    const double d = activation_slope(z, Kind, slope);
    const double c = activate(z, Kind, slope) - d * z;  // 0 but for saturated branches
    h[j] = d * a[j] + c;
    h[h_stride + j] = d * gs[j];
    h[2 * h_stride + j] = d * gt[j];
  }
}

// One child (parent p, interior point (s, t)): ORs the layer's state bits into codes (from
// bit_offset) and, with h (3 rows of `width`, each h_stride apart) not null, writes the maps
// of the post-activations. zrow: scratch of `width`.
FASTMEM_HD inline void plane_child_row(const double* maps, int64_t n_poly, int64_t width,
                                       int64_t p, double s, double t, int kind, double slope,
                                       uint64_t* codes, int64_t bit_offset, double* h,
                                       int64_t h_stride, double* zrow) {
  plane_vertex_row(maps, n_poly, width, p, s, t, zrow);
  if (h != nullptr) {
    const double* a = maps + p * width;
    const double* gs = a + n_poly * width;
    const double* gt = gs + n_poly * width;
    with_kind(kind, [&](auto k) {  // the kind as a constant: the loop has no switch inside
      plane_child_maps<decltype(k)::value>(a, gs, gt, zrow, width, slope, h, h_stride);
    });
  }
  pack_and_activate_row(zrow, width, codes, bit_offset, kind, slope);
}

// The point where the line crosses the side (a, b), from the values fa, fb of z_j - c at
// its ends (ends in canonical order): for sides inside a parent, whose new vertices read
// their values from the parent's maps afterwards.
FASTMEM_HD inline void plane_cross_point(double sa, double ta, double fa, double sb, double tb,
                                         double fb, double* s, double* t) {
  if (plane_after(sa, ta, sb, tb)) {
    double x = sa;
    sa = sb;
    sb = x;
    x = ta;
    ta = tb;
    tb = x;
    x = fa;
    fa = fb;
    fb = x;
  }
  const double r = fa / (fa - fb);
  *s = sa + r * (sb - sa);
  *t = ta + r * (tb - ta);
}

// Whether the line z_j = c separates two of a parent's corners, from the smallest and the
// largest z_j over them: one above c + tol and one below c - tol.
FASTMEM_HD inline bool plane_straddles(double zmin, double zmax, double c, double tol) {
  return zmax - c > tol && zmin - c < -tol;
}


// ------------------------------------------------------------------ one parent's cut
// The cut of one parent (the drivers: one call per parent, CPU thread or CUDA thread),
// on caller-provided scratch; the same code on both.

// One layer's mesh: vertex coordinates S, T; the layer's maps (3 x n_parents x width) and
// each vertex's owner (a parent that has it, whose maps give its values); parent p is
// corners[off[p] .. off[p + 1]) (counter-clockwise); kind: the layer's activation code;
// tolz: the tolerance of each neuron (width).
struct PlaneMesh {
  const double* S;
  const double* T;
  const double* maps;
  const int64_t* owner;
  int64_t n_vertices;
  int64_t width;
  const int64_t* corners;
  const int64_t* off;
  int64_t n_parents;
  int kind;
  const double* tolz;
};

// Scratch of one parent's cut: `cap` entries per list, `cap_rows` rows (width doubles) of
// values for new vertices on the parent's boundary, `cap_m` rows for its corners. Local
// vertex v < m is the parent's corner v (values zc[v]); v >= m is new vertex i = v - m at
// (s[i], t[i]), with row[i] into z (on the parent's boundary) or -1 (inside: its values
// are read from the parent's maps: rows for every new vertex would take memory cubic in
// the parent's lines). cpool / bpool / lpool: the corners (with, per corner, whether the
// side after it lies on the parent's boundary) and the lines (2 j + i: neuron j,
// threshold i) of the polygons waiting on `stack` (4 entries each: corner start, count,
// line start, count). The final polygons: poly[poly_off[q] .. poly_off[q + 1]).
struct PlaneCutWork {
  int64_t cap, cap_rows, cap_m;
  double *s, *t, *z, *zc, *zmin, *zmax;
  int64_t *row, *poly, *poly_off, *cpool, *lpool, *cur, *cross, *stack;
  int64_t *child[2], *key[2], *lines[2];
  uint8_t *bpool, *bcur, *bchild[2];
  int* side;
  int64_t n_new, n_poly, n_corners;  // results of plane_cut_parent
};

// Bytes of one PlaneCutWork (8-byte aligned pieces).
FASTMEM_HD inline int64_t plane_work_bytes(int64_t cap, int64_t cap_rows, int64_t cap_m,
                                           int64_t width) {
  const int64_t doubles = 2 * cap + (cap_rows + cap_m + 2) * width;
  const int64_t ints = 17 * cap + 1;
  const int64_t small = (4 * cap + 4 * cap + 7) / 8;  // uint8 x 4 and int, in 8-byte words
  return 8 * (doubles + ints + small + 1);
}

// Lay a PlaneCutWork out over `base` (plane_work_bytes bytes, 8-byte aligned).
FASTMEM_HD inline PlaneCutWork plane_work_carve(void* base, int64_t cap, int64_t cap_rows,
                                                int64_t cap_m, int64_t width) {
  PlaneCutWork w{};
  w.cap = cap;
  w.cap_rows = cap_rows;
  w.cap_m = cap_m;
  double* d = static_cast<double*>(base);
  w.s = d;
  w.t = d + cap;
  w.z = d + 2 * cap;
  w.zc = w.z + cap_rows * width;
  w.zmin = w.zc + cap_m * width;
  w.zmax = w.zmin + width;
  int64_t* q = reinterpret_cast<int64_t*>(w.zmax + width);
  int64_t** lists[] = {&w.row,      &w.poly,     &w.cpool,    &w.lpool,    &w.cur,
                       &w.cross,    &w.child[0], &w.child[1], &w.key[0],   &w.key[1],
                       &w.lines[0], &w.lines[1]};
  for (int64_t** l : lists) {
    *l = q;
    q += cap;
  }
  w.poly_off = q;
  q += cap + 1;
  w.stack = q;
  q += 4 * cap;
  uint8_t* b = reinterpret_cast<uint8_t*>(q);
  w.bpool = b;
  w.bcur = b + cap;
  w.bchild[0] = b + 2 * cap;
  w.bchild[1] = b + 3 * cap;
  const int64_t pad = (4 * cap + 7) / 8 * 8;
  w.side = reinterpret_cast<int*>(b + pad);
  return w;
}

// Local vertex v's row of values, or null when it is read from the parent's maps.
FASTMEM_HD inline const double* plane_local_row(const PlaneCutWork& w, int64_t m, int64_t width,
                                                int64_t v) {
  if (v < m) return w.zc + v * width;
  const int64_t r = w.row[v - m];
  return r < 0 ? nullptr : w.z + r * width;
}

// Local vertex v's value of neuron j (A, GS, GT: the parent's maps).
FASTMEM_HD inline double plane_local_value(const PlaneCutWork& w, int64_t m, int64_t width,
                                           const double* A, const double* GS, const double* GT,
                                           int64_t v, int64_t j) {
  const double* r = plane_local_row(w, m, width, v);
  if (r != nullptr) return r[j];
  return (A[j] + w.s[v - m] * GS[j]) + w.t[v - m] * GT[j];
}

// Cut parent p into w (plane_cut_* drivers): a binary space partition, a polygon cut by
// the first of its lines, each child keeping those of the later lines that separate two
// of its own corners. A line meets the polygon containing a given side in (neuron,
// threshold) order whatever the other lines do, so the cuts on a side shared with another
// parent are the same, in the same order and from the same rows, in both; and a polygon
// is never visited by the lines that do not cross it. Returns false when the scratch is
// too small (the caller grows it and calls again); then w's results are meaningless.
FASTMEM_HD inline bool plane_cut_parent(const PlaneMesh& M, int64_t p, PlaneCutWork& w) {
  const int64_t c0 = M.off[p];
  const int64_t m = M.off[p + 1] - c0;
  const int64_t* gid = M.corners + c0;
  const int64_t width = M.width;
  const int64_t cap = w.cap;
  if (m > w.cap_m || m > cap) return false;
  const double* A = M.maps + p * width;  // the parent's own maps
  const double* GS = A + M.n_parents * width;
  const double* GT = GS + M.n_parents * width;
  int64_t ns = 0, nz = 0, npoly = 0, npc = 0, ncp = 0, nlp = 0, nst = 0;
  // the corners' values, each from its owner's maps (the same rows in every parent)
  for (int64_t v = 0; v < m; ++v) {
    const int64_t g = gid[v];
    plane_vertex_row(M.maps, M.n_parents, width, M.owner[g], M.S[g], M.T[g], w.zc + v * width);
  }
  // The range of every neuron over the parent's corners: the lines strictly inside it
  // are the parent's lines (plane_straddles).
  for (int64_t j = 0; j < width; ++j) w.zmin[j] = w.zmax[j] = w.zc[j];
  for (int64_t v = 1; v < m; ++v) {
    const double* z = w.zc + v * width;
    for (int64_t j = 0; j < width; ++j) {
      w.zmin[j] = z[j] < w.zmin[j] ? z[j] : w.zmin[j];
      w.zmax[j] = z[j] > w.zmax[j] ? z[j] : w.zmax[j];
    }
  }
  const int nt = n_thresholds(M.kind);
  for (int64_t j = 0; j < width; ++j)
    for (int i = 0; i < nt; ++i)
      if (plane_straddles(w.zmin[j], w.zmax[j], threshold_value<double>(M.kind, i), M.tolz[j])) {
        if (nlp >= cap) return false;
        w.lpool[nlp++] = 2 * j + i;
      }
  for (int64_t v = 0; v < m; ++v) {
    w.cpool[v] = v;
    w.bpool[v] = 1;
  }
  ncp = m;
  w.poly_off[0] = 0;
  w.stack[0] = 0;
  w.stack[1] = m;
  w.stack[2] = 0;
  w.stack[3] = nlp;
  nst = 1;
  auto coord_s = [&](int64_t v) { return v < m ? M.S[gid[v]] : w.s[v - m]; };
  auto coord_t = [&](int64_t v) { return v < m ? M.T[gid[v]] : w.t[v - m]; };
  while (nst > 0) {
    --nst;
    const int64_t nd_c0 = w.stack[4 * nst], n = w.stack[4 * nst + 1];
    const int64_t nd_l0 = w.stack[4 * nst + 2], nd_nl = w.stack[4 * nst + 3];
    for (int64_t k = 0; k < n; ++k) {
      w.cur[k] = w.cpool[nd_c0 + k];
      w.bcur[k] = w.bpool[nd_c0 + k];
    }
    if (nd_nl == 0) {  // no line crosses it: a final polygon
      if (npc + n > cap || npoly + 1 > cap) return false;
      for (int64_t k = 0; k < n; ++k) w.poly[npc++] = w.cur[k];
      w.poly_off[++npoly] = npc;
      ncp = nd_c0;
      nlp = nd_l0;
      continue;
    }
    const int64_t code = w.lpool[nd_l0];
    const int64_t j = code >> 1;
    const double c = threshold_value<double>(M.kind, static_cast<int>(code & 1));
    const double tol = M.tolz[j];
    for (int64_t k = 0; k < n; ++k)
      w.side[k] = plane_side(plane_local_value(w, m, width, A, GS, GT, w.cur[k], j) - c, tol);
    // one new vertex per crossed side (k, k + 1)
    for (int64_t k = 0; k < n; ++k) {
      w.cross[k] = -1;
      const int64_t k2 = k + 1 == n ? 0 : k + 1;
      if (w.side[k] * w.side[k2] >= 0) continue;
      if (ns >= cap) return false;
      const int64_t a = w.cur[k], b = w.cur[k2];
      double s, t;
      if (w.bcur[k]) {  // on the parent's boundary: a row, as the neighbour makes it
        if (nz >= w.cap_rows) return false;
        plane_cross(coord_s(a), coord_t(a), plane_local_row(w, m, width, a), coord_s(b),
                    coord_t(b), plane_local_row(w, m, width, b), j, c, width, &s, &t,
                    w.z + nz * width);
        w.row[ns] = nz++;
      } else {  // inside: coordinates only
        plane_cross_point(coord_s(a), coord_t(a),
                          plane_local_value(w, m, width, A, GS, GT, a, j) - c, coord_s(b),
                          coord_t(b), plane_local_value(w, m, width, A, GS, GT, b, j) - c, &s,
                          &t);
        w.row[ns] = -1;
      }
      w.cross[k] = m + ns;
      w.s[ns] = s;
      w.t[ns] = t;
      ++ns;
    }
    int64_t nch[2], nln[2];
    for (int h = 0; h < 2; ++h) {  // child 0: the side >= 0, child 1: the side <= 0
      const int sgn = h == 0 ? 1 : -1;
      int64_t* ch = w.child[h];
      int64_t* key = w.key[h];  // 2 k for corner k, 2 k + 1 for cross(k)
      int64_t nc = 0;
      for (int64_t k = 0; k < n; ++k) {
        if (w.side[k] * sgn >= 0) {
          if (nc >= cap) return false;
          ch[nc] = w.cur[k];
          key[nc++] = 2 * k;
        }
        if (w.cross[k] >= 0) {
          if (nc >= cap) return false;
          ch[nc] = w.cross[k];
          key[nc++] = 2 * k + 1;
        }
      }
      // the side after an item stays on the parent's side (k, k + 1) when the next item
      // is on it too (cross(k) or corner k + 1); otherwise it runs along the cut line
      for (int64_t q = 0; q < nc; ++q) {
        const int64_t k = key[q] >> 1;
        const int64_t nk = key[q + 1 == nc ? 0 : q + 1];
        const int64_t k1 = k + 1 == n ? 0 : k + 1;
        const bool same = nk == 2 * k + 1 || nk == 2 * k1;
        w.bchild[h][q] = static_cast<uint8_t>(same && w.bcur[k]);
      }
      // the later lines that separate two of the child's corners
      int64_t nl = 0;
      for (int64_t q = nd_l0 + 1; q < nd_l0 + nd_nl; ++q) {
        const int64_t cq = w.lpool[q];
        const int64_t jq = cq >> 1;
        const double cc = threshold_value<double>(M.kind, static_cast<int>(cq & 1));
        const double tq = M.tolz[jq];
        bool above = false, below = false;
        for (int64_t r = 0; r < nc; ++r) {
          const int sd =
              plane_side(plane_local_value(w, m, width, A, GS, GT, ch[r], jq) - cc, tq);
          above |= sd > 0;
          below |= sd < 0;
        }
        if (above && below) w.lines[h][nl++] = cq;
      }
      nch[h] = nc;
      nln[h] = nl;
    }
    ncp = nd_c0;
    nlp = nd_l0;
    for (int h = 1; h >= 0; --h) {  // child 0 on top: cut (and emitted) first
      if (nst + 1 > cap || ncp + nch[h] > cap || nlp + nln[h] > cap) return false;
      w.stack[4 * nst] = ncp;
      w.stack[4 * nst + 1] = nch[h];
      w.stack[4 * nst + 2] = nlp;
      w.stack[4 * nst + 3] = nln[h];
      ++nst;
      for (int64_t q = 0; q < nch[h]; ++q) {
        w.cpool[ncp + q] = w.child[h][q];
        w.bpool[ncp + q] = w.bchild[h][q];
      }
      ncp += nch[h];
      for (int64_t q = 0; q < nln[h]; ++q) w.lpool[nlp + q] = w.lines[h][q];
      nlp += nln[h];
    }
  }
  w.n_new = ns;
  w.n_poly = npoly;
  w.n_corners = npc;
  return true;
}

// Parent p's results (after plane_cut_parent) into the outputs from offsets[3 p ..] =
// (polygon, corner, new vertex): sizes / parent per polygon, corners (vertex ids; new
// vertex i of the call is n_vertices + i), st (2 per new vertex).
FASTMEM_HD inline void plane_emit_parent(const PlaneMesh& M, int64_t p, const PlaneCutWork& w,
                                         const int64_t* offsets, int64_t* out_sizes,
                                         int64_t* out_corners, int64_t* out_parent,
                                         double* out_st) {
  const int64_t m = M.off[p + 1] - M.off[p];
  const int64_t* gid = M.corners + M.off[p];
  const int64_t q0 = offsets[3 * p], k0 = offsets[3 * p + 1], v0 = offsets[3 * p + 2];
  for (int64_t q = 0; q < w.n_poly; ++q) {
    out_sizes[q0 + q] = w.poly_off[q + 1] - w.poly_off[q];
    out_parent[q0 + q] = p;
  }
  for (int64_t k = 0; k < w.n_corners; ++k) {
    const int64_t v = w.poly[k];
    out_corners[k0 + k] = v < m ? gid[v] : M.n_vertices + v0 + (v - m);
  }
  for (int64_t i = 0; i < w.n_new; ++i) {
    out_st[2 * (v0 + i)] = w.s[i];
    out_st[2 * (v0 + i) + 1] = w.t[i];
  }
}

// ------------------------------------------------------------------ decisions
// The decision on one region (src/fastmem/plane.py, _decisions): L holds its logits as
// an affine map, 3 rows of n_classes (value at (0, 0), d/ds, d/dt; a binary network's
// single logit l given as the two logits (0, l)); its corners are (S[idx[k]], T[idx[k]]),
// k < m; (s, t) is an interior point (its vertex mean). Writes the top class at (s, t)
// (the first largest of (L0 + s L1) + t L2) and flags: bit 0 when that class is constant
// on the region, i.e. at every corner and for every class c, with the margin's map
// D = L[., top] - L[., c]:
//   g = (D0 + s_k D1) + t_k D2 >= -tol * hypot(D1, D2);
// bit 1 when at least two corners tie (|g| <= tol * hypot(D1, D2)) with a class other than
// the top. The hypot is only taken where g is negative or small enough to tie (it is
// below 2 max(|D1|, |D2|), hence so is its rounding), so the decisions are those of
// computing it everywhere.
FASTMEM_HD inline void plane_decide_region(const double* L, int64_t n_classes,
                                           const int64_t* idx, int64_t m, const double* S,
                                           const double* T, double s, double t, double tol,
                                           int64_t* top_out, uint8_t* flags) {
  const double* L0 = L;
  const double* L1 = L + n_classes;
  const double* L2 = L + 2 * n_classes;
  int64_t top = 0;
  double best = (L0[0] + s * L1[0]) + t * L2[0];
  for (int64_t c = 1; c < n_classes; ++c) {
    const double v = (L0[c] + s * L1[c]) + t * L2[c];
    if (v > best) {
      best = v;
      top = c;
    }
  }
  bool constant = true;
  int64_t tied_corners = 0;
  // the corners by chunks, each class's margin map read once per chunk
  constexpr int64_t kChunk = 32;
  double cs[kChunk], ct[kChunk];
  bool tie[kChunk];
  for (int64_t k0 = 0; k0 < m; k0 += kChunk) {
    const int64_t mk = m - k0 < kChunk ? m - k0 : kChunk;
    for (int64_t j = 0; j < mk; ++j) {
      cs[j] = S[idx[k0 + j]];
      ct[j] = T[idx[k0 + j]];
      tie[j] = false;
    }
    for (int64_t c = 0; c < n_classes; ++c) {
      const double d0 = L0[top] - L0[c], d1 = L1[top] - L1[c], d2 = L2[top] - L2[c];
      const double a1 = d1 < 0 ? -d1 : d1, a2 = d2 < 0 ? -d2 : d2;
      const double lim = tol * (2 * (a1 > a2 ? a1 : a2));
      double tg = -1;  // tol * hypot(d1, d2) once needed (never negative, maybe NaN)
      for (int64_t j = 0; j < mk; ++j) {
        const double g = (d0 + cs[j] * d1) + ct[j] * d2;
        const double ag = g < 0 ? -g : g;
        if (!(g >= 0) || (c != top && !tie[j] && ag <= lim)) {
          if (tg < 0) tg = tol * hypot(d1, d2);
          if (!(g >= -tg)) constant = false;
          if (c != top && ag <= tg) tie[j] = true;
        }
      }
    }
    for (int64_t j = 0; j < mk; ++j) tied_corners += tie[j] ? 1 : 0;
  }
  *top_out = top;
  *flags = static_cast<uint8_t>((constant ? 1 : 0) | (tied_corners >= 2 ? 2 : 0));
}

}  // namespace fastmem

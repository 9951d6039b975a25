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
    for (int64_t j = 0; j < width; ++j) {
      const double z = zrow[j];
      const double d = activation_slope(z, kind, slope);
      const double c = activate(z, kind, slope) - d * z;  // 0 but for saturated branches
      h[j] = d * a[j] + c;
      h[h_stride + j] = d * gs[j];
      h[2 * h_stride + j] = d * gt[j];
    }
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

}  // namespace fastmem

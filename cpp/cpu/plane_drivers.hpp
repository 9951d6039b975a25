// CPU drivers of the 2-D slice kernels (cpp/include/fastmem/plane.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fastmem/plane.hpp"

namespace fastmem::cpu {

// One layer's mesh (fastmem/plane.hpp).
using PlaneMesh = fastmem::PlaneMesh;


// counts (n_parents x 3): per parent, the polygons it is cut into, their corners in all and
// the new vertices it creates.
void plane_cut_count(const PlaneMesh& mesh, int64_t* counts);

// The cut mesh: parent p writes from offsets[p] = (polygon, corner, new vertex) (exclusive
// prefix sums of the counts): out_sizes / out_parent per polygon, out_corners (vertex ids;
// new vertex i of the call is n_vertices + i), out_st (2 per new vertex).
void plane_cut_emit(const PlaneMesh& mesh, const int64_t* offsets, int64_t* out_sizes,
                    int64_t* out_corners, int64_t* out_parent, double* out_st);

// The cut in one pass (what plane_cut_count and plane_cut_emit give in two) of the parents
// lo .. hi - 1: each thread keeps the polygons of the parents it cut (parts), then
// plane_cut_gather writes them in parent order, as plane_cut_emit does for all parents, into
// outputs sized by offsets' last row (where and offsets: one entry per parent of the range;
// the range's new vertices are numbered n_vertices + 0, 1, ...).
struct PlaneCut {
  struct Part {
    std::vector<int64_t> sizes, corners;
    std::vector<double> st;
  };
  std::vector<Part> threads;
  std::vector<int64_t> where;    // per parent: thread, start of its sizes, corners, st rows
  std::vector<int64_t> offsets;  // (parents + 1) x 3 exclusive prefix sums of the counts
  // Drop the buffers when they hold more than keep_bytes (a caller that keeps one
  // PlaneCut from call to call reuses them below that: no fresh pages to fault in).
  void release_if_large(size_t keep_bytes);
};

// Bytes of cut buffers (PlaneCut, per-thread scratch) kept from one call to the next.
inline constexpr size_t kPlaneKeepBytes = size_t{32} << 20;

void plane_cut(const PlaneMesh& mesh, PlaneCut& out, int64_t lo, int64_t hi);

void plane_cut_gather(const PlaneMesh& mesh, const PlaneCut& cut, int64_t lo, int64_t hi,
                      int64_t* out_sizes, int64_t* out_corners, int64_t* out_parent,
                      double* out_st);

// Per child i (parent[i], interior point st[i]): the layer's bits into codes (n_words per
// row, from bit_offset) and, with h not null, the post-activation maps (3 x n x width).
void plane_children(const double* maps, int64_t n_parents, int64_t width, const int64_t* parent,
                    const double* st, int64_t n, int kind, double slope, uint64_t* codes,
                    int64_t n_words, int64_t bit_offset, double* h);

// Per region i (logit maps L + 3 n_classes i, corners corners[off[i] .. off[i + 1]),
// interior point st[2 i ..]): plane_decide_region's top class and flags.
void plane_decide(const double* L, int64_t n, int64_t n_classes, const double* S,
                  const double* T, const int64_t* corners, const int64_t* off,
                  const double* st, double tol, int64_t* top, uint8_t* flags);

}  // namespace fastmem::cpu

// CPU drivers of the 2-D slice kernels: OpenMP loops over cpp/include/fastmem/plane.hpp.
#include "plane_drivers.hpp"

#include <algorithm>
#include <vector>

#include "fastmem/plane.hpp"

namespace fastmem::cpu {

namespace {

// One thread's scratch for plane_cut_parent, grown (doubled) until a parent fits and kept
// for the next parents.
struct Scratch {
  std::vector<double> mem;
  PlaneCutWork w{};
  int64_t cap = 64, cap_rows = 16, cap_m = 0, width = -1;

  void fit(int64_t m, int64_t width_) {
    if (width_ == width && m <= cap_m && !mem.empty()) return;
    width = width_;
    cap_m = std::max(cap_m, m);
    cap = std::max(cap, m);
    carve();
  }
  void grow() {
    cap *= 2;
    cap_rows *= 2;
    carve();
  }
  void carve() {
    mem.resize(static_cast<size_t>(plane_work_bytes(cap, cap_rows, cap_m, width) / 8));
    w = plane_work_carve(mem.data(), cap, cap_rows, cap_m, width);
  }
};

void cut_parent(const PlaneMesh& M, int64_t p, Scratch& sc) {
  sc.fit(M.off[p + 1] - M.off[p], M.width);
  while (!plane_cut_parent(M, p, sc.w)) sc.grow();
}

}  // namespace

void plane_cut_count(const PlaneMesh& M, int64_t* counts) {
#pragma omp parallel
  {
    Scratch sc;
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < M.n_parents; ++p) {
      cut_parent(M, p, sc);
      counts[3 * p] = sc.w.n_poly;
      counts[3 * p + 1] = sc.w.n_corners;
      counts[3 * p + 2] = sc.w.n_new;
    }
  }
}

void plane_cut_emit(const PlaneMesh& M, const int64_t* offsets, int64_t* out_sizes,
                    int64_t* out_corners, int64_t* out_parent, double* out_st) {
#pragma omp parallel
  {
    Scratch sc;
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < M.n_parents; ++p) {
      cut_parent(M, p, sc);
      plane_emit_parent(M, p, sc.w, offsets, out_sizes, out_corners, out_parent, out_st);
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

// CPU drivers of the 2-D slice kernels: OpenMP loops over cpp/include/fastmem/plane.hpp.
#include "plane_drivers.hpp"

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

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
  void grow() {  // by 4: a parent that outgrows the scratch is cut again from the start
    cap *= 4;
    cap_rows *= 4;
    carve();
  }
  void carve() {
    mem.resize(static_cast<size_t>(plane_work_bytes(cap, cap_rows, cap_m, width) / 8));
    w = plane_work_carve(mem.data(), cap, cap_rows, cap_m, width);
  }
};

// The calling thread's scratch, kept from call to call (OpenMP's workers live on): a
// fresh one would be grown again on every call, each growth cutting its parent again from
// the start, and its fresh pages faulted in (costly on a VM). Released when it holds more
// than kPlaneKeepBytes after a cut (a slice that needed it all).

Scratch& thread_scratch() {
  static thread_local Scratch sc;
  return sc;
}

void release_if_large(Scratch& sc) {
  if (sc.mem.capacity() * sizeof(double) > kPlaneKeepBytes) sc = Scratch{};
}

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

// Parent p's cut (w) into this thread's part, and where it lies there (entry i = p - lo of
// the range's where and offsets).
static void keep_parent(const PlaneMesh& M, int64_t p, int64_t i, const PlaneCutWork& w,
                        int tid, PlaneCut::Part& part, PlaneCut& out) {
  const int64_t m = M.off[p + 1] - M.off[p];
  const int64_t* gid = M.corners + M.off[p];
  int64_t* at = out.where.data() + 4 * i;
  at[0] = tid;
  at[1] = static_cast<int64_t>(part.sizes.size());
  at[2] = static_cast<int64_t>(part.corners.size());
  at[3] = static_cast<int64_t>(part.st.size()) / 2;
  for (int64_t q = 0; q < w.n_poly; ++q) part.sizes.push_back(w.poly_off[q + 1] - w.poly_off[q]);
  // a corner of the parent by its id, new vertex i as -1 - i (numbered on gathering)
  for (int64_t k = 0; k < w.n_corners; ++k) {
    const int64_t v = w.poly[k];
    part.corners.push_back(v < m ? gid[v] : -1 - (v - m));
  }
  for (int64_t i = 0; i < w.n_new; ++i) {
    part.st.push_back(w.s[i]);
    part.st.push_back(w.t[i]);
  }
  int64_t* c = out.offsets.data() + 3 * (i + 1);
  c[0] = w.n_poly;
  c[1] = w.n_corners;
  c[2] = w.n_new;
}

void plane_cut(const PlaneMesh& M, PlaneCut& out, int64_t lo, int64_t hi) {
  const int64_t n = hi - lo;
#ifdef _OPENMP
  const int n_threads = omp_get_max_threads();
#else
  const int n_threads = 1;
#endif
  // the parts keep their capacity from the last call (PlaneCut::release_if_large)
  out.threads.resize(static_cast<size_t>(n_threads));
  for (PlaneCut::Part& part : out.threads) {
    part.sizes.clear();
    part.corners.clear();
    part.st.clear();
  }
  out.where.assign(static_cast<size_t>(4 * n), 0);
  out.offsets.assign(static_cast<size_t>(3 * (n + 1)), 0);
  // an allocation that fails inside the team is reported after it (an exception must not
  // leave an OpenMP region): the binding raises MemoryError
  std::atomic<bool> out_of_memory{false};
  // a team only when each thread gets a few chunks of parents: waking a team for a
  // handful (the first layer has one parent) costs more than it gives, and its idle
  // members then spin-wait against the caller's serial work
#pragma omp parallel num_threads(n_threads) if (n > 64)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    PlaneCut::Part& part = out.threads[static_cast<size_t>(tid)];
    Scratch& sc = thread_scratch();
#pragma omp for schedule(dynamic, 16) nowait
    for (int64_t i = 0; i < n; ++i) {
      if (out_of_memory.load(std::memory_order_relaxed)) continue;
      try {
        cut_parent(M, lo + i, sc);
        keep_parent(M, lo + i, i, sc.w, tid, part, out);
      } catch (const std::bad_alloc&) {
        out_of_memory.store(true, std::memory_order_relaxed);
      }
    }
    release_if_large(sc);
  }
  if (out_of_memory.load()) {
    out.release_if_large(0);
    throw std::bad_alloc();
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = 0; e < 3; ++e) out.offsets[3 * (i + 1) + e] += out.offsets[3 * i + e];
}

void PlaneCut::release_if_large(size_t keep_bytes) {
  size_t bytes = 8 * (where.capacity() + offsets.capacity());
  for (const Part& part : threads)
    bytes += 8 * (part.sizes.capacity() + part.corners.capacity() + part.st.capacity());
  if (bytes > keep_bytes) *this = PlaneCut{};
}

void plane_cut_gather(const PlaneMesh& M, const PlaneCut& cut, int64_t lo, int64_t hi,
                      int64_t* out_sizes, int64_t* out_corners, int64_t* out_parent,
                      double* out_st) {
  const int64_t n = hi - lo;
#pragma omp parallel for schedule(static) if (n > 64)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = lo + i;
    const int64_t* at = cut.where.data() + 4 * i;
    const PlaneCut::Part& part = cut.threads[static_cast<size_t>(at[0])];
    const int64_t* o = cut.offsets.data() + 3 * i;
    const int64_t n_poly = o[3] - o[0], n_corners = o[4] - o[1], n_new = o[5] - o[2];
    for (int64_t q = 0; q < n_poly; ++q) {
      out_sizes[o[0] + q] = part.sizes[static_cast<size_t>(at[1] + q)];
      out_parent[o[0] + q] = p;
    }
    const int64_t base = M.n_vertices + o[2];
    for (int64_t k = 0; k < n_corners; ++k) {
      const int64_t c = part.corners[static_cast<size_t>(at[2] + k)];
      out_corners[o[1] + k] = c >= 0 ? c : base + (-1 - c);
    }
    for (int64_t i = 0; i < 2 * n_new; ++i)
      out_st[2 * o[2] + i] = part.st[static_cast<size_t>(2 * at[3] + i)];
  }
}

void plane_children(const double* maps, int64_t n_parents, int64_t width, const int64_t* parent,
                    const double* st, int64_t n, int kind, double slope, uint64_t* codes,
                    int64_t n_words, int64_t bit_offset, double* h) {
#pragma omp parallel if (n > 256)
  {
    std::vector<double> zrow(width);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      plane_child_row(maps, n_parents, width, parent[i], st[2 * i], st[2 * i + 1], kind, slope,
                      codes + i * n_words, bit_offset, h == nullptr ? nullptr : h + i * width,
                      n * width, zrow.data());
  }
}

void plane_decide(const double* L, int64_t n, int64_t n_classes, const double* S,
                  const double* T, const int64_t* corners, const int64_t* off,
                  const double* st, double tol, int64_t* top, uint8_t* flags) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; ++i)
    plane_decide_region(L + i * 3 * n_classes, n_classes, corners + off[i], off[i + 1] - off[i],
                        S, T, st[2 * i], st[2 * i + 1], tol, top + i, flags + i);
}

}  // namespace fastmem::cpu

// CUDA drivers of the 2-D slice kernels: one thread per parent (its cut on its own slice
// of a scratch buffer, plane_cut_parent) or per child (plane_child_row).
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>

#include "fastmem/plane.hpp"
#include "plane_drivers.hpp"
#include "runtime.hpp"
#include "stream.cuh"

namespace fastmem::gpu {

namespace {

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DeviceMemory = std::unique_ptr<void, DeviceFree>;

// Device memory of `bytes` into mem (nothing when it is already that large).
int reserve(DeviceMemory& mem, int64_t& have, int64_t bytes) {
  if (bytes <= have) return 0;
  mem.reset();
  have = 0;
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  mem.reset(p);
  have = bytes;
  return 0;
}

// The scratch budget of one batch of parents (the cut needs a few hundred KiB a parent
// in common cases): the batch shrinks as the scratch grows, to 32 parents at least.
constexpr int64_t kWorkBudget = int64_t(256) << 20;

__global__ void plane_cut_kernel(PlaneMesh M, int64_t p0, int64_t n, char* work,
                                 int64_t work_bytes, int64_t cap, int64_t cap_rows,
                                 int64_t cap_m, int64_t* counts, const int64_t* offsets,
                                 int64_t* out_sizes, int64_t* out_corners, int64_t* out_parent,
                                 double* out_st, int* overflow) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t p = p0 + i;
  PlaneCutWork w = plane_work_carve(work + i * work_bytes, cap, cap_rows, cap_m, M.width);
  if (!plane_cut_parent(M, p, w)) {
    *overflow = 1;
    return;
  }
  if (counts != nullptr) {
    counts[3 * p] = w.n_poly;
    counts[3 * p + 1] = w.n_corners;
    counts[3 * p + 2] = w.n_new;
  } else {
    plane_emit_parent(M, p, w, offsets, out_sizes, out_corners, out_parent, out_st);
  }
}

// Count (counts not null) or emit, batch by batch of parents; a batch in which a parent
// outgrew its scratch is cut again with twice the room (the cut is deterministic).
int plane_cut(const PlaneMesh& M, int64_t* counts, const int64_t* offsets, int64_t* out_sizes,
              int64_t* out_corners, int64_t* out_parent, double* out_st) {
  if (M.n_parents == 0) return 0;
  cudaStream_t stream = call_stream();
  int64_t cap = 64, cap_rows = 16, cap_m = 16;
  DeviceMemory work, flag;
  int64_t work_have = 0, flag_have = 0;
  if (int err = reserve(flag, flag_have, sizeof(int))) return err;
  int* d_flag = static_cast<int*>(flag.get());
  int64_t p0 = 0;
  while (p0 < M.n_parents) {
    const int64_t bytes = plane_work_bytes(cap, cap_rows, cap_m, M.width);
    const int64_t batch = std::min(M.n_parents - p0, std::max<int64_t>(32, kWorkBudget / bytes));
    if (int err = reserve(work, work_have, batch * bytes)) return err;
    if (cudaError_t err = cudaMemsetAsync(d_flag, 0, sizeof(int), stream))
      return static_cast<int>(err);
    const int blocks = static_cast<int>((batch + kThreads - 1) / kThreads);
    plane_cut_kernel<<<blocks, kThreads, 0, stream>>>(
        M, p0, batch, static_cast<char*>(work.get()), bytes, cap, cap_rows, cap_m, counts,
        offsets, out_sizes, out_corners, out_parent, out_st, d_flag);
    if (int err = finish()) return err;
    int h_flag = 0;
    if (cudaError_t err =
            cudaMemcpyAsync(&h_flag, d_flag, sizeof(int), cudaMemcpyDeviceToHost, stream))
      return static_cast<int>(err);
    if (cudaError_t err = cudaStreamSynchronize(stream)) return static_cast<int>(err);
    if (h_flag != 0) {  // some parent did not fit: the same batch again, with more room
      cap *= 2;
      cap_rows *= 2;
      cap_m *= 2;
      continue;
    }
    p0 += batch;
  }
  return 0;
}

__global__ void plane_children_kernel(const double* maps, int64_t n_parents, int64_t width,
                                      const int64_t* parent, const double* st, int64_t n,
                                      int kind, double slope, uint64_t* codes, int64_t n_words,
                                      int64_t bit_offset, double* h, double* zrows) {
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  double* zrow = zrows + tid * width;
  for (int64_t i = tid; i < n; i += int64_t(gridDim.x) * blockDim.x)
    plane_child_row(maps, n_parents, width, parent[i], st[2 * i], st[2 * i + 1], kind, slope,
                    codes + i * n_words, bit_offset, h == nullptr ? nullptr : h + i * width,
                    n * width, zrow);
}

}  // namespace

int plane_cut_count(const PlaneMesh& mesh, int64_t* counts) {
  return plane_cut(mesh, counts, nullptr, nullptr, nullptr, nullptr, nullptr);
}

int plane_cut_emit(const PlaneMesh& mesh, const int64_t* offsets, int64_t* out_sizes,
                   int64_t* out_corners, int64_t* out_parent, double* out_st) {
  return plane_cut(mesh, nullptr, offsets, out_sizes, out_corners, out_parent, out_st);
}

int plane_children(const double* maps, int64_t n_parents, int64_t width, const int64_t* parent,
                   const double* st, int64_t n, int kind, double slope, uint64_t* codes,
                   int64_t n_words, int64_t bit_offset, double* h) {
  if (n == 0) return 0;
  // one row of scratch per thread of the grid (at most ~64 MiB of them)
  const int64_t row_bytes = 8 * std::max<int64_t>(width, 1);
  const int64_t most = std::max<int64_t>(1, (int64_t(64) << 20) / (row_bytes * kThreads));
  const int blocks = static_cast<int>(std::min<int64_t>(blocks_for(n), most));
  DeviceMemory zrows;
  int64_t have = 0;
  if (int err = reserve(zrows, have, int64_t(blocks) * kThreads * row_bytes)) return err;
  plane_children_kernel<<<blocks, kThreads, 0, call_stream()>>>(
      maps, n_parents, width, parent, st, n, kind, slope, codes, n_words, bit_offset, h,
      static_cast<double*>(zrows.get()));
  const int err = finish();
  // the scratch is freed on return: cudaFree waits for the kernel that uses it
  return err;
}

}  // namespace fastmem::gpu

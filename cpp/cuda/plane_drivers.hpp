// CUDA drivers of the 2-D slice kernels (cpp/include/fastmem/plane.hpp): the same cut and
// child rows as the CPU path, one CUDA thread per parent polygon / per child.
// Every function returns a cudaError_t value as int (0 = success) so that this header
// needs no CUDA include and the bindings compile with the host compiler.
#pragma once

#include <cstdint>

#include "fastmem/plane.hpp"

namespace fastmem::gpu {

// counts (n_parents x 3, device): per parent, its polygons, their corners in all and its
// new vertices. Every array of the mesh lives on the device. Waits for the stream (it
// reads back whether a parent outgrew its scratch, and then cuts again with more).
int plane_cut_count(const PlaneMesh& mesh, int64_t* counts);

// The cut mesh from offsets (n_parents + 1 x 3, device: exclusive prefix sums of the
// counts), as fastmem::cpu::plane_cut_emit. Waits for the stream, as plane_cut_count.
int plane_cut_emit(const PlaneMesh& mesh, const int64_t* offsets, int64_t* out_sizes,
                   int64_t* out_corners, int64_t* out_parent, double* out_st);

// Per child i (parent[i], interior point st[i]): the layer's bits into codes and, with h
// not null, the post-activation maps (3 x n x width), as fastmem::cpu::plane_children.
int plane_children(const double* maps, int64_t n_parents, int64_t width, const int64_t* parent,
                   const double* st, int64_t n, int kind, double slope, uint64_t* codes,
                   int64_t n_words, int64_t bit_offset, double* h);

}  // namespace fastmem::gpu

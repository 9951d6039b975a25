// CUDA drivers of the information kernels (math in fastmem/information.hpp).
// Every function returns a cudaError_t value as int (0 = success); counts are written
// to device memory (one int64) so that results stay on the device.
#pragma once

#include <cstdint>

#include "fastmem/information.hpp"

namespace fastmem::gpu {

template <class T>
int bin_keys(const T* a, int64_t rows, int64_t width, BinSpec s, int64_t rows_per_segment,
             uint64_t* key1, uint64_t* key2, uint8_t* occ, int64_t* bad);

template <class T>
int bin_rows_equal(const T* a, int64_t width, BinSpec s, const int64_t* rows_a,
                   const int64_t* rows_b, int64_t pairs, int64_t* differ);

template <class T>
int bin_codes(const T* a, int64_t rows, int64_t width, BinSpec s, int64_t* out);

// Entropy sums of every segment (bin_plane in fastmem/information.hpp), one thread per
// segment. seg and widths are host arrays: they are copied into scratch[0, 2 segments),
// and each segment's scratch follows (plane_scratch_words(rows, max words) words each).
// The number of non-finite values into bad[0] (device int64).
template <class T>
int bin_plane(const T* const* seg, const int64_t* widths, int64_t segments, int64_t rows,
              int kind, const double* edges, int64_t n_edges, const int64_t* edge_offsets,
              const double* lo, const double* scale, int64_t n_codes, const int64_t* labels,
              int64_t n_labels, const int64_t* inputs, int64_t n_inputs, const double* clog,
              int64_t* scratch, double* out, int64_t* bad);

int kde_tile(double* tile, int64_t rows, int64_t cols, const double* row_norms,
             const double* col_norms, const int64_t* row_labels, const int64_t* col_labels,
             double scale, int64_t row_offset, int64_t col_offset, double* row_all,
             double* row_cls, double* col_all, double* col_cls, bool columns);

// Entries the KDE screening bound cannot prove far into count[0] (device int64).
int kde_screen(const float* tile, int64_t rows, int64_t cols, const double* row_norms,
               const double* col_norms, const double* row_lengths, const double* col_lengths,
               double err, double cutoff, int64_t row_offset, int64_t col_offset, int64_t* count);

// Kernel values of the entries the screen cannot prove far (exact float64 dot products).
int kde_sparse_tile(const float* tile, const double* a, const double* b, int64_t rows,
                    int64_t cols, int64_t d, const double* row_norms, const double* col_norms,
                    const double* row_lengths, const double* col_lengths,
                    const int64_t* row_labels, const int64_t* col_labels, double err,
                    double cutoff, double scale, int64_t row_offset, int64_t col_offset,
                    double* row_all, double* row_cls, double* col_all, double* col_cls,
                    bool columns);

}  // namespace fastmem::gpu

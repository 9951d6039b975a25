// OpenMP drivers of the information kernels (math in fastmem/information.hpp).
#pragma once

#include <cstdint>

#include "fastmem/information.hpp"

namespace fastmem::cpu {

// Keys of every row; occ (n_segments * width * n_codes flags) may be nullptr.
// Returns the number of non-finite values.
template <class T>
int64_t bin_keys(const T* a, int64_t rows, int64_t width, const BinSpec& s,
                 int64_t rows_per_segment, uint64_t* key1, uint64_t* key2, uint8_t* occ);

// Number of pairs (rows_a[p], rows_b[p]) whose codes differ.
template <class T>
int64_t bin_rows_equal(const T* a, int64_t width, const BinSpec& s, const int64_t* rows_a,
                       const int64_t* rows_b, int64_t pairs);

template <class T>
void bin_codes(const T* a, int64_t rows, int64_t width, const BinSpec& s, int64_t* out);

// Entropy sums of every segment (fastmem/information.hpp, bin_plane): segment g has
// `rows` rows of widths[g] values at seg[g], edges from edges + edge_offsets[g] (n_edges
// of them), lo[g] and scale[g]; out[3 g .. 3 g + 3). Returns the number of non-finite
// values. inputs may be nullptr.
template <class T>
int64_t bin_plane(const T* const* seg, const int64_t* widths, int64_t segments, int64_t rows,
                  int kind, const double* edges, int64_t n_edges, const int64_t* edge_offsets,
                  const double* lo, const double* scale, int64_t n_codes, const int64_t* labels,
                  int64_t n_labels, const int64_t* inputs, int64_t n_inputs, const double* clog,
                  double* out);

// See kde_tile in information_bind.cpp.
void kde_tile(double* tile, int64_t rows, int64_t cols, const double* row_norms,
              const double* col_norms, const int64_t* row_labels, const int64_t* col_labels,
              double scale, int64_t row_offset, int64_t col_offset, double* row_all,
              double* row_cls, double* col_all, double* col_cls, bool columns);

// See kde_screen in information_bind.cpp: entries whose distance the bound cannot prove
// above the cutoff (the global diagonal excluded).
int64_t kde_screen(const float* tile, int64_t rows, int64_t cols, const double* row_norms,
                   const double* col_norms, const double* row_lengths, const double* col_lengths,
                   double err, double cutoff, int64_t row_offset, int64_t col_offset);

// See kde_sparse_tile in information_bind.cpp: the kernel values of the entries the
// screen cannot prove far, from exact float64 dot products; row (and column) sums.
void kde_sparse_tile(const float* tile, const double* a, const double* b, int64_t rows,
                     int64_t cols, int64_t d, const double* row_norms, const double* col_norms,
                     const double* row_lengths, const double* col_lengths,
                     const int64_t* row_labels, const int64_t* col_labels, double err,
                     double cutoff, double scale, int64_t row_offset, int64_t col_offset,
                     double* row_all, double* row_cls, double* col_all, double* col_cls,
                     bool columns);

}  // namespace fastmem::cpu

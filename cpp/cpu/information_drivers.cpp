#include "information_drivers.hpp"

#include <algorithm>

namespace fastmem::cpu {

template <class T>
int64_t bin_keys(const T* a, int64_t rows, int64_t width, const BinSpec& s,
                 int64_t rows_per_segment, uint64_t* key1, uint64_t* key2, uint8_t* occ) {
  int64_t bad = 0;
  const int64_t cells = width * s.n_codes;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t seg = i / rows_per_segment;
    bad += bin_row_keys(a + i * width, width, s, static_cast<uint64_t>(seg), key1 + i, key2 + i,
                        occ ? occ + seg * cells : nullptr);
  }
  return bad;
}

template <class T>
int64_t bin_rows_equal(const T* a, int64_t width, const BinSpec& s, const int64_t* rows_a,
                       const int64_t* rows_b, int64_t pairs) {
  int64_t differ = 0;
#pragma omp parallel for schedule(static) reduction(+ : differ)
  for (int64_t p = 0; p < pairs; ++p)
    differ += bin_rows_differ(a + rows_a[p] * width, a + rows_b[p] * width, width, s);
  return differ;
}

template <class T>
void bin_codes(const T* a, int64_t rows, int64_t width, const BinSpec& s, int64_t* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < width; ++j) out[i * width + j] = bin_code(a[i * width + j], s);
}

void kde_tile(double* tile, int64_t rows, int64_t cols, const double* row_norms,
              const double* col_norms, const int64_t* row_labels, const int64_t* col_labels,
              double scale, int64_t row_offset, int64_t col_offset, double* row_all,
              double* row_cls, double* col_all, double* col_cls, bool columns) {
  // Rows: kernel values written back into the tile, sums in column order.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    double* t = tile + i * cols;
    double all = 0.0, cls = 0.0;
    const int64_t yi = row_labels[i];
    for (int64_t j = 0; j < cols; ++j) {
      const double e =
          kde_entry(t[j], row_norms[i], col_norms[j], scale, row_offset + i == col_offset + j);
      t[j] = e;
      all += e;
      cls += col_labels[j] == yi ? e : 0.0;
    }
    row_all[i] += all;
    row_cls[i] += cls;
  }
  if (!columns) return;
  // Columns (the mirrored tile): sums in row order, blocks of columns per thread.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kBlock, j1 = std::min(cols, j0 + kBlock);
    double all[kBlock] = {}, cls[kBlock] = {};
    for (int64_t i = 0; i < rows; ++i) {
      const double* t = tile + i * cols;
      const int64_t yi = row_labels[i];
      for (int64_t j = j0; j < j1; ++j) {
        all[j - j0] += t[j];
        cls[j - j0] += col_labels[j] == yi ? t[j] : 0.0;
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      col_all[j] += all[j - j0];
      col_cls[j] += cls[j - j0];
    }
  }
}

#define FASTMEM_INFO_INSTANTIATE(T)                                                        \
  template int64_t bin_keys<T>(const T*, int64_t, int64_t, const BinSpec&, int64_t,        \
                               uint64_t*, uint64_t*, uint8_t*);                            \
  template int64_t bin_rows_equal<T>(const T*, int64_t, const BinSpec&, const int64_t*,    \
                                     const int64_t*, int64_t);                             \
  template void bin_codes<T>(const T*, int64_t, int64_t, const BinSpec&, int64_t*);

FASTMEM_INFO_INSTANTIATE(float)
FASTMEM_INFO_INSTANTIATE(double)

}  // namespace fastmem::cpu

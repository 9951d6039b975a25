#include "information_drivers.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fastmem::cpu {

namespace {

// Uniform bins with byte codes: the common case of the stress workload. The codes of a
// block of the row are computed by a branch-free, vectorisable loop, then folded eight
// bytes per word: the same keys as bin_row_keys with bits = 8.
template <class T>
int64_t uniform_byte_keys(const T* a, int64_t rows, int64_t width, const BinSpec& s,
                          int64_t rows_per_segment, uint64_t* key1, uint64_t* key2,
                          uint8_t* occ) {
  constexpr int64_t kBlock = 256;
  const int64_t cells = width * s.n_codes;
  const int64_t n_seg = rows / rows_per_segment;
  const double top = static_cast<double>(s.n_codes - 1);
  int64_t bad = 0;
#pragma omp parallel reduction(+ : bad)
  {
    // Thread-private occupancy: with at most 64 codes one bit mask per (segment, unit),
    // else one flag per cell; OR-ed into the shared flags at the end.
    const bool masks = s.n_codes <= 64;
    std::vector<uint64_t> mask(occ && masks ? static_cast<size_t>(n_seg * width) : 0);
    std::vector<uint8_t> local(occ && !masks ? static_cast<size_t>(n_seg * cells) : 0);
    alignas(64) uint8_t buf[kBlock];
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows; ++i) {
      const T* row = a + i * width;
      const int64_t seg = i / rows_per_segment;
      uint64_t h1 = mix64(kKey1IV ^ static_cast<uint64_t>(seg));
      uint64_t h2 = fmix64(kKey2IV ^ static_cast<uint64_t>(seg));
      for (int64_t j0 = 0; j0 < width; j0 += kBlock) {
        const int64_t m = std::min(kBlock, width - j0);
        int64_t nonfinite = 0;
        for (int64_t q = 0; q < m; ++q) {
          const double v = static_cast<double>(row[j0 + q]);
          nonfinite += (v - v == 0.0) ? 0 : 1;
          // Clamping before truncating equals floor-then-clamp (trunc = floor on
          // t >= 0) and, unlike std::floor, vectorises; NaN -> 0 keeps the cast defined.
          double t = (v - s.lo) * s.scale;
          t = t >= 0.0 ? t : 0.0;
          t = t > top ? top : t;
          buf[q] = static_cast<uint8_t>(static_cast<int32_t>(t));
        }
        if (nonfinite) {
          bad += nonfinite;
          for (int64_t q = 0; q < m; ++q)
            if (not_finite(row[j0 + q])) buf[q] = 0;
        }
        for (int64_t q = m; q < ((m + 7) & ~int64_t(7)); ++q) buf[q] = 0;
        if (occ && masks) {
          uint64_t* o = mask.data() + seg * width + j0;
          for (int64_t q = 0; q < m; ++q) o[q] |= uint64_t(1) << buf[q];
        } else if (occ) {
          uint8_t* o = local.data() + seg * cells + j0 * s.n_codes;
          for (int64_t q = 0; q < m; ++q) o[q * s.n_codes + buf[q]] = 1;
        }
        for (int64_t w = 0; w < m; w += 8) {
          uint64_t word = 0;
          for (int b = 0; b < 8; ++b) word |= static_cast<uint64_t>(buf[w + b]) << (8 * b);
          h1 = mix64(h1 ^ word);
          h2 = fmix64((h2 ^ word) * kKey2Mul);
        }
      }
      key1[i] = mix64(h1 ^ static_cast<uint64_t>(width));
      key2[i] = fmix64(h2 ^ static_cast<uint64_t>(width));
    }
    if (occ) {
#pragma omp critical(fastmem_information_occupancy)
      {
        for (size_t c = 0; c < local.size(); ++c) occ[c] |= local[c];
        for (size_t u = 0; u < mask.size(); ++u)
          for (int64_t c = 0; c < s.n_codes; ++c)
            if ((mask[u] >> c) & 1) occ[static_cast<int64_t>(u) * s.n_codes + c] = 1;
      }
    }
  }
  return bad;
}

}  // namespace

template <class T>
int64_t bin_keys(const T* a, int64_t rows, int64_t width, const BinSpec& s,
                 int64_t rows_per_segment, uint64_t* key1, uint64_t* key2, uint8_t* occ) {
  if (s.kind == kBinUniform && s.n_codes <= 256)
    return uniform_byte_keys(a, rows, width, s, rows_per_segment, key1, key2, occ);
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

int64_t kde_screen(const float* tile, int64_t rows, int64_t cols, const double* row_norms,
                   const double* col_norms, const double* row_lengths, const double* col_lengths,
                   double err, double cutoff, int64_t row_offset, int64_t col_offset) {
  // One thread on purpose: this pass is ~20x cheaper than the float32 GEMM before it,
  // whose BLAS workers keep spinning on the other cores afterwards; a parallel region
  // would wait for cores they hold (measured: 0.4 ms alone, 5-15 ms as an OpenMP team).
  int64_t near = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const float* t = tile + i * cols;
    const double ni = row_norms[i], li = row_lengths[i];
    int64_t c = 0;
    for (int64_t j = 0; j < cols; ++j)
      c += kde_far(t[j], ni, col_norms[j], li, col_lengths[j], err, cutoff) ? 0 : 1;
    // the global diagonal (d = 0) is always near and always computed as exactly 1
    const int64_t jd = row_offset + i - col_offset;
    if (jd >= 0 && jd < cols && !kde_far(t[jd], ni, col_norms[jd], li, col_lengths[jd], err, cutoff))
      --c;
    near += c;
  }
  return near;
}

void kde_sparse_tile(const float* tile, const double* a, const double* b, int64_t rows,
                     int64_t cols, int64_t d, const double* row_norms, const double* col_norms,
                     const double* row_lengths, const double* col_lengths,
                     const int64_t* row_labels, const int64_t* col_labels, double err,
                     double cutoff, double scale, int64_t row_offset, int64_t col_offset,
                     double* row_all, double* row_cls, double* col_all, double* col_cls,
                     bool columns) {
  // One thread, as kde_screen: few entries are near when this runs (Python sends denser
  // tiles to the GEMM path). Sums in row-major order, as the CUDA kernels.
  std::vector<double> c_all(columns ? static_cast<size_t>(cols) : 0);
  std::vector<double> c_cls(columns ? static_cast<size_t>(cols) : 0);
  for (int64_t i = 0; i < rows; ++i) {
    const float* t = tile + i * cols;
    const double ni = row_norms[i], li = row_lengths[i];
    const int64_t yi = row_labels[i];
    double all = 0.0, cls = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const bool diagonal = row_offset + i == col_offset + j;
      if (!diagonal && kde_far(t[j], ni, col_norms[j], li, col_lengths[j], err, cutoff)) continue;
      const double e = kde_entry(dot_rows(a + i * d, b + j * d, d), ni, col_norms[j], scale,
                                 diagonal);
      all += e;
      cls += col_labels[j] == yi ? e : 0.0;
      if (columns) {
        c_all[j] += e;
        c_cls[j] += col_labels[j] == yi ? e : 0.0;
      }
    }
    row_all[i] += all;
    row_cls[i] += cls;
  }
  for (size_t j = 0; j < c_all.size(); ++j) {
    col_all[j] += c_all[j];
    col_cls[j] += c_cls[j];
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

#include "information_drivers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dispatch.hpp"

namespace fastmem::cpu {

namespace {

// Byte codes (uniform bins: the common case of the stress workload; the edge kinds, as
// IDNNs' default binning, since a C++-vs-Numba scan: 4.9 -> 2.1 ms for 4000 x 128 float32 values
// on 30 edges, one thread). The codes of a block of the row are computed by a branch-free
// loop, then folded eight bytes per word: the same keys as bin_row_keys with bits = 8.
//
// The per-row work is compiled twice, for the build's baseline (x86-64-v2: 128-bit
// vectors) and for AVX2 (256-bit), and picked at run time: the code loop is most of the
// work, and on AVX2 machines the wider build is measured ~1.5x faster (60,000 x 1024
// float32 rows: 65 -> ~40 ms on 2 threads). Same IEEE operations either way (no FMA:
// -ffp-contract=off), so the same codes and keys.

struct ByteKeyRow {
  const BinSpec* s;
  double top;
  int64_t width, cells;
  // The codes seen, per (segment, unit): bit masks (32-bit up to 32 codes: GCC vectorises
  // the variable shifts of 32-bit lanes, not of 64-bit ones; 64-bit up to 64 codes), or
  // one flag per cell beyond 64 codes. Unused ones are nullptr.
  uint32_t* mask32;
  uint64_t* mask64;
  uint8_t* local;
};

constexpr int64_t kByteBlock = 256;

// The keys of one row (segment seg) into key1/key2; returns its non-finite values.
#define FASTMEM_BYTE_KEY_ROW(SUFFIX, ATTR)                                                  \
  template <class T>                                                                         \
  ATTR int64_t byte_key_row_##SUFFIX(const T* row, int64_t seg, const ByteKeyRow& k,         \
                                     uint64_t* key1, uint64_t* key2) {                       \
    alignas(64) uint8_t buf[kByteBlock];                                                     \
    const BinSpec& s = *k.s;                                                                 \
    const int64_t width = k.width;                                                           \
    int64_t bad = 0;                                                                         \
    uint64_t h1 = mix64(kKey1IV ^ static_cast<uint64_t>(seg));                               \
    uint64_t h2 = fmix64(kKey2IV ^ static_cast<uint64_t>(seg));                              \
    for (int64_t j0 = 0; j0 < width; j0 += kByteBlock) {                                     \
      const int64_t m = std::min(kByteBlock, width - j0);                                    \
      int64_t nonfinite = 0;                                                                 \
      if (s.kind == kBinUniform) {                                                           \
        for (int64_t q = 0; q < m; ++q) {                                                    \
          const double v = static_cast<double>(row[j0 + q]);                                 \
          nonfinite += (v - v == 0.0) ? 0 : 1;                                               \
          /* Clamping before truncating equals floor-then-clamp (trunc = floor on t >= 0) */ \
          /* and, unlike std::floor, vectorises; NaN -> 0 keeps the cast defined.         */ \
          double t = (v - s.lo) * s.scale;                                                   \
          t = t >= 0.0 ? t : 0.0;                                                            \
          t = t > k.top ? k.top : t;                                                         \
          buf[q] = static_cast<uint8_t>(static_cast<int32_t>(t));                            \
        }                                                                                    \
      } else {                                                                               \
        /* Edge kinds: count_le's halvings, each over the whole block (the same compares */ \
        /* per value, sorted edges or not; the values' searches interleave instead of   */ \
        /* each waiting on its own chain of dependent loads).                            */ \
        alignas(64) double v[kByteBlock];                                                    \
        alignas(64) int64_t base[kByteBlock];                                                \
        for (int64_t q = 0; q < m; ++q) {                                                    \
          v[q] = static_cast<double>(row[j0 + q]);                                           \
          nonfinite += (v[q] - v[q] == 0.0) ? 0 : 1;                                         \
          base[q] = 0;                                                                       \
        }                                                                                    \
        for (int64_t len = s.n_edges; len > 1;) {                                            \
          const int64_t half = len >> 1;                                                     \
          for (int64_t q = 0; q < m; ++q)                                                    \
            base[q] = s.edges[base[q] + half] <= v[q] ? base[q] + half : base[q];            \
          len -= half;                                                                       \
        }                                                                                    \
        const bool wrap = s.kind == kBinEdgesWrap;                                           \
        for (int64_t q = 0; q < m; ++q) {                                                    \
          const int64_t c = base[q] + (s.edges[base[q]] <= v[q] ? 1 : 0);                    \
          buf[q] = static_cast<uint8_t>(wrap ? (c > 0 ? c - 1 : s.n_edges - 1) : c);         \
        }                                                                                    \
      }                                                                                      \
      if (nonfinite) {                                                                       \
        bad += nonfinite;                                                                    \
        for (int64_t q = 0; q < m; ++q)                                                      \
          if (not_finite(row[j0 + q])) buf[q] = 0;                                           \
      }                                                                                      \
      for (int64_t q = m; q < ((m + 7) & ~int64_t(7)); ++q) buf[q] = 0;                      \
      if (k.mask32) {                                                                        \
        uint32_t* __restrict o = k.mask32 + seg * width + j0;                                \
        for (int64_t q = 0; q < m; ++q) o[q] |= uint32_t(1) << buf[q];                       \
      } else if (k.mask64) {                                                                 \
        uint64_t* o = k.mask64 + seg * width + j0;                                           \
        for (int64_t q = 0; q < m; ++q) o[q] |= uint64_t(1) << buf[q];                       \
      } else if (k.local) {                                                                  \
        uint8_t* o = k.local + seg * k.cells + j0 * s.n_codes;                               \
        for (int64_t q = 0; q < m; ++q) o[q * s.n_codes + buf[q]] = 1;                       \
      }                                                                                      \
      for (int64_t w = 0; w < m; w += 8) {                                                   \
        const uint64_t word = load_le64(buf + w);                                            \
        h1 = mix64(h1 ^ word);                                                               \
        h2 = fmix64((h2 ^ word) * kKey2Mul);                                                 \
      }                                                                                      \
    }                                                                                        \
    *key1 = mix64(h1 ^ static_cast<uint64_t>(width));                                        \
    *key2 = fmix64(h2 ^ static_cast<uint64_t>(width));                                       \
    return bad;                                                                              \
  }

// Eight code bytes as one little-endian word (byte b at bits 8b), on any host.
inline uint64_t load_le64(const uint8_t* p) {
  uint64_t word = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  std::memcpy(&word, p, 8);
#else
  for (int b = 0; b < 8; ++b) word |= static_cast<uint64_t>(p[b]) << (8 * b);
#endif
  return word;
}

FASTMEM_BYTE_KEY_ROW(generic, )
#ifdef FASTMEM_X86_DISPATCH
FASTMEM_BYTE_KEY_ROW(avx2, __attribute__((target("avx2"))))
#endif
#undef FASTMEM_BYTE_KEY_ROW

template <class T>
int64_t uniform_byte_keys(const T* a, int64_t rows, int64_t width, const BinSpec& s,
                          int64_t rows_per_segment, uint64_t* key1, uint64_t* key2,
                          uint8_t* occ) {
  const int64_t cells = width * s.n_codes;
  const int64_t n_seg = rows / rows_per_segment;
  [[maybe_unused]] const bool avx2 = has_avx2();
  int64_t bad = 0;
#pragma omp parallel reduction(+ : bad)
  {
    // Thread-private occupancy (ByteKeyRow), OR-ed into the shared flags at the end.
    const int64_t n_masks = occ && s.n_codes <= 64 ? n_seg * width : 0;
    std::vector<uint32_t> mask32(s.n_codes <= 32 ? n_masks : 0);
    std::vector<uint64_t> mask64(s.n_codes > 32 ? n_masks : 0);
    std::vector<uint8_t> local(occ && s.n_codes > 64 ? static_cast<size_t>(n_seg * cells) : 0);
    const ByteKeyRow k{&s,
                       static_cast<double>(s.n_codes - 1),
                       width,
                       cells,
                       mask32.empty() ? nullptr : mask32.data(),
                       mask64.empty() ? nullptr : mask64.data(),
                       local.empty() ? nullptr : local.data()};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t seg = i / rows_per_segment;
#ifdef FASTMEM_X86_DISPATCH
      if (avx2) {
        bad += byte_key_row_avx2(a + i * width, seg, k, key1 + i, key2 + i);
        continue;
      }
#endif
      bad += byte_key_row_generic(a + i * width, seg, k, key1 + i, key2 + i);
    }
    if (occ) {
#pragma omp critical(fastmem_information_occupancy)
      {
        for (size_t c = 0; c < local.size(); ++c) occ[c] |= local[c];
        for (size_t u = 0; u < mask32.size(); ++u)
          for (int64_t c = 0; c < s.n_codes; ++c)
            if ((mask32[u] >> c) & 1) occ[static_cast<int64_t>(u) * s.n_codes + c] = 1;
        for (size_t u = 0; u < mask64.size(); ++u)
          for (int64_t c = 0; c < s.n_codes; ++c)
            if ((mask64[u] >> c) & 1) occ[static_cast<int64_t>(u) * s.n_codes + c] = 1;
      }
    }
  }
  (void)avx2;
  return bad;
}

}  // namespace

template <class T>
int64_t bin_keys(const T* a, int64_t rows, int64_t width, const BinSpec& s,
                 int64_t rows_per_segment, uint64_t* key1, uint64_t* key2, uint8_t* occ) {
  // Byte codes: uniform bins up to 256 codes, edge kinds whose every code (up to n_edges - 1
  // with the wrap, n_edges without) is below n_codes <= 256.
  const int64_t top_code = s.kind == kBinEdgesWrap ? s.n_edges - 1 : s.n_edges;
  if ((s.kind == kBinUniform || ((s.kind == kBinEdgesWrap || s.kind == kBinEdges) &&
                                 s.n_edges >= 1 && top_code < s.n_codes)) &&
      s.n_codes <= 256)
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
int64_t bin_plane(const T* const* seg, const int64_t* widths, int64_t segments, int64_t rows,
                  int kind, const double* edges, int64_t n_edges, const int64_t* edge_offsets,
                  const double* lo, const double* scale, int64_t n_codes, const int64_t* labels,
                  int64_t n_labels, const int64_t* inputs, int64_t n_inputs, const double* clog,
                  double* out) {
  const BinSpec base{kind, edges, n_edges, 0.0, 0.0, n_codes};
  int64_t max_words = 1;
  for (int64_t g = 0; g < segments; ++g)
    max_words = std::max(max_words, plane_words(base, widths[g]));
  int64_t bad = 0;
  // Segments are independent: one per thread at a time, dynamically scheduled (a core
  // taken by another process delays one segment, not a thread's share), each grouped in
  // the thread's own scratch (a few hundred KiB for the IDNNs layers: cache-resident).
#pragma omp parallel reduction(+ : bad)
  {
    std::vector<int64_t> buf(static_cast<size_t>(plane_scratch_words(rows, max_words)));
    const PlaneScratch w = plane_scratch(buf.data(), rows, max_words);
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < segments; ++g) {
      BinSpec s = base;
      s.edges = edges + edge_offsets[g];
      s.lo = lo[g];
      s.scale = scale[g];
      bad += plane_segment(seg[g], rows, widths[g], s, labels, n_labels, inputs,
                           n_inputs, clog, w, out + 3 * g);
    }
  }
  return bad;
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

// kde_screen and kde_sparse_tile are compiled twice, for the build's baseline (x86-64-v2:
// two doubles a vector) and for AVX2 (four), and picked at run time (flatten: the bodies
// and the header's kde_far are inlined into each build). The bound is a chain of float64
// operations per entry, so the wider build is ~2x faster (1024 x 1024 tile, one thread:
// 0.66 -> 0.3 ms, Numba's 0.30 ms). Same IEEE operations either way (no FMA:
// -ffp-contract=off), so the same counts and sums, bit for bit.

namespace {

inline int64_t kde_screen_impl(const float* __restrict tile, int64_t rows, int64_t cols,
                               const double* __restrict row_norms,
                               const double* __restrict col_norms,
                               const double* __restrict row_lengths,
                               const double* __restrict col_lengths, double err, double cutoff,
                               int64_t row_offset, int64_t col_offset) {
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

// The near entries of a row are found 64 at a time by a branch-free (vectorised) pass of
// the bound into bytes, packed into one word, and visited in order by its set bits (few:
// Python sends denser tiles to the GEMM path); the sums run in the same order as a loop
// over every j with `if (far) continue;`.
inline void kde_sparse_tile_impl(const float* tile, const double* a, const double* b,
                                 int64_t rows, int64_t cols, int64_t d, const double* row_norms,
                                 const double* col_norms, const double* row_lengths,
                                 const double* col_lengths, const int64_t* row_labels,
                                 const int64_t* col_labels, double err, double cutoff,
                                 double scale, int64_t row_offset, int64_t col_offset,
                                 double* row_all, double* row_cls, double* c_all,
                                 double* c_cls, bool columns) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* t = tile + i * cols;
    const double ni = row_norms[i], li = row_lengths[i];
    const int64_t yi = row_labels[i];
    const int64_t jd = row_offset + i - col_offset;  // the global diagonal's column
    double all = 0.0, cls = 0.0;
    for (int64_t j0 = 0; j0 < cols; j0 += 64) {
      const int64_t nb = cols - j0 < 64 ? cols - j0 : 64;
      uint8_t flags[64];
      for (int64_t j = 0; j < nb; ++j)
        flags[j] = uint8_t(
            !kde_far(t[j0 + j], ni, col_norms[j0 + j], li, col_lengths[j0 + j], err, cutoff));
      if (jd >= j0 && jd < j0 + nb) flags[jd - j0] = 1;
      for (uint64_t bits = pack_flags64(flags, nb); bits != 0; bits &= bits - 1) {
        const int64_t j = j0 + __builtin_ctzll(bits);
        const bool diagonal = j == jd;
        const double e = kde_entry(dot_rows(a + i * d, b + j * d, d), ni, col_norms[j], scale,
                                   diagonal);
        all += e;
        cls += col_labels[j] == yi ? e : 0.0;
        if (columns) {
          c_all[j] += e;
          c_cls[j] += col_labels[j] == yi ? e : 0.0;
        }
      }
    }
    row_all[i] += all;
    row_cls[i] += cls;
  }
}

#define FASTMEM_KDE_BUILDS(SUFFIX, ATTR)                                                       \
  ATTR int64_t kde_screen_##SUFFIX(const float* tile, int64_t rows, int64_t cols,              \
                                   const double* rn, const double* cn, const double* rl,       \
                                   const double* cl, double err, double cutoff, int64_t ro,    \
                                   int64_t co) {                                               \
    return kde_screen_impl(tile, rows, cols, rn, cn, rl, cl, err, cutoff, ro, co);             \
  }                                                                                            \
  ATTR void kde_sparse_tile_##SUFFIX(                                                          \
      const float* tile, const double* a, const double* b, int64_t rows, int64_t cols,         \
      int64_t d, const double* rn, const double* cn, const double* rl, const double* cl,       \
      const int64_t* ry, const int64_t* cy, double err, double cutoff, double scale,           \
      int64_t ro, int64_t co, double* row_all, double* row_cls, double* c_all, double* c_cls,  \
      bool columns) {                                                                          \
    kde_sparse_tile_impl(tile, a, b, rows, cols, d, rn, cn, rl, cl, ry, cy, err, cutoff,       \
                         scale, ro, co, row_all, row_cls, c_all, c_cls, columns);              \
  }

FASTMEM_KDE_BUILDS(generic, __attribute__((flatten)))
#ifdef FASTMEM_X86_DISPATCH
FASTMEM_KDE_BUILDS(avx2, __attribute__((target("avx2"), flatten)))
#endif
#undef FASTMEM_KDE_BUILDS

}  // namespace

int64_t kde_screen(const float* tile, int64_t rows, int64_t cols, const double* row_norms,
                   const double* col_norms, const double* row_lengths, const double* col_lengths,
                   double err, double cutoff, int64_t row_offset, int64_t col_offset) {
  // One thread on purpose: this pass is ~20x cheaper than the float32 GEMM before it,
  // whose BLAS workers keep spinning on the other cores afterwards; a parallel region
  // would wait for cores they hold (measured: 0.4 ms alone, 5-15 ms as an OpenMP team).
#ifdef FASTMEM_X86_DISPATCH
  if (has_avx2())
    return kde_screen_avx2(tile, rows, cols, row_norms, col_norms, row_lengths, col_lengths, err,
                           cutoff, row_offset, col_offset);
#endif
  return kde_screen_generic(tile, rows, cols, row_norms, col_norms, row_lengths, col_lengths,
                            err, cutoff, row_offset, col_offset);
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
#ifdef FASTMEM_X86_DISPATCH
  if (has_avx2())
    kde_sparse_tile_avx2(tile, a, b, rows, cols, d, row_norms, col_norms, row_lengths,
                         col_lengths, row_labels, col_labels, err, cutoff, scale, row_offset,
                         col_offset, row_all, row_cls, c_all.data(), c_cls.data(), columns);
  else
#endif
    kde_sparse_tile_generic(tile, a, b, rows, cols, d, row_norms, col_norms, row_lengths,
                            col_lengths, row_labels, col_labels, err, cutoff, scale, row_offset,
                            col_offset, row_all, row_cls, c_all.data(), c_cls.data(), columns);
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
  template void bin_codes<T>(const T*, int64_t, int64_t, const BinSpec&, int64_t*);        \
  template int64_t bin_plane<T>(const T* const*, const int64_t*, int64_t, int64_t, int,     \
                                const double*, int64_t, const int64_t*, const double*,      \
                                const double*, int64_t, const int64_t*, int64_t,            \
                                const int64_t*, int64_t, const double*, double*);

FASTMEM_INFO_INSTANTIATE(float)
FASTMEM_INFO_INSTANTIATE(double)

}  // namespace fastmem::cpu

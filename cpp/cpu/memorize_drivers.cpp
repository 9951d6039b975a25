#include "memorize_drivers.hpp"

#include "fastmem/memorize.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

// The coverage counts are popcount-bound. They exist in two builds chosen at run time:
// the header's row functions (fastmem/memorize.hpp, shared with CUDA; _core is compiled for
// x86-64-v2, so they get the popcnt instruction) and an AVX2 nibble-lookup version. The
// AVX2 build is kept for a measured gain: cover_margins / cover_matrix over 6000 x 2048-bit
// rows took 0.101 / 0.099 s against 0.213 / 0.243 s for the header's popcnt loops (2 threads,
// 2026-11-23). Counts are integers: both builds give identical results (tested against the
// Numba kernels, which follow the header).
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FASTMEM_POPCNT_DISPATCH 1
#endif

namespace fastmem::cpu {

void linear_recurrence(const double* alpha, const double* beta, int64_t n, double* out) {
  // A scan is sequential; at ~1 ns per step it is never the bottleneck.
  linear_recurrence_seq(alpha, beta, n, out);
}

void relu_sum_eval(const double* t, int64_t n_t, const double* b, const double* w, int64_t n,
                   double* prefix, double* out) {
  relu_sum_prefix_seq(b, w, n, prefix);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_t; ++i) out[i] = relu_sum_at(t[i], b, n, prefix);
}

namespace {

#define FASTMEM_COVER_DRIVERS(SUFFIX, ATTR)                                                   \
  ATTR void cover_margins_##SUFFIX(const uint64_t* neg, int64_t n_neg, const uint64_t* pos,  \
                                   int64_t n_pos, int64_t words, int64_t* m) {               \
    _Pragma("omp parallel for schedule(dynamic, 16)") for (int64_t r = 0; r < n_neg; ++r) m[r] = \
        cover_margin_row(neg + r * words, pos, n_pos, words);                                 \
  }                                                                                           \
  ATTR void cover_matrix_##SUFFIX(const uint64_t* neg, int64_t n_neg, int64_t words,         \
                                  const int64_t* m, uint64_t* cover, int64_t cover_words) {   \
    _Pragma("omp parallel for schedule(dynamic, 16)") for (int64_t r = 0; r < n_neg; ++r)    \
        cover_row(neg, r, n_neg, words, m[r], cover + r * cover_words);                       \
  }                                                                                           \
  ATTR void cover_gains_##SUFFIX(const uint64_t* cover, int64_t rows, int64_t words,         \
                                 const uint64_t* uncovered, int64_t* gains) {                 \
    _Pragma("omp parallel for schedule(static)") for (int64_t r = 0; r < rows; ++r)          \
        gains[r] = cover_gain_row(cover + r * words, uncovered, words);                       \
  }

FASTMEM_COVER_DRIVERS(generic, )
#ifdef FASTMEM_POPCNT_DISPATCH

// AVX2: 256-bit popcount by nibble lookup (Mula, Kurz & Lemire 2018), four
// words per step; exact integer counts, the same as the scalar loops. The
// row functions mirror cover_margin_row / cover_row / cover_gain_row of
// fastmem/memorize.hpp with the word loop vectorised.
template <bool kAndNot>
__attribute__((target("avx2,popcnt"))) inline int64_t count_avx2(const uint64_t* a,
                                                                 const uint64_t* b,
                                                                 int64_t words) {
  const __m256i lookup = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                          2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i acc = _mm256_setzero_si256();
  int64_t w = 0;
  for (; w + 4 <= words; w += 4) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + w));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + w));
    const __m256i v = kAndNot ? _mm256_andnot_si256(x, y) : _mm256_and_si256(x, y);
    const __m256i cnt =
        _mm256_add_epi8(_mm256_shuffle_epi8(lookup, _mm256_and_si256(v, low)),
                        _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(cnt, _mm256_setzero_si256()));
  }
  int64_t c = _mm256_extract_epi64(acc, 0) + _mm256_extract_epi64(acc, 1) +
              _mm256_extract_epi64(acc, 2) + _mm256_extract_epi64(acc, 3);
  for (; w < words; ++w) c += __builtin_popcountll(kAndNot ? (~a[w] & b[w]) : (a[w] & b[w]));
  return c;
}

__attribute__((target("avx2,popcnt"))) void cover_margins_avx2(const uint64_t* neg, int64_t n_neg,
                                                               const uint64_t* pos, int64_t n_pos,
                                                               int64_t words, int64_t* m) {
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < n_neg; ++r) {
    int64_t best = INT64_MAX;
    for (int64_t s = 0; s < n_pos; ++s) {
      const int64_t c = count_avx2<true>(neg + r * words, pos + s * words, words);
      if (c < best) best = c;
    }
    m[r] = best;
  }
}

__attribute__((target("avx2,popcnt"))) void cover_matrix_avx2(const uint64_t* neg, int64_t n_neg,
                                                              int64_t words, const int64_t* m,
                                                              uint64_t* cover,
                                                              int64_t cover_words) {
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < n_neg; ++r) {
    uint64_t* row = cover + r * cover_words;
    for (int64_t w = 0; w < cover_words; ++w) row[w] = 0;
    for (int64_t s = 0; s < n_neg; ++s)
      if (2 * count_avx2<true>(neg + r * words, neg + s * words, words) <= m[r])
        row[s >> 6] |= 1ULL << (s & 63);
  }
}

__attribute__((target("avx2,popcnt"))) void cover_gains_avx2(const uint64_t* cover, int64_t rows,
                                                             int64_t words,
                                                             const uint64_t* uncovered,
                                                             int64_t* gains) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) gains[r] = count_avx2<false>(cover + r * words, uncovered, words);
}

int isa_level() {
  static const int level = __builtin_cpu_supports("avx2") ? 2 : 0;
  return level;
}
#define FASTMEM_DISPATCH(NAME, ...)                                                \
  (isa_level() == 2 ? NAME##_avx2(__VA_ARGS__) : NAME##_generic(__VA_ARGS__))
#else
#define FASTMEM_DISPATCH(NAME, ...) NAME##_generic(__VA_ARGS__)
#endif

}  // namespace

void cover_margins(const uint64_t* neg, int64_t n_neg, const uint64_t* pos, int64_t n_pos,
                   int64_t words, int64_t* m) {
  FASTMEM_DISPATCH(cover_margins, neg, n_neg, pos, n_pos, words, m);
}

void cover_matrix(const uint64_t* neg, int64_t n_neg, int64_t words, const int64_t* m,
                  uint64_t* cover, int64_t cover_words) {
  FASTMEM_DISPATCH(cover_matrix, neg, n_neg, words, m, cover, cover_words);
}

void cover_gains(const uint64_t* cover, int64_t rows, int64_t words, const uint64_t* uncovered,
                 int64_t* gains) {
  FASTMEM_DISPATCH(cover_gains, cover, rows, words, uncovered, gains);
}

}  // namespace fastmem::cpu

#include "memorize_drivers.hpp"

#include "dispatch.hpp"
#include "fastmem/memorize.hpp"

#ifdef FASTMEM_X86_DISPATCH
#include <immintrin.h>
#endif

// The coverage counts are popcount-bound. They exist in two builds chosen at run time:
// the header's row functions (fastmem/memorize.hpp, shared with CUDA; _core is compiled for
// x86-64-v2, so they get the popcnt instruction) and an AVX2 nibble-lookup version. The
// AVX2 build is kept for a measured gain: cover_margins / cover_matrix over 6000 x 2048-bit
// rows took 0.101 / 0.099 s against 0.213 / 0.243 s for the header's popcnt loops (2 threads,
// 2026-11-23). Counts are integers: both builds give identical results (tested against the
// Numba kernels, which follow the header).

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

// The randomized second layer: m by a min-reduction over the positive codes, then the
// covered-set update fused into one pass (count, decide, compact). The counts run in
// parallel from 2^20 words on (below, one thread finishes in ~0.2 ms, less than a parallel
// region can cost on a loaded machine); the compaction is one sequential pass over the
// alive list (order kept, so the candidates stay sorted as the authors' flatnonzero
// gives them).
#define FASTMEM_COVER_STEP(SUFFIX, ATTR, COUNT)                                               \
  ATTR void cover_step_##SUFFIX(const uint64_t* neg, const uint64_t* pos, int64_t n_pos,      \
                                int64_t words, int64_t row, int64_t rule, int64_t* alive,     \
                                int64_t* counts, int64_t* state) {                            \
    const int64_t n = state[0];                                                               \
    const uint64_t* mine = neg + row * words;                                                 \
    int64_t m = INT64_MAX;                                                                    \
    _Pragma("omp parallel for schedule(static) reduction(min : m) if (n_pos * words > (1 << 20))") \
    for (int64_t s = 0; s < n_pos; ++s) {                                                     \
      const int64_t c = COUNT(mine, pos + s * words, words);                                  \
      if (c < m) m = c;                                                                       \
    }                                                                                         \
    state[1] = m;                                                                             \
    if (m <= 0) return;                                                                       \
    _Pragma("omp parallel for schedule(static) if (n * words > (1 << 20))")                        \
    for (int64_t j = 0; j < n; ++j) counts[j] = COUNT(mine, neg + alive[j] * words, words);    \
    int64_t kept = 0;                                                                         \
    for (int64_t j = 0; j < n; ++j)                                                           \
      if (!covers(counts[j], m, rule)) alive[kept++] = alive[j];                              \
    state[0] = kept;                                                                          \
  }

FASTMEM_COVER_STEP(generic, , separating_count)

// threshold_pack is sequential: it streams a cache-resident GEMM block at ~0.1 ns per
// entry (AVX2), and is called once per block; a parallel region per call cost more than
// it saved (on a loaded 2-core machine a region waits for a descheduled thread: N = 1000,
// n = 500 took 8 ms per call with OpenMP, 0.05 ms without, 2026-11-23).
void threshold_pack_generic(const double* z, int64_t rows, int64_t width, const double* b,
                            uint64_t* codes, int64_t words) {
  for (int64_t r = 0; r < rows; ++r) threshold_pack_row(z + r * width, b, width, codes + r * words);
}

void threshold_votes_generic(const uint64_t* codes, int64_t rows, int64_t words,
                             const uint64_t* units, const double* bias, const int64_t* owner,
                             int64_t k, int64_t n_classes, int64_t* votes) {
#pragma omp parallel for schedule(static) if (rows * k * words > (1 << 20))
  for (int64_t r = 0; r < rows; ++r)
    threshold_votes_row(codes + r * words, units, bias, owner, k, words, n_classes,
                        votes + r * n_classes);
}

#ifdef FASTMEM_X86_DISPATCH

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

#define FASTMEM_ANDNOT_AVX2(a, b, words) count_avx2<true>(a, b, words)
FASTMEM_COVER_STEP(avx2, __attribute__((target("avx2,popcnt"))), FASTMEM_ANDNOT_AVX2)

// threshold_votes_row with the word loop vectorised (the same integer counts).
__attribute__((target("avx2,popcnt"))) void threshold_votes_avx2(
    const uint64_t* codes, int64_t rows, int64_t words, const uint64_t* units,
    const double* bias, const int64_t* owner, int64_t k, int64_t n_classes, int64_t* votes) {
#pragma omp parallel for schedule(static) if (rows * k * words > (1 << 20))
  for (int64_t r = 0; r < rows; ++r) {
    int64_t* v = votes + r * n_classes;
    for (int64_t c = 0; c < n_classes; ++c) v[c] = 0;
    for (int64_t q = 0; q < k; ++q) {
      const int64_t cnt = count_avx2<false>(codes + r * words, units + q * words, words);
      v[owner[q]] += sub_rn(bias[q], static_cast<double>(cnt)) >= 0.0 ? 1 : 0;
    }
  }
}

// Four comparisons per instruction and a movemask: the pack is memory-bound again.
__attribute__((target("avx2"))) void threshold_pack_avx2(const double* z, int64_t rows,
                                                         int64_t width, const double* b,
                                                         uint64_t* codes, int64_t words) {
  const int64_t full = width / 64;
  for (int64_t r = 0; r < rows; ++r) {
    const double* zr = z + r * width;
    uint64_t* out = codes + r * words;
    const __m256d zero = _mm256_setzero_pd();
    for (int64_t w = 0; w < full; ++w) {
      uint64_t word = 0;
      for (int q = 0; q < 16; ++q) {
        const int64_t j = 64 * w + 4 * q;
        const __m256d v = _mm256_add_pd(_mm256_loadu_pd(zr + j), _mm256_loadu_pd(b + j));
        const uint64_t bits = static_cast<uint32_t>(_mm256_movemask_pd(_mm256_cmp_pd(v, zero, _CMP_GE_OQ)));
        word |= bits << (4 * q);
      }
      out[w] = word;
    }
    if (full < words) {  // the partial last word
      uint64_t word = 0;
      for (int64_t j = 64 * full; j < width; ++j)
        word |= static_cast<uint64_t>(zr[j] + b[j] >= 0.0) << (j - 64 * full);
      out[full] = word;
    }
  }
}

#define FASTMEM_DISPATCH(NAME, ...) \
  (has_avx2() ? NAME##_avx2(__VA_ARGS__) : NAME##_generic(__VA_ARGS__))
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

void threshold_pack(const double* z, int64_t rows, int64_t width, const double* b,
                    uint64_t* codes, int64_t words) {
  FASTMEM_DISPATCH(threshold_pack, z, rows, width, b, codes, words);
}

void cover_step(const uint64_t* neg, const uint64_t* pos, int64_t n_pos, int64_t words,
                int64_t row, int64_t rule, int64_t* alive, int64_t* counts, int64_t* state) {
  FASTMEM_DISPATCH(cover_step, neg, pos, n_pos, words, row, rule, alive, counts, state);
}

void cover_walks(const uint64_t* codes, int64_t n_rows, int64_t n_neg, int64_t words,
                 const int64_t* sets, const int64_t* widths, const int64_t* orders, int64_t cells,
                 int64_t rule, uint8_t* flags, int64_t* uncovered) {
  // Walks are independent and short (microseconds to a millisecond): one per thread, all
  // the cells of a restart in one parallel region (one region per (restart, lambda) cost
  // 16 ms a call on the loaded 2-core machine, against 1.5 ms on one thread, 2026-11-23).
#pragma omp parallel for schedule(dynamic, 1) if (cells > 1)
  for (int64_t c = 0; c < cells; ++c) {
    const uint64_t* neg = codes + sets[c] * n_rows * words;
    uncovered[c] = cover_walk(neg, n_neg, neg + n_neg * words, n_rows - n_neg, words, widths[c],
                              orders + c * n_neg, rule, flags + c * n_neg);
  }
}

void threshold_votes(const uint64_t* codes, int64_t rows, int64_t words, const uint64_t* units,
                     const double* bias, const int64_t* owner, int64_t k, int64_t n_classes,
                     int64_t* votes) {
  FASTMEM_DISPATCH(threshold_votes, codes, rows, words, units, bias, owner, k, n_classes, votes);
}

}  // namespace fastmem::cpu

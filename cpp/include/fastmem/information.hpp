// Binned and kernel (KDE) mutual information: the per-row and per-entry math.
//
// Discretisation of one activation value `a` into an integer code (BinSpec.kind):
//
//   kBinEdgesWrap (IDNNs):  k = #{edges <= a};  code = k - 1 if k > 0 else n_edges - 1
//                           (np.digitize followed by bins[k - 1]: a value below the first
//                           edge wraps to the last one). n_codes = n_edges.
//   kBinEdges (equal mass): code = #{edges <= a} (edges are the interior edges).
//                           n_codes = n_edges + 1.
//   kBinUniform:            code = clamp(floor((double(a) - lo) * scale), 0, n_codes - 1).
//   kBinFloor (ibsgd):      code = floor(a / T(scale)) in the activation's precision T
//                           (as NumPy 2 computes float32 / Python float), clamped to
//                           +-2^62 so that the conversion to int64 is defined.
//
// Comparisons with edges are made in double: edges hold float32 or float64 values
// exactly, so the result equals NumPy's comparison in the activation's dtype.
// -0.0 and +0.0 get the same code by construction (only codes are hashed).
//
// Row keys: the codes of a row are packed, `bits` bits each (bits = 64 for the floor
// kind, else the fewest whole bytes holding n_codes - 1), into 64-bit words from the least significant
// bit (bits in {8, 16, 32, 64}); each full (and the last partial) word is folded into
// two independent hashes:
//   key1 = splitmix64 finaliser chain from mix64(kKey1IV ^ segment),
//   key2 = murmur3 fmix64 chain from fmix64(kKey2IV ^ segment) with an odd multiplier.
// The segment (row / rows_per_segment: the checkpoint) seeds both keys, so rows of
// different checkpoints never share a key by construction of the data layout.
//
// KDE: for a tile of Gram products g_ij = <t_i, t_j>, the squared distance is
// d_ij = max(n_i + n_j - 2 g_ij, 0) (0 exactly on the global diagonal) and the
// kernel value e_ij = exp(-d_ij * scale) with scale = 1 / (2 s^2). Every e_ij lies in
// [0, 1] and the diagonal one is exactly 1, so a row sum lies in [1, N]: a plain float64
// sum needs no log-sum-exp shift.
//
// KDE screening (pruning of whole tile pairs, see kde_mi in information.py): g32 is the
// Gram entry of the float32-rounded rows computed in float32 by any BLAS. With
// u = 2^-24, |g32 - <t_i, t_j>| <= ((d + 2) u + O(u^2)) |t_i| |t_j| whatever the order
// of the summation (Higham, Accuracy and Stability, 3.1, plus the rounding of the
// inputs), so with err >= that coefficient and l_i >= |t_i|
//   d_ij >= (n_i + n_j)(1 - kKdeNormSlack) - 2 g32 - 2 err l_i l_j,
// where kKdeNormSlack covers the float64 rounding of the norms n_i and of this formula.
// A NaN or Inf g32 (float32 overflow) never proves anything.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastmem/hd.hpp"
#include "fastmem/patterns.hpp"

namespace fastmem {

enum BinKind : int {
  kBinEdgesWrap = 0,
  kBinEdges = 1,
  kBinUniform = 2,
  kBinFloor = 3,
};

constexpr uint64_t kKey1IV = 0x243F6A8885A308D3ULL;
constexpr uint64_t kKey2IV = 0x13198A2E03707344ULL;
constexpr uint64_t kKey2Mul = 0x9E3779B97F4A7C15ULL;

struct BinSpec {
  int kind;
  const double* edges;
  int64_t n_edges;
  double lo;
  double scale;
  int64_t n_codes;
};

FASTMEM_HD inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xFF51AFD7ED558CCDULL;
  k ^= k >> 33;
  k *= 0xC4CEB9FE1A85EC53ULL;
  k ^= k >> 33;
  return k;
}

// Bits per packed code.
// Whole bytes, so that the CPU driver can pack byte codes with plain loads.
FASTMEM_HD inline int code_bits(const BinSpec& s) {
  if (s.kind == kBinFloor) return 64;
  if (s.n_codes <= 256) return 8;
  if (s.n_codes <= 65536) return 16;
  return s.n_codes <= 4294967296LL ? 32 : 64;
}

// Number of sorted edges e[0..n) with e[k] <= v. Branch-free (a conditional move per
// halving, ceil(log2 n) steps whatever v is): the answer lies in [base, base + len].
FASTMEM_HD inline int64_t count_le(const double* e, int64_t n, double v) {
  if (n <= 0) return 0;
  int64_t base = 0, len = n;
  while (len > 1) {
    const int64_t half = len >> 1;
    base = e[base + half] <= v ? base + half : base;
    len -= half;
  }
  return base + (e[base] <= v ? 1 : 0);
}

FASTMEM_HD inline double floor_of(double x) { return std::floor(x); }
FASTMEM_HD inline float floor_of(float x) { return std::floor(x); }

// True for NaN and +-Inf (a - a is NaN exactly then).
template <class T>
FASTMEM_HD inline bool not_finite(T a) {
  return !((a - a) == T(0));
}

template <class T>
FASTMEM_HD inline int64_t bin_code(T a, const BinSpec& s) {
  switch (s.kind) {
    case kBinEdgesWrap: {
      const int64_t k = count_le(s.edges, s.n_edges, static_cast<double>(a));
      return k > 0 ? k - 1 : s.n_edges - 1;
    }
    case kBinEdges:
      return count_le(s.edges, s.n_edges, static_cast<double>(a));
    case kBinUniform: {
      double t = std::floor((static_cast<double>(a) - s.lo) * s.scale);
      const double top = static_cast<double>(s.n_codes - 1);
      t = t < 0.0 ? 0.0 : (t > top ? top : t);
      return static_cast<int64_t>(t);
    }
    default: {  // kBinFloor
      T q = floor_of(a / static_cast<T>(s.scale));
      const T limit = T(4611686018427387904.0);  // 2^62
      q = q < -limit ? -limit : (q > limit ? limit : q);
      return static_cast<int64_t>(q);
    }
  }
}

// Mark occupancy cell p (a flag only ever set to 1): relaxed atomics on the host
// so that concurrent threads setting the same flag is no data race.
FASTMEM_HD inline void set_flag(uint8_t* p) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<volatile uint8_t*>(p) = 1;
#else
  if (!__atomic_load_n(p, __ATOMIC_RELAXED)) __atomic_store_n(p, uint8_t(1), __ATOMIC_RELAXED);
#endif
}

// Keys of one row; returns the number of non-finite values (coded as 0).
// occ: the row's segment's (width, n_codes) occupancy flags, or nullptr.
template <class T>
FASTMEM_HD inline int64_t bin_row_keys(const T* row, int64_t width, const BinSpec& s,
                                       uint64_t segment, uint64_t* key1, uint64_t* key2,
                                       uint8_t* occ) {
  const int bits = code_bits(s);
  const int per_word = 64 / bits;
  uint64_t h1 = mix64(kKey1IV ^ segment);
  uint64_t h2 = fmix64(kKey2IV ^ segment);
  uint64_t acc = 0;
  int filled = 0;
  int64_t bad = 0;
  for (int64_t j = 0; j < width; ++j) {
    const T a = row[j];
    uint64_t c = 0;
    if (not_finite(a))
      ++bad;
    else
      c = static_cast<uint64_t>(bin_code(a, s));
    if (occ) set_flag(occ + j * s.n_codes + static_cast<int64_t>(c));
    acc |= bits == 64 ? c : c << (filled * bits);
    if (++filled == per_word) {
      h1 = mix64(h1 ^ acc);
      h2 = fmix64((h2 ^ acc) * kKey2Mul);
      acc = 0;
      filled = 0;
    }
  }
  if (filled) {
    h1 = mix64(h1 ^ acc);
    h2 = fmix64((h2 ^ acc) * kKey2Mul);
  }
  *key1 = mix64(h1 ^ static_cast<uint64_t>(width));
  *key2 = fmix64(h2 ^ static_cast<uint64_t>(width));
  return bad;
}

// 1 when rows a and b have the same codes everywhere, else 0.
template <class T>
FASTMEM_HD inline int64_t bin_rows_differ(const T* a, const T* b, int64_t width,
                                          const BinSpec& s) {
  for (int64_t j = 0; j < width; ++j)
    if (bin_code(a[j], s) != bin_code(b[j], s)) return 1;
  return 0;
}

// Kernel value of one Gram entry (see the header comment).
FASTMEM_HD inline double kde_entry(double g, double ni, double nj, double scale, bool diagonal) {
  if (diagonal) return 1.0;
  double d = ni + nj - 2.0 * g;
  d = d > 0.0 ? d : 0.0;
  return std::exp(-d * scale);
}

constexpr double kKdeNormSlack = 1e-12;

// Gram entry of two float64 rows: eight partial sums (k mod 8, the tail into the first
// ones), combined pairwise; no contraction (-ffp-contract=off, --fmad=false), so that
// every backend gets the same bits, and eight independent chains instead of one.
FASTMEM_HD inline double dot_rows(const double* a, const double* b, int64_t d) {
  double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  const int64_t d8 = d - d % 8;
  for (int64_t k = 0; k < d8; k += 8)
    for (int r = 0; r < 8; ++r) s[r] += a[k + r] * b[k + r];
  for (int64_t k = d8; k < d; ++k) s[k - d8] += a[k] * b[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// True when the bound above proves d_ij > cutoff.
FASTMEM_HD inline bool kde_far(float g32, double ni, double nj, double li, double lj,
                               double err, double cutoff) {
  const double lower =
      (ni + nj) * (1.0 - kKdeNormSlack) - 2.0 * static_cast<double>(g32) - 2.0 * err * li * lj;
  return lower > cutoff;
}


// ---------------------------------------------------------------- information plane
//
// bin_plane: the entropy sums of many segments (one layer at one checkpoint each: n rows
// of `width` values) in one call, each segment grouped on its own in O(n) scratch:
//
//   1. the codes of each row are packed exactly, plane_bits(s) bits each (64 for the
//      floor kind, else the bit length of n_codes - 1), per_word = 64 / bits to a word
//      (no code straddles two words); the row's hash chains mix64 over its words;
//   2. rows are grouped by an open-addressing table of (hash, group) (capacity
//      plane_cap(n) >= 2n, linear probing from hash & (cap - 1)); rows join a group only
//      when all their words equal the group's first row's: exact, no collision can merge
//      two distinct rows (with one word the hash, a bijection of it, is compared);
//   3. the pairs (group, label) and (group, input id) are counted in a dense table when
//      groups * classes <= cap, else in a second open-addressing table on the exact key.
//
// Each sum of c log2 c over the groups' sizes c is taken from a histogram of the sizes:
// sum over c ascending of double(hist[c]) * clog[c] (clog[c] = c log2 c, a table the
// caller makes). The sum depends only on the multiset of group sizes, not on the order
// in which groups were found: every backend and thread count gives the same bits.

// Bits per code in bin_plane's exact row words.
FASTMEM_HD inline int plane_bits(const BinSpec& s) {
  if (s.kind == kBinFloor) return 64;
  int bits = 1;
  while (bits < 63 && (int64_t(1) << bits) < s.n_codes) ++bits;
  return bits;
}

FASTMEM_HD inline int64_t plane_words(const BinSpec& s, int64_t width) {
  const int64_t per_word = 64 / plane_bits(s);
  return (width + per_word - 1) / per_word;
}

// Table capacity: the smallest power of two >= 2n (at least 2).
FASTMEM_HD inline int64_t plane_cap(int64_t n) {
  int64_t c = 2;
  while (c < 2 * n) c <<= 1;
  return c;
}

// Scratch of one segment, in 8-byte words: row words (n * n_words), row hashes (n),
// row group ids (n), group heads and sizes (n each), the group table's hashes and
// groups (cap each), the pair table's keys and counts (cap each), the size histogram
// (n + 1).
FASTMEM_HD inline int64_t plane_scratch_words(int64_t n, int64_t n_words) {
  return n * n_words + 4 * n + 4 * plane_cap(n) + n + 1;
}

struct PlaneScratch {
  uint64_t* words;
  uint64_t* hash;
  int64_t* gid;
  int64_t* head;
  int64_t* size;
  uint64_t* thash;
  int64_t* table;
  int64_t* pkey;
  int64_t* pcnt;
  int64_t* hist;
  int64_t cap;
};

FASTMEM_HD inline PlaneScratch plane_scratch(int64_t* base, int64_t n, int64_t n_words) {
  PlaneScratch w;
  w.cap = plane_cap(n);
  w.words = reinterpret_cast<uint64_t*>(base);
  w.hash = w.words + n * n_words;
  w.gid = reinterpret_cast<int64_t*>(w.hash + n);
  w.head = w.gid + n;
  w.size = w.head + n;
  w.thash = reinterpret_cast<uint64_t*>(w.size + n);
  w.table = reinterpret_cast<int64_t*>(w.thash + w.cap);
  w.pkey = w.table + w.cap;
  w.pcnt = w.pkey + w.cap;
  w.hist = w.pcnt + w.cap;
  return w;
}

// sum over c = 2..max_c (ascending) of hist[c] * clog[c]; clears hist[0..max_c].
FASTMEM_HD inline double plane_hist_sum(int64_t* hist, int64_t max_c, const double* clog) {
  double s = 0.0;
  for (int64_t c = 2; c <= max_c; ++c) {
    if (hist[c]) s += static_cast<double>(hist[c]) * clog[c];
    hist[c] = 0;
  }
  hist[0] = 0;
  if (max_c >= 1) hist[1] = 0;
  return s;
}

// sum c log2 c over the groups of (gid, other) (other in [0, n_other)).
FASTMEM_HD inline double plane_pair_sum(const PlaneScratch& w, int64_t n, int64_t groups,
                                        const int64_t* other, int64_t n_other,
                                        const double* clog) {
  int64_t max_c = 0;
  if (groups * n_other <= w.cap) {  // dense: one counter per (group, other)
    const int64_t m = groups * n_other;
    for (int64_t k = 0; k < m; ++k) w.pcnt[k] = 0;
    for (int64_t i = 0; i < n; ++i) ++w.pcnt[w.gid[i] * n_other + other[i]];
    for (int64_t k = 0; k < m; ++k) {
      const int64_t c = w.pcnt[k];
      ++w.hist[c];
      max_c = c > max_c ? c : max_c;
    }
  } else {
    const int64_t mask = w.cap - 1;
    for (int64_t k = 0; k < w.cap; ++k) w.pkey[k] = -1;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t key = w.gid[i] * n_other + other[i];
      int64_t slot = static_cast<int64_t>(mix64(static_cast<uint64_t>(key)) & uint64_t(mask));
      while (w.pkey[slot] != -1 && w.pkey[slot] != key) slot = (slot + 1) & mask;
      if (w.pkey[slot] == -1) {
        w.pkey[slot] = key;
        w.pcnt[slot] = 0;
      }
      ++w.pcnt[slot];
    }
    for (int64_t k = 0; k < w.cap; ++k) {
      if (w.pkey[k] == -1) continue;
      const int64_t c = w.pcnt[k];
      ++w.hist[c];
      max_c = c > max_c ? c : max_c;
    }
  }
  return plane_hist_sum(w.hist, max_c, clog);
}

// bin_code for bin_plane: for the edge kinds, the index of the last edge <= a is first
// guessed as floor((a - e[0]) * (n_edges - 1) / (e[n_edges - 1] - e[0])) (exact for the
// evenly spaced IDNNs edges up to rounding) and taken when the two edges around it
// confirm it; anything else (rounding, uneven edges, a outside) falls back to count_le.
// Same codes as bin_code, by construction.
template <class T>
FASTMEM_HD inline int64_t plane_code(T a, const BinSpec& s, double hint_scale) {
  if (s.kind > kBinEdges || hint_scale <= 0.0) return bin_code(a, s);
  const double v = static_cast<double>(a);
  const double t = (v - s.edges[0]) * hint_scale;
  int64_t k = -1;
  if (t >= 0.0 && t < static_cast<double>(s.n_edges)) {
    const int64_t g = static_cast<int64_t>(t);
    if (s.edges[g] <= v && (g + 1 == s.n_edges || v < s.edges[g + 1])) k = g + 1;
  }
  if (k < 0) k = count_le(s.edges, s.n_edges, v);
  if (s.kind == kBinEdges) return k;
  return k > 0 ? k - 1 : s.n_edges - 1;
}

// The guess's scale of plane_code (0: no guess).
FASTMEM_HD inline double plane_hint_scale(const BinSpec& s) {
  if (s.kind > kBinEdges || s.n_edges < 2) return 0.0;
  const double span = s.edges[s.n_edges - 1] - s.edges[0];
  return span > 0.0 ? static_cast<double>(s.n_edges - 1) / span : 0.0;
}

// One segment: out[0] = sum c log2 c over the groups of T, out[1] over (T, y), out[2]
// over (T, x) (NaN when x is nullptr). Returns the number of non-finite values (coded
// as 0). y and x hold one entry per row of the segment.
template <class T>
FASTMEM_HD inline int64_t plane_segment(const T* a, int64_t n, int64_t width, const BinSpec& s,
                                        const int64_t* y, int64_t n_y, const int64_t* x,
                                        int64_t n_x, const double* clog, const PlaneScratch& w,
                                        double* out) {
  const int bits = plane_bits(s);
  const int per_word = 64 / bits;
  const int64_t nw = (width + per_word - 1) / per_word;
  const int64_t mask = w.cap - 1;
  const double hint = plane_hint_scale(s);
  int64_t bad = 0;
  for (int64_t k = 0; k <= n; ++k) w.hist[k] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = a + i * width;
    uint64_t* words = w.words + i * nw;
    uint64_t h = kKey1IV;
    uint64_t acc = 0;
    int filled = 0;
    int64_t wi = 0;
    for (int64_t j = 0; j < width; ++j) {
      const T v = row[j];
      uint64_t c = 0;
      if (not_finite(v))
        ++bad;
      else
        c = static_cast<uint64_t>(plane_code(v, s, hint));
      acc |= bits == 64 ? c : c << (filled * bits);
      if (++filled == per_word) {
        words[wi++] = acc;
        h = mix64(h ^ acc);
        acc = 0;
        filled = 0;
      }
    }
    if (filled) {
      words[wi] = acc;
      h = mix64(h ^ acc);
    }
    w.hash[i] = h;
  }
  for (int64_t k = 0; k < w.cap; ++k) w.table[k] = -1;
  int64_t groups = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = w.hash[i];
    const uint64_t* wi = w.words + i * nw;
    int64_t slot = static_cast<int64_t>(h & uint64_t(mask));
    for (;;) {
      const int64_t g = w.table[slot];
      if (g < 0) {
        w.table[slot] = groups;
        w.thash[slot] = h;
        w.head[groups] = i;
        w.size[groups] = 1;
        w.gid[i] = groups++;
        break;
      }
      bool same = w.thash[slot] == h;
      if (same && nw > 1) {
        const uint64_t* wr = w.words + w.head[g] * nw;
        for (int64_t q = 0; same && q < nw; ++q) same = wr[q] == wi[q];
      }
      if (same) {
        ++w.size[g];
        w.gid[i] = g;
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  int64_t max_c = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t c = w.size[g];
    ++w.hist[c];
    max_c = c > max_c ? c : max_c;
  }
  out[0] = plane_hist_sum(w.hist, max_c, clog);
  out[1] = plane_pair_sum(w, n, groups, y, n_y, clog);
  out[2] = x ? plane_pair_sum(w, n, groups, x, n_x, clog) : NAN;
  return bad;
}

}  // namespace fastmem

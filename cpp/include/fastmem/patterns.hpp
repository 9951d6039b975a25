// Activation-pattern packing and pattern hashing (the activation kinds themselves:
// activations.hpp).
//
// Bit layout of a packed activation pattern (one row of `codes`, `words`
// uint64 words): hidden neurons are numbered consecutively over the hidden
// layers (layer 0 first); a neuron with a two-state activation (relu,
// leaky_relu, threshold) owns one bit, a hard-tanh neuron owns two. Global
// bit g lives in word g / 64 at bit position g % 64 (least significant bit
// first). Unused high bits of the last word are zero.
//
//   relu, leaky_relu : bit = z > 0            (the neuron is on its identity branch)
//   threshold        : bit = z >= 0           (Heaviside 1[z >= 0], as Dirksen et al.)
//   hardtanh         : low bit  = z > -1, high bit = z > 1
//                      -> 00 saturated at -1, 01 linear, 11 saturated at +1
//
// The pattern hash of a row is h = IV; for each word w (in order):
// h = mix64(h ^ w), with mix64 the splitmix64 finaliser (a bijection on
// 64-bit integers) and IV = 0x6A09E667F3BCC909.
#pragma once

#include <cstdint>
#include <cstring>

#include "fastmem/activations.hpp"
#include "fastmem/hd.hpp"

namespace fastmem {

constexpr uint64_t kHashIV = 0x6A09E667F3BCC909ULL;

FASTMEM_HD inline uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

FASTMEM_HD inline uint64_t hash_words(const uint64_t* words, int64_t n_words) {
  uint64_t h = kHashIV;
  for (int64_t w = 0; w < n_words; ++w) h = mix64(h ^ words[w]);
  return h;
}

// Bit b of the result is byte b of x (each byte 0 or 1): one multiply gathers them, as
// every partial product lands on its own bit (no carries reach the top byte).
FASTMEM_HD inline uint64_t pack_bytes8(uint64_t x) { return (x * 0x0102040810204080ULL) >> 56; }

// Bit j of the result is flags[j] (each 0 or 1) for j < nb <= 64, 0 above (flags has room
// for 64 entries; those from nb on are cleared here).
FASTMEM_HD inline uint64_t pack_flags64(uint8_t* flags, int64_t nb) {
  for (int64_t j = nb; j < 64; ++j) flags[j] = 0;
  uint64_t word = 0;
  for (int b = 0; b < 8; ++b) {
    uint64_t x;
    memcpy(&x, flags + 8 * b, sizeof x);  // little-endian: flags[8 b] is the low byte
    word |= pack_bytes8(x) << (8 * b);
  }
  return word;
}

// Bits 0..31 of x moved to the even bits 0, 2, ..., 62 (odd bits zero).
FASTMEM_HD inline uint64_t spread_even32(uint64_t x) {
  x &= 0xFFFFFFFFULL;
  x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
  x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL;
  x = (x | (x << 2)) & 0x3333333333333333ULL;
  x = (x | (x << 1)) & 0x5555555555555555ULL;
  return x;
}

namespace detail {

// One row, activation fixed at compile time so the inner loops have no switch. Neurons are
// taken 64 bits of pattern at a time (64 neurons, or 32 hard-tanh ones): their state bits
// are computed into bytes by a branch-free loop (it vectorises; a bit gathered per neuron
// into a register did not: ~2 ns per value), packed into one word (hard-tanh: the low and
// the high bits packed apart, then interleaved), and ORed in at the block's bit offset
// (straddling two words when the row does not start a word); then the activation in place.
template <int Kind, class T>
FASTMEM_HD inline void pack_and_activate_row(T* z, int64_t width, uint64_t* codes,
                                             int64_t bit_offset, T slope) {
  constexpr int bpn = bits_per_neuron(Kind);
  constexpr int64_t per = 64 / bpn;  // neurons per 64 pattern bits
  for (int64_t j0 = 0; j0 < width; j0 += per) {
    const int64_t nb = width - j0 < per ? width - j0 : per;
    T* zb = z + j0;
    uint64_t bits;
    uint8_t flags[64];
    if constexpr (bpn == 1) {
      for (int64_t j = 0; j < nb; ++j) flags[j] = uint8_t(neuron_state(zb[j], Kind));
      bits = pack_flags64(flags, nb);
    } else {
      uint8_t high[64];
      for (int64_t j = 0; j < nb; ++j) {
        const uint64_t state = neuron_state(zb[j], Kind);
        flags[j] = uint8_t(state & 1ULL);
        high[j] = uint8_t(state >> 1);
      }
      bits = spread_even32(pack_flags64(flags, nb)) | (spread_even32(pack_flags64(high, nb)) << 1);
    }
    for (int64_t j = 0; j < nb; ++j) zb[j] = activate(zb[j], Kind, slope);
    const int64_t g = bit_offset + j0 * bpn;
    const int sh = static_cast<int>(g & 63);
    codes[g >> 6] |= bits << sh;
    if (sh != 0 && (bits >> (64 - sh)) != 0) codes[(g >> 6) + 1] |= bits >> (64 - sh);
  }
}

}  // namespace detail

// OR the state bits of one row of pre-activations into its packed pattern
// (starting at global bit `bit_offset`), then apply the activation in place.
template <class T>
FASTMEM_HD inline void pack_and_activate_row(T* z, int64_t width, uint64_t* codes,
                                             int64_t bit_offset, int kind, T slope) {
  with_kind(kind, [&](auto k) {
    detail::pack_and_activate_row<decltype(k)::value>(z, width, codes, bit_offset, slope);
  });
}

}  // namespace fastmem

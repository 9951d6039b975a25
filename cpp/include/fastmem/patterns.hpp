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

namespace detail {

// One row, activation fixed at compile time so the inner loop has no switch.
// Bits are gathered in a register and flushed once per 64-bit word.
template <int Kind, class T>
FASTMEM_HD inline void pack_and_activate_row(T* z, int64_t width, uint64_t* codes,
                                             int64_t bit_offset, T slope) {
  constexpr int bpn = Kind == kHardtanh ? 2 : 1;
  int64_t word = bit_offset >> 6;
  int shift = static_cast<int>(bit_offset & 63);
  uint64_t acc = 0;
  for (int64_t j = 0; j < width; ++j) {
    const uint64_t state = neuron_state(z[j], Kind);
    z[j] = activate(z[j], Kind, slope);
    acc |= state << shift;
    shift += bpn;
    if (shift >= 64) {
      codes[word++] |= acc;
      shift -= 64;
      // a hard-tanh field that straddles two words leaves its high bit here
      acc = shift > 0 ? state >> (bpn - shift) : 0;
    }
  }
  if (acc) codes[word] |= acc;
}

}  // namespace detail

// OR the state bits of one row of pre-activations into its packed pattern
// (starting at global bit `bit_offset`), then apply the activation in place.
template <class T>
FASTMEM_HD inline void pack_and_activate_row(T* z, int64_t width, uint64_t* codes,
                                             int64_t bit_offset, int kind, T slope) {
  switch (kind) {
    case kRelu:
      detail::pack_and_activate_row<kRelu>(z, width, codes, bit_offset, slope);
      break;
    case kLeakyRelu:
      detail::pack_and_activate_row<kLeakyRelu>(z, width, codes, bit_offset, slope);
      break;
    case kHardtanh:
      detail::pack_and_activate_row<kHardtanh>(z, width, codes, bit_offset, slope);
      break;
    default:
      detail::pack_and_activate_row<kThreshold>(z, width, codes, bit_offset, slope);
      break;
  }
}

}  // namespace fastmem

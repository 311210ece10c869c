// Small, stable, non-cryptographic hashes shared by the data layer.
//
// These values are written into files (tokenizer checksums) and decide data order (train/val split,
// sample permutation), so they are part of the on-disk and reproducibility contract: never change
// them without bumping the token-shard format version (docs/data_format.md).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moetrain::data {

// SplitMix64 finalizer (Steele, Lea, Flood 2014): a bijection on uint64 with good avalanche.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hash of an ordered pair; HashPair(a, b) != HashPair(b, a) in general.
inline uint64_t HashPair(uint64_t a, uint64_t b) {
  return SplitMix64(SplitMix64(a) ^ (b + 0x632be59bd9b4e019ULL));
}

// Uniform double in [0, 1) from the top 53 bits of a hash.
inline double HashToUnit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// 64-bit FNV-1a over bytes; `state` lets a caller hash a stream in pieces
// (Fnv1a64(b, Fnv1a64(a)) == Fnv1a64(a + b)).
constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;
inline uint64_t Fnv1a64(std::string_view bytes, uint64_t state = kFnv1a64Offset) {
  for (unsigned char c : bytes) {
    state ^= c;
    state *= 0x100000001b3ULL;
  }
  return state;
}

// 16 lowercase hex digits, most significant first.
inline std::string Hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kDigits[v & 0xf];
  return out;
}

}  // namespace moetrain::data

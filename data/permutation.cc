#include "data/permutation.h"

#include "core/status.h"
#include "data/hash.h"

namespace moetrain::data {

IndexPermutation::IndexPermutation(int64_t n, uint64_t key) : n_(n) {
  MT_CHECK_MSG(n >= 1, "IndexPermutation needs n >= 1, got ", n);
  int bits = 2;
  while (bits < 62 && (uint64_t{1} << bits) < static_cast<uint64_t>(n)) bits += 2;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  for (int r = 0; r < kRounds; ++r) round_keys_[r] = HashPair(key, static_cast<uint64_t>(r));
}

uint64_t IndexPermutation::Feistel(uint64_t x) const {
  uint64_t left = x >> half_bits_;
  uint64_t right = x & half_mask_;
  for (int r = 0; r < kRounds; ++r) {
    const uint64_t f = SplitMix64(right ^ round_keys_[r]) & half_mask_;
    const uint64_t next_right = left ^ f;
    left = right;
    right = next_right;
  }
  return (left << half_bits_) | right;
}

int64_t IndexPermutation::operator()(int64_t i) const {
  MT_CHECK_MSG(i >= 0 && i < n_, "index ", i, " outside [0, ", n_, ")");
  uint64_t x = static_cast<uint64_t>(i);
  do {
    x = Feistel(x);
  } while (x >= static_cast<uint64_t>(n_));
  return static_cast<int64_t>(x);
}

}  // namespace moetrain::data

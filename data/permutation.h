// A seeded pseudo-random permutation of [0, n), evaluated per index with O(1) memory.
//
// Construction: a 6-round balanced Feistel network on the smallest even number of bits b with
// 2^b >= n (round keys HashPair(key, round), round function SplitMix64), restricted to [0, n) by
// cycle walking (re-applying until the value falls below n; fewer than 4 steps on average since
// 2^b < 4n). Being a bijection, it visits every index exactly once, in an order that depends only
// on (n, key): no state, no cache, any evaluation order.
// Thread-safety: immutable after construction; operator() may be called concurrently.
#pragma once

#include <array>
#include <cstdint>

namespace moetrain::data {

class IndexPermutation {
 public:
  // REQUIRES: n >= 1.
  IndexPermutation(int64_t n, uint64_t key);
  // The image of i. REQUIRES: 0 <= i < n.
  int64_t operator()(int64_t i) const;
  int64_t size() const { return n_; }

 private:
  static constexpr int kRounds = 6;
  uint64_t Feistel(uint64_t x) const;
  int64_t n_;
  int half_bits_;
  uint64_t half_mask_;
  std::array<uint64_t, kRounds> round_keys_;
};

}  // namespace moetrain::data

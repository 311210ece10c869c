// Hyperslab helpers for snapshot records.
//
// A ZeRO-style flat shard [begin, end) of a row-major tensor is in general not one box: it is at
// most 2*rank-1 boxes (a partial first row of the innermost dims, whole rows, a partial last row),
// which FlatRangeToHyperslabs returns in increasing flat order. Writers use it to turn flat shards
// into ShardRecords whose data is the flat range cut at box boundaries.
#pragma once

#include <cstdint>
#include <vector>

namespace moetrain::checkpoint {

struct Hyperslab {
  std::vector<int64_t> offset;
  std::vector<int64_t> count;
};

// REQUIRES: 0 <= begin <= end <= product(shape). Boxes with count >= 1 in every dim whose volumes
// sum to end - begin, covering exactly the flat indices [begin, end), in order.
std::vector<Hyperslab> FlatRangeToHyperslabs(const std::vector<int64_t>& shape, int64_t begin,
                                             int64_t end);

}  // namespace moetrain::checkpoint

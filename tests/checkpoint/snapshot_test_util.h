// Test helpers for snapshot tests: a small tensor table with seeded values (the independent
// reference: whole tensors built directly), box extraction by plain index loops, and records
// for a simulated multi-rank layout.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/hyperslab.h"
#include "checkpoint/shard_file.h"
#include "checkpoint/snapshot_writer.h"
#include "tests/testing/test_util.h"

namespace moetrain::checkpoint::testing {

struct FullTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major
  int64_t step = 0;
};
using Table = std::map<std::string, FullTensor>;  // key "field|tensor"

inline std::string Key(const std::string& field, const std::string& tensor) {
  return field + "|" + tensor;
}

// Fields param (every tensor) and exp_avg (only the two weight matrices).
inline Table MakeTable(uint64_t seed) {
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"model.layers.0.w1.weight", {6, 5}},
      {"model.layers.0.experts.3.w2.weight", {2, 3, 4}},
      {"model.norm.weight", {7}},
      {"model.scalar", {}}};
  Table t;
  uint64_t s = seed;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    t[Key("param", name)] = {shape, moetrain::testing::RandomVector<float>(n, s++), 10 + (int64_t)s};
    if (shape.size() >= 2) {
      t[Key("exp_avg", name)] = {shape, moetrain::testing::RandomVector<float>(n, s++),
                                 t[Key("param", name)].step};
    }
  }
  return t;
}

inline SnapshotContents ContentsOf(const Table& t) {
  SnapshotContents c;
  for (const auto& [key, full] : t) {
    const std::string field = key.substr(0, key.find('|'));
    const std::string name = key.substr(key.find('|') + 1);
    c.tensors[name] = full.shape;
    if (field != "param") c.fields[field].push_back(name);
    else c.fields[field];  // param covers every tensor
  }
  return c;
}

// The box [offset, offset + count) of a row-major tensor, by index loops (the reference).
inline std::vector<float> Extract(const FullTensor& t, const std::vector<int64_t>& offset,
                                  const std::vector<int64_t>& count) {
  int64_t n = 1;
  for (int64_t c : count) n *= c;
  std::vector<float> out;
  out.reserve(n);
  std::vector<int64_t> idx(count.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, lin = 0;
    for (int d = static_cast<int>(count.size()) - 1; d >= 0; --d) {
      idx[d] = rem % count[d];
      rem /= count[d];
    }
    for (size_t d = 0; d < count.size(); ++d) lin = lin * t.shape[d] + offset[d] + idx[d];
    out.push_back(t.values[lin]);
  }
  return out;
}

// Rank `rank` of `world`'s records: 2-D tensors split along dim 0 (ranks beyond the rows get
// nothing), all others (1-D, 3-D, scalar) as ZeRO-style flat ranges cut into boxes.
inline std::vector<ShardRecord> RecordsFor(const Table& t, int rank, int world) {
  std::vector<ShardRecord> out;
  for (const auto& [key, full] : t) {
    const std::string field = key.substr(0, key.find('|'));
    const std::string name = key.substr(key.find('|') + 1);
    std::vector<Hyperslab> boxes;
    if (full.shape.size() == 2) {
      const int64_t rows = full.shape[0];
      const int64_t r0 = rows * rank / world, r1 = rows * (rank + 1) / world;
      if (r1 > r0) {
        Hyperslab h{std::vector<int64_t>(full.shape.size(), 0), full.shape};
        h.offset[0] = r0;
        h.count[0] = r1 - r0;
        boxes.push_back(h);
      }
    } else {
      const int64_t n = static_cast<int64_t>(full.values.size());
      boxes = FlatRangeToHyperslabs(full.shape, n * rank / world, n * (rank + 1) / world);
    }
    for (const Hyperslab& h : boxes) {
      out.push_back({field, name, full.shape, h.offset, h.count, Extract(full, h.offset, h.count),
                     full.step});
    }
  }
  return out;
}

}  // namespace moetrain::checkpoint::testing

// The flat parameter layout that ZeRO shards: the table's held trainable tensors grouped per decoder
// layer (group l = layer l) plus one group for the tensors outside the layers (group L: embedding,
// final norm, lm_head). A group is one flat buffer made of units:
//   unit 0       the group's dense tensors (table order, this tp rank's shapes), padded to a multiple
//                of dense_ways (the data-parallel size under ZeRO >= 1, else 1)
//   unit 1 + j   the j-th local routed expert's tensors (w1, w2, w3), padded to expert_ways (edp size)
// ZeRO rank r of a unit's group owns the contiguous chunk [r * padded / ways, (r + 1) * padded / ways)
// of the unit. Experts get units of their own so an expert that received no tokens can skip its
// gradient collective and its update (sparse expert updates). Padding elements are zero and never
// updated. Pure: no memory, no communication.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/param_table.h"

namespace moetrain::model {

struct ParamUnit {
  int expert = -1;        // -1: the group's dense tensors; else the routed expert index
  int64_t offset = 0;     // element offset of the unit in its group's flat buffer
  int64_t numel = 0;      // real elements (sum of its tensors' local numel)
  int64_t padded = 0;     // numel rounded up to a multiple of ways
  int ways = 1;           // how many ZeRO ranks share it (chunk = padded / ways)
  struct Tensor {
    const ParamSpec* spec;
    int64_t offset;       // element offset within the unit
    int64_t numel;        // local (tp shard) numel
  };
  std::vector<Tensor> tensors;
  int64_t chunk() const { return padded / ways; }
};

struct ParamGroup {
  int index = 0;          // 0..L-1 = layers, L = the non-layer tensors
  int layer = -1;         // -1 for the non-layer group
  int moe_index = -1;     // index among MoE layers (ExpertCounts order), -1 if none
  int64_t numel = 0;      // flat buffer length including padding
  std::vector<ParamUnit> units;
};

// held(spec): whether this rank holds the tensor (another expert-parallel rank's experts: false).
std::vector<ParamGroup> BuildParamGroups(const ModelConfig& config, const ParamTable& table,
                                         const std::function<bool(const ParamSpec&)>& held,
                                         int tp, int dense_ways, int expert_ways);

}  // namespace moetrain::model

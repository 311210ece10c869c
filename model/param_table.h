// The one parameter table: every parameter and buffer of the model, declared once.
//
// Each entry has its Hugging Face name (e.g. model.layers.3.block_sparse_moe.experts.5.w1.weight),
// global shape, kind (dense / expert / buffer), layer and expert index, and init rule. The model's
// arenas, the optimizer, gradient norm, (later) ZeRO sharding, checkpoints, export and import all walk
// this table; none keeps its own list. Order is deterministic (layer by layer, HF order).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace moetrain::model {

enum class ParamKind {
  kDense,   // replicated across expert-parallel ranks; trained
  kExpert,  // belongs to one routed expert; trained; sparse updates apply
  kBuffer,  // not trained by the optimizer (e.g. the aux-loss-free router bias); saved in checkpoints
};

enum class ParamInit { kNormal, kOnes, kZeros };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  ParamKind kind = ParamKind::kDense;
  ParamInit init = ParamInit::kNormal;
  int layer = -1;        // -1 for embeddings, final norm, lm_head
  int expert = -1;       // routed expert index for kExpert, else -1
  bool weight_decay = true;  // false for norm weights and buffers
  // Tensor-parallel split: -1 = replicated over the tp group (norms, router gate, buffers); 0 = rows
  // split (column-parallel q/k/v, gate/up, w1/w3, vocab-parallel embedding and lm_head); 1 =
  // columns split (row-parallel o_proj, down_proj, w2). TP rank r of t holds the contiguous block
  // [r * d / t, (r + 1) * d / t) of dimension tp_dim (d = shape[tp_dim]).
  int tp_dim = -1;

  int64_t numel() const;  // of the FULL tensor
  // The shape of one tp rank's shard (the full shape when tp_dim < 0 or tp == 1).
  // REQUIRES: shape[tp_dim] % tp == 0 (the model checks its config).
  std::vector<int64_t> LocalShape(int tp) const;
  int64_t LocalNumel(int tp) const;
  bool IsTpSplit(int tp) const { return tp > 1 && tp_dim >= 0; }
};

// Shard copies between a FULL row-major tensor and tp rank `rank`'s shard of it (spec.LocalShape).
// ExtractShard: shard = full[slice]; InsertShard: full[slice] = shard. Element type T.
template <typename T>
void ExtractShard(const ParamSpec& spec, int tp, int rank, const T* full, T* shard);
template <typename T>
void InsertShard(const ParamSpec& spec, int tp, int rank, const T* shard, T* full);

class ParamTable {
 public:
  static ParamTable Build(const ModelConfig& config);

  const std::vector<ParamSpec>& specs() const { return specs_; }
  size_t size() const { return specs_.size(); }
  // nullptr if absent.
  const ParamSpec* Find(const std::string& name) const;
  int64_t NumTrainable() const;  // total elements of dense + expert parameters

 private:
  std::vector<ParamSpec> specs_;
  std::map<std::string, size_t> index_;
};

// The HF names used by layers, in one place.
namespace names {
std::string Layer(int layer);                       // "model.layers.{i}."
std::string Expert(int layer, int expert, const char* w);  // ...block_sparse_moe.experts.{j}.{w}.weight
}  // namespace names

}  // namespace moetrain::model

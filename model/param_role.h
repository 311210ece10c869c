// The role of a parameter in the network (which part of the model it belongs to), derived from its
// ParamTable entry. Fine-tuning freezes parameters and scales learning rates per role; this is the
// one place that maps a ParamSpec to a role, so the optimizer, the recipe and the docs agree.
//
//   experts         routed experts (ParamKind::kExpert: ...block_sparse_moe.experts.{j}.w{1,2,3})
//   shared_experts  ...block_sparse_moe.shared_experts.w{1,2,3}
//   router          ...block_sparse_moe.gate.weight (and the aux-loss-free correction bias buffer)
//   attention       ...self_attn.{q,k,v,o}_proj
//   embeddings      model.embed_tokens, lm_head
//   norms           every RMSNorm weight (input / post-attention / final)
//   dense_mlp       the FFN of dense layers (first_k_dense_replace): ...mlp.{gate,up,down}_proj
// Pure: no state.
#pragma once

#include <array>
#include <string_view>

#include "model/param_table.h"

namespace moetrain::model {

enum class ParamRole {
  kExperts,
  kSharedExperts,
  kRouter,
  kAttention,
  kEmbeddings,
  kNorms,
  kDenseMlp
};

inline constexpr std::array<ParamRole, 7> kAllParamRoles = {
    ParamRole::kExperts,    ParamRole::kSharedExperts, ParamRole::kRouter,  ParamRole::kAttention,
    ParamRole::kEmbeddings, ParamRole::kNorms,         ParamRole::kDenseMlp};

// The role of `spec`. Every name the ParamTable declares has one; an unknown name aborts (a new
// tensor in ParamTable::Build must be given a role here).
ParamRole RoleOf(const ParamSpec& spec);

// "experts", "shared_experts", "router", "attention", "embeddings", "norms", "dense_mlp".
std::string_view ParamRoleName(ParamRole role);

// true for routed and shared experts (what `freeze_non_expert` keeps training).
inline bool IsExpertRole(ParamRole role) {
  return role == ParamRole::kExperts || role == ParamRole::kSharedExperts;
}

}  // namespace moetrain::model

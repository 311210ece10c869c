#include "model/param_role.h"

#include <string>

#include "core/status.h"

namespace moetrain::model {
namespace {

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

ParamRole RoleOf(const ParamSpec& spec) {
  const std::string& n = spec.name;
  if (spec.kind == ParamKind::kExpert) return ParamRole::kExperts;
  if (Contains(n, "block_sparse_moe.shared_experts.")) return ParamRole::kSharedExperts;
  if (Contains(n, "block_sparse_moe.gate.")) return ParamRole::kRouter;
  if (Contains(n, "self_attn.")) return ParamRole::kAttention;
  if (Contains(n, "embed_tokens.") || n == "lm_head.weight") return ParamRole::kEmbeddings;
  if (Contains(n, "norm.weight") || Contains(n, "layernorm.weight")) return ParamRole::kNorms;
  if (Contains(n, ".mlp.")) return ParamRole::kDenseMlp;
  MT_CHECK_MSG(false, "param_role: no role for parameter ", n, " (add it to model/param_role.cc)");
  return ParamRole::kAttention;
}

std::string_view ParamRoleName(ParamRole role) {
  switch (role) {
    case ParamRole::kExperts:
      return "experts";
    case ParamRole::kSharedExperts:
      return "shared_experts";
    case ParamRole::kRouter:
      return "router";
    case ParamRole::kAttention:
      return "attention";
    case ParamRole::kEmbeddings:
      return "embeddings";
    case ParamRole::kNorms:
      return "norms";
    case ParamRole::kDenseMlp:
      return "dense_mlp";
  }
  return "unknown";
}

}  // namespace moetrain::model

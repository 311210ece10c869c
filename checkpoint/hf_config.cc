#include "checkpoint/hf_config.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

using nlohmann::json;

absl::Status FieldError(const std::string& path, const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": field '", field, "': ", why));
}

template <typename V>
absl::Status Read(const json& j, const std::string& path, const char* field, V* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  try {
    *out = it->get<V>();
  } catch (const json::exception& e) {
    return FieldError(path, field, absl::StrCat("wrong type (", it->type_name(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<model::ModelConfig> ReadHfConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open HF config"));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  std::string model_type;
  RETURN_IF_ERROR(Read(j, path, "model_type", &model_type));
  if (model_type != "mixtral")
    return FieldError(path, "model_type",
                      absl::StrCat("'", model_type, "' is not supported (only mixtral)"));
  for (const char* unsupported : {"sliding_window", "rope_scaling"}) {
    auto it = j.find(unsupported);
    if (it != j.end() && !it->is_null())
      return FieldError(path, unsupported, "is set, but moetrain does not implement it");
  }
  std::string act = "silu";
  RETURN_IF_ERROR(Read(j, path, "hidden_act", &act));
  if (act != "silu") return FieldError(path, "hidden_act", absl::StrCat("'", act, "' (only silu)"));

  model::ModelConfig c;
  RETURN_IF_ERROR(Read(j, path, "vocab_size", &c.vocab_size));
  RETURN_IF_ERROR(Read(j, path, "hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(Read(j, path, "intermediate_size", &c.intermediate_size));
  RETURN_IF_ERROR(Read(j, path, "num_hidden_layers", &c.num_hidden_layers));
  RETURN_IF_ERROR(Read(j, path, "num_attention_heads", &c.num_attention_heads));
  RETURN_IF_ERROR(Read(j, path, "num_key_value_heads", &c.num_key_value_heads));
  RETURN_IF_ERROR(Read(j, path, "head_dim", &c.head_dim));
  RETURN_IF_ERROR(Read(j, path, "num_local_experts", &c.num_local_experts));
  RETURN_IF_ERROR(Read(j, path, "num_experts_per_tok", &c.num_experts_per_tok));
  RETURN_IF_ERROR(Read(j, path, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(Read(j, path, "rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(Read(j, path, "max_position_embeddings", &c.max_position_embeddings));
  RETURN_IF_ERROR(Read(j, path, "tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(Read(j, path, "router_aux_loss_coef", &c.router_aux_loss_coef));
  RETURN_IF_ERROR(Read(j, path, "initializer_range", &c.initializer_range));
  // moetrain extensions (written by our exporter only where the architecture allows them).
  RETURN_IF_ERROR(Read(j, path, "num_shared_experts", &c.num_shared_experts));
  RETURN_IF_ERROR(Read(j, path, "moe_intermediate_size", &c.moe_intermediate_size));
  RETURN_IF_ERROR(Read(j, path, "first_k_dense_replace", &c.first_k_dense_replace));
  RETURN_IF_ERROR(Read(j, path, "scoring_func", &c.scoring_func));
  RETURN_IF_ERROR(Read(j, path, "norm_topk_prob", &c.norm_topk_prob));
  RETURN_IF_ERROR(Read(j, path, "router_z_loss_coef", &c.router_z_loss_coef));
  RETURN_IF_ERROR(Read(j, path, "capacity_factor", &c.capacity_factor));
  absl::Status valid = c.Validate();
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", valid.message()));
  return c;
}

}  // namespace moetrain::checkpoint

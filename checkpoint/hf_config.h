// Hugging Face config.json <-> ModelConfig.
//
// ReadHfConfig accepts model_type "mixtral" (ReadHfConfigAny also "qwen2_moe") (and moetrain's own extension fields, which HF ignores).
// Features moetrain cannot reproduce exactly are refused with an error naming the field and the file:
// sliding_window, rope_scaling, hidden_act other than silu. Fields absent from the file keep the
// ModelConfig default. The result is validated.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "model/config.h"

namespace moetrain::checkpoint {

absl::StatusOr<model::ModelConfig> ReadHfConfig(const std::string& path);

// Accepts model_type "mixtral" (as ReadHfConfig) and "qwen2_moe" (transformers' Qwen2MoeConfig; absent
// fields take ITS defaults: norm_topk_prob false, rms_norm_eps 1e-6). Qwen2-MoE maps to moetrain as
// num_experts -> num_local_experts, shared_expert_intermediate_size = num_shared_experts *
// moe_intermediate_size (a multiple, or 0 for none), mlp_only_layers = [0, k) -> first_k_dense_replace k.
// Refused, naming the field: decoder_sparse_step != 1, mlp_only_layers not a prefix of the layers,
// use_sliding_window true, rope_scaling, hidden_act other than silu. The weights' zero-bias and
// zero-gate requirements are checked by HfParamSource.
absl::StatusOr<model::ModelConfig> ReadHfConfigAny(const std::string& path);

}  // namespace moetrain::checkpoint

// Tensor naming of the Hugging Face architectures moetrain exports to and imports from.
//
// moetrain's ParamTable uses Mixtral names (model/param_table.h), so for model_type "mixtral" every
// name maps to itself. For "qwen2_moe" (transformers' Qwen2MoeForCausalLM) the MoE block is renamed:
//   block_sparse_moe.gate.weight               <-> mlp.gate.weight
//   block_sparse_moe.experts.j.{w1,w3,w2}      <-> mlp.experts.j.{gate,up,down}_proj
//   block_sparse_moe.shared_experts.{w1,w3,w2} <-> mlp.shared_expert.{gate,up,down}_proj
// Qwen2-MoE also has tensors moetrain lacks, each fixed so the two models compute the same function:
//   self_attn.{q,k,v}_proj.bias = 0, and mlp.shared_expert_gate.weight = 0 (1, C): its output is
//   sigmoid(0) * shared(x) = shared(x) / 2, so the exported shared down_proj is 2x moetrain's w2
//   (exact in float: a power-of-two scale). Dense layers (mlp.{gate,up,down}_proj) keep their names.
#pragma once

#include <string>

namespace moetrain::checkpoint {

enum class HfNaming { kMixtral, kQwen2Moe };

const char* HfModelType(HfNaming naming);  // "mixtral" / "qwen2_moe"

// moetrain (ParamTable) name -> the name in the HF folder.
std::string ToHfName(HfNaming naming, const std::string& table_name);
// Inverse of ToHfName; "" for names with no moetrain counterpart (the extras above, or unknown).
std::string FromHfName(HfNaming naming, const std::string& hf_name);
// The factor the HF tensor carries relative to moetrain's: 2 for qwen2_moe's shared down_proj, else 1.
float HfScale(HfNaming naming, const std::string& table_name);

// Qwen2-MoE's extra tensor names of layer `layer` (they must be zero to be representable).
std::string QwenQkvBiasName(int layer, char which);  // which: 'q', 'k' or 'v'
std::string QwenSharedGateName(int layer);

}  // namespace moetrain::checkpoint

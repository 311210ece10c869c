#include "model/param_table.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace moetrain::model {

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace names {
std::string Layer(int layer) { return absl::StrCat("model.layers.", layer, "."); }
std::string Expert(int layer, int expert, const char* w) {
  return absl::StrCat(Layer(layer), "block_sparse_moe.experts.", expert, ".", w, ".weight");
}
}  // namespace names

ParamTable ParamTable::Build(const ModelConfig& c) {
  ParamTable t;
  auto add = [&t](std::string name, std::vector<int64_t> shape, ParamKind kind, ParamInit init,
                  int layer, int expert) {
    ParamSpec s{std::move(name), std::move(shape), kind, init, layer, expert,
                init == ParamInit::kNormal && kind != ParamKind::kBuffer};
    t.index_[s.name] = t.specs_.size();
    t.specs_.push_back(std::move(s));
  };
  const int64_t C = c.hidden_size, D = c.HeadDim();
  const int64_t q_out = c.num_attention_heads * D, kv_out = c.num_key_value_heads * D;
  add("model.embed_tokens.weight", {c.vocab_size, C}, ParamKind::kDense, ParamInit::kNormal, -1, -1);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = names::Layer(l);
    add(p + "input_layernorm.weight", {C}, ParamKind::kDense, ParamInit::kOnes, l, -1);
    add(p + "self_attn.q_proj.weight", {q_out, C}, ParamKind::kDense, ParamInit::kNormal, l, -1);
    add(p + "self_attn.k_proj.weight", {kv_out, C}, ParamKind::kDense, ParamInit::kNormal, l, -1);
    add(p + "self_attn.v_proj.weight", {kv_out, C}, ParamKind::kDense, ParamInit::kNormal, l, -1);
    add(p + "self_attn.o_proj.weight", {C, q_out}, ParamKind::kDense, ParamInit::kNormal, l, -1);
    add(p + "post_attention_layernorm.weight", {C}, ParamKind::kDense, ParamInit::kOnes, l, -1);
    if (!c.IsMoeLayer(l)) {
      const int64_t I = c.intermediate_size;
      add(p + "mlp.gate_proj.weight", {I, C}, ParamKind::kDense, ParamInit::kNormal, l, -1);
      add(p + "mlp.up_proj.weight", {I, C}, ParamKind::kDense, ParamInit::kNormal, l, -1);
      add(p + "mlp.down_proj.weight", {C, I}, ParamKind::kDense, ParamInit::kNormal, l, -1);
      continue;
    }
    const int64_t E = c.num_local_experts, F = c.ExpertWidth();
    add(p + "block_sparse_moe.gate.weight", {E, C}, ParamKind::kDense, ParamInit::kNormal, l, -1);
    if (c.balancing == "bias")
      add(p + "block_sparse_moe.gate.e_score_correction_bias", {E}, ParamKind::kBuffer,
          ParamInit::kZeros, l, -1);
    for (int e = 0; e < E; ++e) {
      add(names::Expert(l, e, "w1"), {F, C}, ParamKind::kExpert, ParamInit::kNormal, l, e);
      add(names::Expert(l, e, "w2"), {C, F}, ParamKind::kExpert, ParamInit::kNormal, l, e);
      add(names::Expert(l, e, "w3"), {F, C}, ParamKind::kExpert, ParamInit::kNormal, l, e);
    }
    if (c.num_shared_experts > 0) {
      const int64_t S = c.SharedWidth();
      add(p + "block_sparse_moe.shared_experts.w1.weight", {S, C}, ParamKind::kDense,
          ParamInit::kNormal, l, -1);
      add(p + "block_sparse_moe.shared_experts.w2.weight", {C, S}, ParamKind::kDense,
          ParamInit::kNormal, l, -1);
      add(p + "block_sparse_moe.shared_experts.w3.weight", {S, C}, ParamKind::kDense,
          ParamInit::kNormal, l, -1);
    }
  }
  add("model.norm.weight", {C}, ParamKind::kDense, ParamInit::kOnes, -1, -1);
  if (!c.tie_word_embeddings)
    add("lm_head.weight", {c.vocab_size, C}, ParamKind::kDense, ParamInit::kNormal, -1, -1);
  return t;
}

const ParamSpec* ParamTable::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &specs_[it->second];
}

int64_t ParamTable::NumTrainable() const {
  int64_t n = 0;
  for (const auto& s : specs_)
    if (s.kind != ParamKind::kBuffer) n += s.numel();
  return n;
}

}  // namespace moetrain::model

#include "model/param_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace moetrain::model {

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<int64_t> ParamSpec::LocalShape(int tp) const {
  std::vector<int64_t> local = shape;
  if (IsTpSplit(tp)) {
    MT_CHECK_MSG(local[tp_dim] % tp == 0, name, ": dimension ", tp_dim, " (", local[tp_dim],
                 ") does not split over tp = ", tp);
    local[tp_dim] /= tp;
  }
  return local;
}

int64_t ParamSpec::LocalNumel(int tp) const {
  int64_t n = 1;
  for (int64_t d : LocalShape(tp)) n *= d;
  return n;
}

namespace {
// Copies between full and shard: rows = product of dims before tp_dim, the shard holds `inner`
// contiguous elements of each outer row at offset rank * inner.
template <typename T, bool kExtract>
void CopyShard(const ParamSpec& spec, int tp, int rank, T* full, T* shard) {
  if (!spec.IsTpSplit(tp)) {
    const int64_t n = spec.numel();
    if (kExtract) std::copy(full, full + n, shard); else std::copy(shard, shard + n, full);
    return;
  }
  int64_t outer = 1, inner_full = 1;
  for (int d = 0; d < spec.tp_dim; ++d) outer *= spec.shape[d];
  for (size_t d = spec.tp_dim; d < spec.shape.size(); ++d) inner_full *= spec.shape[d];
  const int64_t inner = inner_full / tp;
  for (int64_t o = 0; o < outer; ++o) {
    T* f = full + o * inner_full + rank * inner;
    T* s = shard + o * inner;
    if (kExtract) std::copy(f, f + inner, s); else std::copy(s, s + inner, f);
  }
}
}  // namespace

template <typename T>
void ExtractShard(const ParamSpec& spec, int tp, int rank, const T* full, T* shard) {
  CopyShard<T, true>(spec, tp, rank, const_cast<T*>(full), shard);
}
template <typename T>
void InsertShard(const ParamSpec& spec, int tp, int rank, const T* shard, T* full) {
  CopyShard<T, false>(spec, tp, rank, full, const_cast<T*>(shard));
}
template void ExtractShard<float>(const ParamSpec&, int, int, const float*, float*);
template void ExtractShard<double>(const ParamSpec&, int, int, const double*, double*);
template void InsertShard<float>(const ParamSpec&, int, int, const float*, float*);
template void InsertShard<double>(const ParamSpec&, int, int, const double*, double*);

namespace names {
std::string Layer(int layer) { return absl::StrCat("model.layers.", layer, "."); }
std::string Expert(int layer, int expert, const char* w) {
  return absl::StrCat(Layer(layer), "block_sparse_moe.experts.", expert, ".", w, ".weight");
}
}  // namespace names

namespace {
bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
// Megatron-style split of each matrix (see ParamSpec::tp_dim).
int TpDim(const std::string& name) {
  for (const char* col : {"embed_tokens.weight", "lm_head.weight", "q_proj.weight", "k_proj.weight",
                          "v_proj.weight", "gate_proj.weight", "up_proj.weight", "w1.weight",
                          "w3.weight"})
    if (EndsWith(name, col)) return 0;
  for (const char* row : {"o_proj.weight", "down_proj.weight", "w2.weight"})
    if (EndsWith(name, row)) return 1;
  return -1;
}
}  // namespace

ParamTable ParamTable::Build(const ModelConfig& c) {
  ParamTable t;
  auto add = [&t](std::string name, std::vector<int64_t> shape, ParamKind kind, ParamInit init,
                  int layer, int expert) {
    ParamSpec s{std::move(name), std::move(shape), kind, init, layer, expert,
                init == ParamInit::kNormal && kind != ParamKind::kBuffer};
    s.tp_dim = TpDim(s.name);
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

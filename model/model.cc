#include "model/model.h"

#include <omp.h>

#include <cmath>
#include <random>
#include <set>

#include "core/phase_timer.h"
#include "kernels/cast.h"
#include "kernels/cross_entropy.h"
#include "kernels/distill_loss.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace moetrain::model {
namespace {

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

bool IsOutputProjection(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("o_proj.weight") || ends_with("w2.weight") || ends_with("down_proj.weight");
}

}  // namespace

template <typename T>
absl::StatusOr<std::unique_ptr<Model<T>>> Model<T>::Create(const ModelConfig& config, int64_t batch,
                                                           int64_t seq, int num_threads,
                                                           const ModelParallel& parallel,
                                                           const ModelOptions& options) {
  RETURN_IF_ERROR(config.Validate());
  if (batch <= 0 || seq <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("model: batch and seq must be > 0, got ", batch, " and ", seq));
  if (seq > config.max_position_embeddings)
    return absl::InvalidArgumentError(absl::StrCat("model: seq ", seq,
                                                   " exceeds max_position_embeddings ",
                                                   config.max_position_embeddings));
  std::unique_ptr<Model<T>> m(new Model<T>());
  m->config_ = config;
  m->options_ = options;
  m->zero_stage_ = parallel.zero_stage;
  if (parallel.zero_stage < 0 || parallel.zero_stage > 3)
    return absl::InvalidArgumentError(absl::StrCat("model: ZeRO stage must be 0, 1, 2 or 3, got ",
                                                   parallel.zero_stage));
  if (options.compute_dtype != DType::kF32 && options.compute_dtype != DType::kBF16 &&
      options.compute_dtype != DType::kF16)
    return absl::InvalidArgumentError("model: compute dtype must be f32, bf16 or f16");
  if (options.checkpoint_every < 1)
    return absl::InvalidArgumentError(absl::StrCat("model: checkpoint_every must be >= 1, got ",
                                                   options.checkpoint_every));
  m->table_ = ParamTable::Build(config);
  m->batch_ = batch;
  m->seq_ = seq;
  m->n_ = batch * seq;
  m->parallel_ = parallel;
  m->dp_size_ = parallel.dp != nullptr ? parallel.dp->size() : 1;
  m->ep_size_ = parallel.ep != nullptr ? parallel.ep->size() : 1;
  m->ep_rank_ = parallel.ep != nullptr ? parallel.ep->rank() : 0;
  if (config.num_local_experts % m->ep_size_ != 0)
    return absl::InvalidArgumentError(absl::StrCat("model.num_local_experts (", config.num_local_experts,
                                                   ") is not divisible by the expert-parallel size ",
                                                   m->ep_size_));
  m->local_experts_ = config.num_local_experts / m->ep_size_;
  m->tp_size_ = parallel.tp != nullptr ? parallel.tp->size() : 1;
  m->tp_rank_ = parallel.tp != nullptr ? parallel.tp->rank() : 0;
  m->tp_ = m->tp_size_ > 1 ? parallel.tp : nullptr;
  if (m->tp_size_ > 1) {
    const int64_t t = m->tp_size_;
    auto need = [&](const char* key, int64_t value) -> absl::Status {
      if (value % t == 0) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat("model.", key, " (", value,
                                                     ") is not divisible by the tensor-parallel size ", t));
    };
    RETURN_IF_ERROR(need("num_attention_heads", config.num_attention_heads));
    RETURN_IF_ERROR(need("num_key_value_heads", config.num_key_value_heads));
    RETURN_IF_ERROR(need("vocab_size", config.vocab_size));
    if (config.first_k_dense_replace > 0 || config.NumMoeLayers() < config.num_hidden_layers)
      RETURN_IF_ERROR(need("intermediate_size", config.intermediate_size));
    if (config.NumMoeLayers() > 0) {
      RETURN_IF_ERROR(need("moe_intermediate_size (expert width)", config.ExpertWidth()));
      RETURN_IF_ERROR(need("num_shared_experts * expert width", config.SharedWidth()));
    }
  }
  m->v_local_ = config.vocab_size / m->tp_size_;
  m->v_begin_ = m->tp_rank_ * m->v_local_;
  RETURN_IF_ERROR(m->Plan(num_threads > 0 ? num_threads : omp_get_max_threads()));
  return m;
}

template <typename T>
absl::Status Model<T>::Plan(int num_threads) {
  const ModelConfig& c = config_;
  const DType t = DTypeOf<T>::value;
  const int64_t n = n_, C = c.hidden_size, Vl = v_local_, L = c.num_hidden_layers;
  const int tp = tp_size_;

  // Parameters and gradients: flat per parameter group (model/param_groups.h), so ZeRO shards and
  // collectives work on contiguous units. Buffers (router bias) are replicated f32.
  std::vector<TensorSpec> bspecs;
  for (const ParamSpec& s : table_.specs()) {
    if (s.kind == ParamKind::kBuffer)
      bspecs.push_back({s.name, Shape(s.LocalShape(tp)), DType::kF32, "buffers"});
  }
  ASSIGN_OR_RETURN(buffers_, Arena::Create(bspecs));
  const int dense_ways = zero_stage_ >= 1 ? dp_size_ : 1;
  const int expert_ways =
      zero_stage_ >= 1 && parallel_.edp != nullptr ? parallel_.edp->size() : 1;
  groups_ = BuildParamGroups(
      c, table_,
      [this](const ParamSpec& s) { return s.kind != ParamKind::kExpert || IsLocalExpert(s.expert); },
      tp, dense_ways, expert_ways);
  // Stage 3 keeps two rotating layer buffers for parameters, stage >= 2 for gradients (the layer
  // being computed and the one being prefetched / reduced); the non-layer group is always resident.
  int64_t max_layer = 0;
  for (int64_t l = 0; l < L; ++l) max_layer = std::max(max_layer, groups_[l].numel);
  auto plan_buffers = [&](bool rotating, const char* kind, const char* category,
                          Arena* arena, std::vector<T*>* ptrs) -> absl::Status {
    std::vector<TensorSpec> specs;
    if (rotating) {
      specs.push_back({absl::StrCat(kind, ".top"), Shape({groups_[L].numel}), t, category});
      if (L > 0) {
        specs.push_back({absl::StrCat(kind, ".rot0"), Shape({max_layer}), t, category});
        specs.push_back({absl::StrCat(kind, ".rot1"), Shape({max_layer}), t, category});
      }
    } else {
      for (const ParamGroup& g : groups_)
        specs.push_back({absl::StrCat(kind, ".g", g.index), Shape({g.numel}), t, category});
    }
    ASSIGN_OR_RETURN(*arena, Arena::Create(specs));
    ptrs->assign(L + 1, nullptr);
    for (const ParamGroup& g : groups_) {
      const std::string slot = !rotating ? absl::StrCat(kind, ".g", g.index)
                               : g.layer < 0 ? absl::StrCat(kind, ".top")
                                             : absl::StrCat(kind, ".rot", g.index % 2);
      (*ptrs)[g.index] = arena->Get(slot).template as<T>();
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(plan_buffers(zero_stage_ >= 3, "params",
                               zero_stage_ >= 3 ? "gathered_params" : "params", &params_,
                               &group_params_));
  RETURN_IF_ERROR(plan_buffers(zero_stage_ >= 2, "grads",
                               zero_stage_ >= 2 ? "gathered_grads" : "grads", &grads_,
                               &group_grads_));
  for (const ParamGroup& g : groups_) {
    for (const ParamUnit& u : g.units) {
      for (const ParamUnit::Tensor& tensor : u.tensors) {
        const Shape shape(tensor.spec->LocalShape(tp));
        const int64_t at = u.offset + tensor.offset;
        param_views_.emplace(tensor.spec->name, TensorView(group_params_[g.index] + at, shape, t));
        grad_views_.emplace(tensor.spec->name, TensorView(group_grads_[g.index] + at, shape, t));
      }
    }
  }

  // Activations (saved for backward) and workspace (shared by all layers during backward).
  std::vector<TensorSpec> aspecs, wspecs;
  SlotDeclarer top(&aspecs, "", "activations");
  for (int64_t l = 0; l <= L; ++l) top.Add(absl::StrCat("x.", l), {n, C}, t);
  top.Add("tokens", {n}, DType::kI32);
  top.Add("targets", {n}, DType::kI32);
  top.Add("xf", {n, C}, t);
  top.Add("rstd_f", {n}, t);
  top.Add("logits", {n, Vl}, t);
  top.Add("ce_losses", {n}, t);
  top.Add("ce_lse", {n}, t);
  top.Add("rope_cos", {seq_, c.HeadDim() / 2}, t);
  top.Add("rope_sin", {seq_, c.HeadDim() / 2}, t);
  // Per layer, or once per shared checkpoint set (several layers map to one prefix).
  bool any_dense = false, any_shared = false;
  std::set<std::string> declared;
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = LayerSlotPrefix(l), pa = AttentionSlotPrefix(l);
    if (declared.insert(pa).second) {
      SlotDeclarer attn(&aspecs, pa, "activations");
      AttentionBlock<T>::DeclareActivations(&attn, c, batch_, seq_, tp);
    }
    any_dense |= !c.IsMoeLayer(l);
    any_shared |= c.IsMoeLayer(l) && c.num_shared_experts > 0;
    if (!declared.insert(p).second) continue;
    SlotDeclarer layer(&aspecs, p, "activations");
    layer.Add("h", {n, C}, t);
    layer.Add("hn", {n, C}, t);
    layer.Add("rstd2", {n}, t);
    if (c.IsMoeLayer(l)) {
      SlotDeclarer moe(&aspecs, p + "moe.", "activations");
      MoeBlock<T>::DeclareActivations(&moe, c, n, ep_size_, tp);
      if (c.num_shared_experts > 0) {
        SlotDeclarer shared(&aspecs, p + "shared.", "activations");
        MlpBlock<T>::DeclareActivations(&shared, n, c.SharedWidth() / tp);
      }
    } else {
      SlotDeclarer mlp(&aspecs, p + "mlp.", "activations");
      MlpBlock<T>::DeclareActivations(&mlp, n, c.intermediate_size / tp);
    }
  }
  SlotDeclarer ws(&wspecs, "ws.", "workspace");
  ws.Add("dlogits", {n, Vl}, t);
  for (const char* s : {"dcur", "dnext", "dffn", "dh", "ffn_out"}) ws.Add(s, {n, C}, t);
  SlotDeclarer ws_attn(&wspecs, "ws.attn.", "workspace");
  AttentionBlock<T>::DeclareWorkspace(&ws_attn, c, batch_, seq_, num_threads, tp);
  if (c.NumMoeLayers() > 0) {
    SlotDeclarer ws_moe(&wspecs, "ws.moe.", "workspace");
    MoeBlock<T>::DeclareWorkspace(&ws_moe, c, n, ep_size_, tp);
  }
  if (any_shared) {
    SlotDeclarer ws_shared(&wspecs, "ws.shared.", "workspace");
    MlpBlock<T>::DeclareWorkspace(&ws_shared, n, c.SharedWidth() / tp);
  }
  if (any_dense) {
    SlotDeclarer ws_mlp(&wspecs, "ws.mlp.", "workspace");
    MlpBlock<T>::DeclareWorkspace(&ws_mlp, n, c.intermediate_size / tp);
  }
  if (tp_ != nullptr) {
    ce_max_.assign(n, 0.0);
    ce_sums_.assign(2 * n, 0.0);
  }
  ASSIGN_OR_RETURN(acts_, Arena::Create(aspecs));
  ASSIGN_OR_RETURN(ws_, Arena::Create(wspecs));

  // Bind.
  SlotBinder a(acts_, ""), w(ws_, "ws.");
  for (int64_t l = 0; l <= L; ++l) x_.push_back(a.Get<T>(absl::StrCat("x.", l)));
  tokens_ = a.Get<int32_t>("tokens");
  targets_ = a.Get<int32_t>("targets");
  xf_ = a.Get<T>("xf");
  rstd_f_ = a.Get<T>("rstd_f");
  logits_ = a.Get<T>("logits");
  ce_losses_ = a.Get<T>("ce_losses");
  ce_lse_ = a.Get<T>("ce_lse");
  T* rope_cos = a.Get<T>("rope_cos");
  T* rope_sin = a.Get<T>("rope_sin");
  kernels::RopeTable(rope_cos, rope_sin, seq_, c.HeadDim(), c.rope_theta);
  dlogits_ = w.Get<T>("dlogits");
  dcur_ = w.Get<T>("dcur");
  dnext_ = w.Get<T>("dnext");
  dffn_ = w.Get<T>("dffn");
  dh_ = w.Get<T>("dh");
  ffn_out_ = w.Get<T>("ffn_out");

  auto P = [this](const std::string& name) { return param_views_.at(name).template as<T>(); };
  auto G = [this](const std::string& name) { return grad_views_.at(name).template as<T>(); };
  embed_ = P("model.embed_tokens.weight");
  dembed_ = G("model.embed_tokens.weight");
  final_norm_ = P("model.norm.weight");
  dfinal_norm_ = G("model.norm.weight");
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  head_ = P(head);
  dhead_ = G(head);

  layers_.resize(L);
  // A checkpointed layer must be recomputed in Backward unless no later layer (in forward order)
  // shares its slot set: backward runs last-to-first, so that layer's slots still hold its forward.
  {
    std::set<std::string> seen;
    for (int64_t l = L - 1; l >= 0; --l) {
      if (!IsCheckpointed(l)) continue;
      const std::string set = options_.checkpointing == ActivationCheckpointing::kSelective
                                  ? AttentionSlotPrefix(l)
                                  : LayerSlotPrefix(l);
      layers_[l].recompute = !seen.insert(set).second;
    }
  }
  for (int64_t l = 0; l < L; ++l) {
    Layer& ly = layers_[l];
    const std::string p = names::Layer(static_cast<int>(l));
    const std::string s = LayerSlotPrefix(l);
    ly.h = a.Get<T>(s + "h");
    ly.hn = a.Get<T>(s + "hn");
    ly.rstd2 = a.Get<T>(s + "rstd2");
    ly.norm2 = P(p + "post_attention_layernorm.weight");
    ly.dnorm2 = G(p + "post_attention_layernorm.weight");
    ly.attn = AttentionBlock<T>(c, batch_, seq_, num_threads, tp_);
    typename AttentionBlock<T>::Weights aw{
        P(p + "input_layernorm.weight"), P(p + "self_attn.q_proj.weight"),
        P(p + "self_attn.k_proj.weight"), P(p + "self_attn.v_proj.weight"),
        P(p + "self_attn.o_proj.weight"), G(p + "input_layernorm.weight"),
        G(p + "self_attn.q_proj.weight"), G(p + "self_attn.k_proj.weight"),
        G(p + "self_attn.v_proj.weight"), G(p + "self_attn.o_proj.weight")};
    ly.attn.Bind(aw, rope_cos, rope_sin, SlotBinder(acts_, AttentionSlotPrefix(l)),
                 SlotBinder(ws_, "ws.attn."));
    ly.attn.set_store_dtype(options_.compute_dtype);
    ly.is_moe = c.IsMoeLayer(l);
    if (!ly.is_moe) {
      ly.mlp = MlpBlock<T>(n, C, c.intermediate_size / tp);
      typename MlpBlock<T>::Weights mw{P(p + "mlp.gate_proj.weight"), P(p + "mlp.down_proj.weight"),
                                       P(p + "mlp.up_proj.weight"),   G(p + "mlp.gate_proj.weight"),
                                       G(p + "mlp.down_proj.weight"), G(p + "mlp.up_proj.weight")};
      ly.mlp.Bind(mw, SlotBinder(acts_, s + "mlp."), SlotBinder(ws_, "ws.mlp."));
      ly.mlp.set_store_dtype(options_.compute_dtype);
      continue;
    }
    parallel::ExpertDispatcher* disp = nullptr;
    if (ep_size_ > 1) {
      parallel::ExpertDispatcherOptions o;
      o.num_experts = c.num_local_experts;
      o.hidden = C;
      o.max_local_rows = n * c.num_experts_per_tok;
      o.dtype = DTypeOf<T>::value;
      o.mode = parallel_.dispatch;
      o.ranks_per_node = parallel_.ranks_per_node;
      ASSIGN_OR_RETURN(parallel::ExpertDispatcher d, parallel::ExpertDispatcher::Create(*parallel_.ep, o));
      dispatchers_.push_back(std::make_unique<parallel::ExpertDispatcher>(std::move(d)));
      disp = dispatchers_.back().get();
    }
    ly.moe = MoeBlock<T>(c, n, disp, tp_);
    typename MoeBlock<T>::Weights mw;
    mw.gate = P(p + "block_sparse_moe.gate.weight");
    mw.dgate = G(p + "block_sparse_moe.gate.weight");
    const std::string bias_name = p + "block_sparse_moe.gate.e_score_correction_bias";
    ly.bias = buffers_.Has(bias_name) ? buffers_.Get(bias_name).as<float>() : nullptr;
    mw.bias = ly.bias;
    for (int e = 0; e < c.num_local_experts; ++e) {
      if (!IsLocalExpert(e)) continue;
      const int li = static_cast<int>(l);
      mw.w1.push_back(P(names::Expert(li, e, "w1")));
      mw.w2.push_back(P(names::Expert(li, e, "w2")));
      mw.w3.push_back(P(names::Expert(li, e, "w3")));
      mw.dw1.push_back(G(names::Expert(li, e, "w1")));
      mw.dw2.push_back(G(names::Expert(li, e, "w2")));
      mw.dw3.push_back(G(names::Expert(li, e, "w3")));
    }
    if (c.num_shared_experts > 0) {
      const std::string sp = p + "block_sparse_moe.shared_experts.";
      mw.has_shared = true;
      mw.shared = {P(sp + "w1.weight"), P(sp + "w2.weight"), P(sp + "w3.weight"),
                   G(sp + "w1.weight"), G(sp + "w2.weight"), G(sp + "w3.weight")};
    }
    ly.moe.Bind(std::move(mw), SlotBinder(acts_, s + "moe."), SlotBinder(ws_, "ws.moe."),
                SlotBinder(acts_, s + "shared."), SlotBinder(ws_, "ws.shared."));
    ly.moe.set_store_dtype(options_.compute_dtype);
  }
  counts_.assign(c.NumMoeLayers(), std::vector<int64_t>(c.num_local_experts, 0));
  // The last element is the distillation KL sum (0 without a teacher).
  reduce_buf_.assign(3 + 2 * c.num_local_experts + c.NumMoeLayers() * c.num_local_experts + 1, 0.0);
  aux_counts_.assign(c.num_local_experts, 0.0);
  aux_prob_sum_.assign(c.num_local_experts, 0.0);
  aux_coef_.assign(c.num_local_experts, 0.0);
  recompute_aux_counts_.assign(c.num_local_experts, 0.0);
  recompute_aux_prob_sum_.assign(c.num_local_experts, 0.0);
  return absl::OkStatus();
}

// Full checkpointing: checkpointed MoE layers share "ckpt.moe.", dense ones "ckpt.dense." (their
// slot shapes differ). Only x_l stays per layer.
template <typename T>
std::string Model<T>::LayerSlotPrefix(int64_t layer) const {
  if (options_.checkpointing == ActivationCheckpointing::kFull && IsCheckpointed(layer))
    return config_.IsMoeLayer(layer) ? "ckpt.moe." : "ckpt.dense.";
  return absl::StrCat("L", layer, ".");
}

// Selective checkpointing: only the attention internals of checkpointed layers share one set
// (attention shapes are the same in every layer).
template <typename T>
std::string Model<T>::AttentionSlotPrefix(int64_t layer) const {
  if (options_.checkpointing == ActivationCheckpointing::kSelective && IsCheckpointed(layer))
    return "ckpt.attn.";
  return LayerSlotPrefix(layer) + "attn.";
}

template <typename T>
TensorView Model<T>::Param(const std::string& name) const {
  if (buffers_.Has(name)) return buffers_.Get(name);
  auto it = param_views_.find(name);
  MT_CHECK_MSG(it != param_views_.end(), "model: no local parameter ", name);
  return it->second;
}

template <typename T>
TensorView Model<T>::Grad(const std::string& name) const {
  auto it = grad_views_.find(name);
  MT_CHECK_MSG(it != grad_views_.end(), "model: no local gradient ", name);
  return it->second;
}

template <typename T>
void Model<T>::InitParams(uint64_t seed) {
  InitBuffers();
  for (const ParamGroup& g : groups_) InitGroupParams(g.index, seed);
}

template <typename T>
void Model<T>::InitBuffers() {
  for (const ParamSpec& s : table_.specs()) {
    if (s.kind != ParamKind::kBuffer || !buffers_.Has(s.name)) continue;
    TensorView v = buffers_.Get(s.name);
    kernels::Fill(v.as<float>(), 0.0f, v.numel());
  }
}

template <typename T>
void Model<T>::InitGroupParams(int group, uint64_t seed) {
  const double out_scale = 1.0 / std::sqrt(2.0 * config_.num_hidden_layers);
  for (const ParamUnit& u : groups_[group].units) {
    for (const ParamUnit::Tensor& tensor : u.tensors) {
    const ParamSpec& s = *tensor.spec;
    TensorView v = Param(s.name);
    T* p = v.as<T>();
    if (s.init == ParamInit::kOnes) {
      kernels::Fill(p, T(1), v.numel());
    } else if (s.init == ParamInit::kZeros) {
      kernels::Fill(p, T(0), v.numel());
    } else {
      // Box-Muller on a 64-bit Mersenne Twister: the same numbers on every platform. The full
      // tensor is generated; a tensor-parallel rank keeps its shard.
      const bool split = s.IsTpSplit(tp_size_);
      std::vector<T> full(split ? s.numel() : 0);
      T* dst = split ? full.data() : p;
      const int64_t numel = s.numel();
      std::mt19937_64 rng(seed ^ Fnv1a(s.name));
      const double std = config_.initializer_range * (IsOutputProjection(s.name) ? out_scale : 1.0);
      const double kTwoPi = 6.283185307179586;
      for (int64_t i = 0; i < numel; i += 2) {
        double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        double r = std::sqrt(-2.0 * std::log(u1));
        dst[i] = static_cast<T>(std * r * std::cos(kTwoPi * u2));
        if (i + 1 < numel) dst[i + 1] = static_cast<T>(std * r * std::sin(kTwoPi * u2));
      }
      if (split) ExtractShard(s, tp_size_, tp_rank_, full.data(), p);
    }
    }
  }
}

template <typename T>
void Model<T>::ZeroGrads() {
  for (const auto& [category, bytes] : grads_.BytesByCategory()) grads_.ZeroCategory(category);
}

template <typename T>
LossBreakdown Model<T>::Forward(const int32_t* tokens, const int32_t* targets) {
  const ModelConfig& c = config_;
  const int64_t n = n_, C = c.hidden_size, V = c.vocab_size, Vl = v_local_, L = c.num_hidden_layers;
  PhaseScope ph("fwd.embed");
  kernels::Copy(tokens_, tokens, n);
  kernels::Copy(targets_, targets, n);
  std::fill(aux_counts_.begin(), aux_counts_.end(), 0.0);
  std::fill(aux_prob_sum_.begin(), aux_prob_sum_.end(), 0.0);
  z_sum_ = 0;
  const int top = static_cast<int>(L);
  if (hooks_ != nullptr) hooks_->BeforeForward(top);

  if (tp_ == nullptr) {
    kernels::EmbeddingForward(x_[0], tokens_, embed_, n, V, C);
  } else {  // vocab-parallel: rows outside this rank's slice are 0, summed over tp
    kernels::EmbeddingShardForward(x_[0], tokens_, embed_, n, V, C, v_begin_, Vl);
    MT_CHECK_OK(tp_->AllReduce(x_[0], x_[0], n * C, DTypeOf<T>::value));
  }
  kernels::RoundToDType(x_[0], n * C, options_.compute_dtype);
  // Per-layer expert loads go into the dp reduction buffer right away: a checkpointed layer's
  // counts slot is shared with (and overwritten by) later checkpointed layers.
  const int64_t E = c.num_local_experts, moe_layers = c.NumMoeLayers();
  double* buf = reduce_buf_.data();
  double* loads = buf + 3 + 2 * E;
  for (int64_t l = 0; l < L; ++l) {
    Layer& ly = layers_[l];
    if (hooks_ != nullptr) hooks_->BeforeForward(static_cast<int>(l));
    ph.Next(nullptr);
    z_sum_ += LayerForward(l, aux_counts_.data(), aux_prob_sum_.data());
    if (ly.is_moe) {
      for (int64_t e = 0; e < E; ++e) *loads++ = ly.moe.counts()[e];
    } else if (tp_ != nullptr) {  // row-parallel down_proj: sum the partial outputs
      MT_CHECK_OK(tp_->AllReduce(ffn_out_, ffn_out_, n * C, DTypeOf<T>::value));
    }
    ph.Next("fwd.residual");
    kernels::Add(x_[l + 1], ly.h, ffn_out_, n * C);
    kernels::RoundToDType(x_[l + 1], n * C, options_.compute_dtype);
    if (hooks_ != nullptr) hooks_->AfterForward(static_cast<int>(l));
  }
  ph.Next("fwd.norm");
  kernels::RmsNormForward(xf_, rstd_f_, x_[L], final_norm_, n, C, c.rms_norm_eps);
  kernels::RoundToDType(xf_, n * C, options_.compute_dtype);
  ph.Next("fwd.head.gemm");
  kernels::LinearForward(logits_, xf_, head_, n, C, Vl);
  kernels::RoundToDType(logits_, n * Vl, options_.compute_dtype);
  ph.Next("fwd.ce");
  LossBreakdown r;
  int64_t num_targets = 0;
  double kl_sum = 0;
  if (tp_ == nullptr && distill_teacher_ != nullptr) {
    num_targets = kernels::DistillLossForward(
        distill_losses_.data(), ce_losses_, distill_kl_.data(), ce_lse_, logits_, distill_teacher_,
        targets_, n, V, distill_alpha_, distill_temperature_, kIgnoreIndex);
    for (int64_t i = 0; i < n; ++i) kl_sum += static_cast<double>(distill_kl_[i]);
  } else if (tp_ == nullptr) {
    num_targets =
        kernels::CrossEntropyForward(ce_losses_, ce_lse_, logits_, targets_, n, V, kIgnoreIndex);
  } else {  // vocab-parallel: global max, then the sums of exp and the target logit over tp
    double* sum_exp = ce_sums_.data();
    double* target_z = ce_sums_.data() + n;
    kernels::CrossEntropyShardMax(ce_max_.data(), logits_, n, Vl);
    MT_CHECK_OK(tp_->AllReduce(ce_max_.data(), ce_max_.data(), n, DType::kF64,
                               parallel::ReduceOp::kMax));
    kernels::CrossEntropyShardSums(sum_exp, target_z, logits_, ce_max_.data(), targets_, n, V,
                                   v_begin_, Vl, kIgnoreIndex);
    MT_CHECK_OK(tp_->AllReduce(sum_exp, sum_exp, 2 * n, DType::kF64));
    for (int64_t i = 0; i < n; ++i) {
      const double lse = ce_max_[i] + std::log(sum_exp[i]);
      ce_lse_[i] = static_cast<T>(lse);
      const bool valid = targets_[i] != kIgnoreIndex;
      ce_losses_[i] = valid ? static_cast<T>(lse - target_z[i]) : T(0);
      num_targets += valid;
    }
  }
  double ce_sum = 0;
  for (int64_t i = 0; i < n; ++i) ce_sum += static_cast<double>(ce_losses_[i]);

  // Everything the loss depends on, summed over the data-parallel group in one AllReduce:
  // [ce_sum, num_targets, z_sum, aux_counts(E), aux_prob_sum(E), per-layer expert loads(Lm*E)]
  // (the loads were written by the layer loop).
  buf[0] = ce_sum;
  buf[1] = static_cast<double>(num_targets);
  buf[2] = z_sum_;
  reduce_buf_.back() = kl_sum;
  for (int64_t e = 0; e < E; ++e) {
    buf[3 + e] = aux_counts_[e];
    buf[3 + E + e] = aux_prob_sum_[e];
  }
  if (dp_size_ > 1) {
    ph.Next("fwd.loss_allreduce");
    MT_CHECK_OK(parallel_.dp->AllReduce(buf, buf, static_cast<int64_t>(reduce_buf_.size()),
                                        DType::kF64));
  }
  ce_sum = buf[0];
  num_targets = static_cast<int64_t>(std::llround(buf[1]));
  z_sum_ = buf[2];
  kl_sum = reduce_buf_.back();
  for (int64_t e = 0; e < E; ++e) {
    aux_counts_[e] = buf[3 + e];
    aux_prob_sum_[e] = buf[3 + E + e];
  }
  for (int64_t l = 0, i = 3 + 2 * E; l < moe_layers; ++l)
    for (int64_t e = 0; e < E; ++e) counts_[l][e] = std::llround(buf[i++]);

  r.num_targets = num_targets;
  r.ce = r.num_targets > 0 ? ce_sum / r.num_targets : 0.0;
  if (moe_layers > 0) {
    // aux = E * sum_e (count_e / Ntot) (prob_sum_e / Ntot), Ntot = tokens over all MoE layers
    // and all data-parallel ranks.
    const double ntot = static_cast<double>(n) * moe_layers * dp_size_;
    double aux = 0;
    for (int64_t e = 0; e < E; ++e) aux += aux_counts_[e] * aux_prob_sum_[e];
    r.aux = static_cast<double>(E) * aux / (ntot * ntot);
    r.z = z_sum_ / ntot;
  }
  if (distill_teacher_ != nullptr) {
    // alpha = 0: (1 - 0) * ce + 0 * kl == ce exactly, so the total matches plain training bitwise.
    r.kl = r.num_targets > 0 ? kl_sum / r.num_targets : 0.0;
    const double head = (1.0 - distill_alpha_) * r.ce +
                        distill_alpha_ * distill_temperature_ * distill_temperature_ * r.kl;
    r.total = head + c.router_aux_loss_coef * r.aux + c.router_z_loss_coef * r.z;
  } else {
    r.total = r.ce + c.router_aux_loss_coef * r.aux + c.router_z_loss_coef * r.z;
  }
  last_ = r;
  if (hooks_ != nullptr) hooks_->AfterForward(top);
  return r;
}

template <typename T>
absl::Status Model<T>::SetDistillationTarget(const T* teacher_logits, double alpha,
                                             double temperature) {
  if (teacher_logits == nullptr) {
    distill_teacher_ = nullptr;
    return absl::OkStatus();
  }
  if (!(alpha >= 0 && alpha <= 1))
    return absl::InvalidArgumentError(absl::StrCat("distillation alpha must be in [0, 1], got ", alpha));
  if (!(temperature > 0 && std::isfinite(temperature)))
    return absl::InvalidArgumentError(
        absl::StrCat("distillation temperature must be > 0 and finite, got ", temperature));
  if (tp_ != nullptr)
    return absl::InvalidArgumentError(absl::StrCat(
        "distillation with tensor parallelism (tp = ", tp_size_,
        ") is not implemented: the vocabulary is split over tp and the KL needs vocab-parallel "
        "reductions; use tp = 1"));
  distill_teacher_ = teacher_logits;
  distill_alpha_ = alpha;
  distill_temperature_ = temperature;
  if (static_cast<int64_t>(distill_kl_.size()) != n_) {  // once: switching back and forth is free
    distill_losses_.assign(n_, T(0));
    distill_kl_.assign(n_, T(0));
  }
  return absl::OkStatus();
}

template <typename T>
void Model<T>::Backward(double scale) {
  const ModelConfig& c = config_;
  const int64_t n = n_, C = c.hidden_size, V = c.vocab_size, Vl = v_local_, L = c.num_hidden_layers;
  const int top = static_cast<int>(L);
  if (hooks_ != nullptr) hooks_->BeforeBackward(top);
  // Loss head.
  PhaseScope ph("bwd.ce");
  const T dloss = last_.num_targets > 0 ? static_cast<T>(scale / last_.num_targets) : T(0);
  if (tp_ == nullptr && distill_teacher_ != nullptr) {
    kernels::DistillLossBackward(dlogits_, logits_, ce_lse_, distill_teacher_, targets_, dloss, n, V,
                                 distill_alpha_, distill_temperature_, kIgnoreIndex);
  } else if (tp_ == nullptr) {
    kernels::CrossEntropyBackward(dlogits_, logits_, ce_lse_, targets_, dloss, n, V, kIgnoreIndex);
  } else {
    kernels::CrossEntropyShardBackward(dlogits_, logits_, ce_lse_, targets_, dloss, n, V, v_begin_,
                                       Vl, kIgnoreIndex);
  }
  kernels::RoundToDType(dlogits_, n * Vl, options_.compute_dtype);
  ph.Next("bwd.head.gemm");
  kernels::LinearBackward(dh_, dhead_, dlogits_, xf_, head_, n, C, Vl);
  if (tp_ != nullptr)  // vocab-parallel head: the input gradient is partial over tp
    MT_CHECK_OK(tp_->AllReduce(dh_, dh_, n * C, DTypeOf<T>::value));
  kernels::RoundToDType(dh_, n * C, options_.compute_dtype);
  ph.Next("bwd.norm");
  kernels::RmsNormBackward(dcur_, dfinal_norm_, dh_, x_[L], final_norm_, rstd_f_, n, C);
  kernels::RoundToDType(dcur_, n * C, options_.compute_dtype);
  ph.Next(nullptr);

  // Router loss coefficients shared by all MoE layers (see kernels/router.h).
  const int64_t moe_layers = c.NumMoeLayers();
  double z_coef = 0;
  if (moe_layers > 0) {
    const double ntot = static_cast<double>(n) * moe_layers * dp_size_,
                 E = static_cast<double>(c.num_local_experts);
    for (int64_t e = 0; e < c.num_local_experts; ++e)
      aux_coef_[e] = scale * c.router_aux_loss_coef * E * aux_counts_[e] / (ntot * ntot);
    z_coef = scale * c.router_z_loss_coef / ntot;
  }

  // dcur = dL/dx_{l+1} on entry to each iteration.
  for (int64_t l = L - 1; l >= 0; --l) {
    Layer& ly = layers_[l];
    if (hooks_ != nullptr) hooks_->BeforeBackward(static_cast<int>(l));  // ZeRO-3: gathers layer l
    if (ly.recompute) RecomputeLayer(l);
    // x_{l+1} = h + FFN(hn): dhn = FFN^T dcur.
    if (ly.is_moe) {
      ly.moe.Backward(dffn_, dcur_, ly.hn, aux_coef_.data(), z_coef);
    } else {
      PhaseScope mlp_phase("bwd.mlp");
      ly.mlp.Backward(dffn_, /*accumulate_dx=*/false, dcur_, ly.hn);
      if (tp_ != nullptr)  // column-parallel gate/up
        MT_CHECK_OK(tp_->AllReduce(dffn_, dffn_, n * C, DTypeOf<T>::value));
    }
    ph.Next("bwd.norm");
    kernels::RmsNormBackward(dh_, ly.dnorm2, dffn_, ly.h, ly.norm2, ly.rstd2, n, C);
    ph.Next("bwd.residual");
    kernels::AddInPlace(dh_, dcur_, n * C);
    kernels::RoundToDType(dh_, n * C, options_.compute_dtype);
    ph.Next(nullptr);
    ly.attn.Backward(dnext_, dh_, x_[l]);
    std::swap(dcur_, dnext_);
    if (hooks_ != nullptr) hooks_->AfterBackward(static_cast<int>(l));
  }
  ph.Next("bwd.embed");
  if (tp_ == nullptr) {
    kernels::EmbeddingBackward(dembed_, dcur_, tokens_, n, V, C);
  } else {
    kernels::EmbeddingShardBackward(dembed_, dcur_, tokens_, n, V, C, v_begin_, Vl);
  }
  if (hooks_ != nullptr) hooks_->AfterBackward(top);
}

// The recompute runs the same kernels on the same inputs (x_l, parameters, router bias) in the same
// order as Forward, so the slots get the same bits and the gradients equal kNone's bitwise. What
// Forward already counted for the loss is not touched: router statistics go to scratch, the z-loss
// sum is dropped, and the per-layer loads were copied out in Forward. ffn_out_ is free scratch here.
template <typename T>
void Model<T>::RecomputeLayer(int64_t l) {
  Layer& ly = layers_[l];
  if (options_.checkpointing == ActivationCheckpointing::kSelective) {
    ly.attn.ComputeSaved(x_[l]);  // no o_proj, no tp collective: h is kept per layer
    return;
  }
  // Re-runs the router and, with expert parallelism, the dispatch/combine all-to-alls; the dense
  // MLP's output (and its tp AllReduce) is not needed.
  LayerForward(l, recompute_aux_counts_.data(), recompute_aux_prob_sum_.data());
}

// Layer l's forward up to its FFN output in ffn_out_ (partial over tp for a dense layer): the one
// body Forward and the checkpointing recompute share, so both store the same bits. Returns the
// layer's router z-loss sum (0 for a dense layer).
template <typename T>
double Model<T>::LayerForward(int64_t l, double* aux_counts, double* aux_prob_sum) {
  const int64_t n = n_, C = config_.hidden_size;
  Layer& ly = layers_[l];
  ly.attn.Forward(ly.h, x_[l]);
  PhaseScope ph("fwd.norm");
  kernels::RmsNormForward(ly.hn, ly.rstd2, ly.h, ly.norm2, n, C, config_.rms_norm_eps);
  kernels::RoundToDType(ly.hn, n * C, options_.compute_dtype);
  if (ly.is_moe) {
    ph.Next(nullptr);
    return ly.moe.Forward(ffn_out_, ly.hn, aux_counts, aux_prob_sum);
  }
  ph.Next("fwd.mlp");
  ly.mlp.Forward(ffn_out_, ly.hn);
  return 0;
}

template <typename T>
void Model<T>::GatherLogitsRow(int64_t row, T* out) const {
  const T* local = logits_ + row * v_local_;
  if (tp_ == nullptr) {
    std::copy(local, local + v_local_, out);
    return;
  }
  MT_CHECK_OK(tp_->AllGather(local, out, v_local_, DTypeOf<T>::value));
}

template <typename T>
std::vector<std::vector<int64_t>> Model<T>::ExpertCounts() const {
  return counts_;
}

template <typename T>
void Model<T>::UpdateRouterBias() {
  if (config_.balancing != "bias") return;
  const int64_t E = config_.num_local_experts;
  int64_t moe_index = 0;
  for (Layer& ly : layers_) {
    if (!ly.is_moe) continue;
    const std::vector<int64_t>& load = counts_[moe_index++];  // global loads: replicas stay equal
    if (ly.bias == nullptr) continue;
    double mean = 0;
    for (int64_t e = 0; e < E; ++e) mean += load[e];
    mean /= E;
    for (int64_t e = 0; e < E; ++e) {
      const double sign = load[e] < mean ? 1.0 : load[e] > mean ? -1.0 : 0.0;
      ly.bias[e] += static_cast<float>(config_.router_bias_update_rate * sign);
    }
  }
}

template <typename T>
std::map<std::string, size_t> Model<T>::MemoryPlan() const {
  std::map<std::string, size_t> m;
  for (const Arena* a : {&params_, &grads_, &buffers_, &acts_, &ws_})
    for (auto& [cat, bytes] : a->BytesByCategory()) m[cat] += bytes;
  return m;
}

template class Model<float>;
template class Model<double>;

}  // namespace moetrain::model

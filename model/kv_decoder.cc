#include "model/kv_decoder.h"

#include <omp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "kernels/cached_attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/grouped_matmul.h"
#include "kernels/matmul.h"
#include "kernels/permute.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace moetrain::model {

absl::StatusOr<std::unique_ptr<KvDecoder>> KvDecoder::Create(const ModelConfig& config,
                                                             int64_t max_context,
                                                             ParamSource& source, int threads) {
  RETURN_IF_ERROR(config.Validate());
  if (max_context <= 0 || max_context > config.max_position_embeddings)
    return absl::InvalidArgumentError(absl::StrCat(
        "kv decoder: max_context ", max_context,
        " must be in [1, max_position_embeddings = ", config.max_position_embeddings, "]"));
  std::unique_ptr<KvDecoder> d(new KvDecoder());
  d->config_ = config;
  d->table_ = ParamTable::Build(config);
  d->max_context_ = max_context;
  d->threads_ = threads > 0 ? threads : omp_get_max_threads();
  d->router_.num_experts = config.num_local_experts;
  d->router_.top_k = config.num_experts_per_tok;
  d->router_.scoring = config.scoring_func == "sigmoid" ? kernels::RouterScoring::kSigmoid
                                                        : kernels::RouterScoring::kSoftmax;
  d->router_.renormalize = config.norm_topk_prob;
  RETURN_IF_ERROR(d->Plan());
  RETURN_IF_ERROR(d->LoadWeights(source));
  d->Bind();
  return d;
}

absl::Status KvDecoder::Plan() {
  const ModelConfig& c = config_;
  const int64_t B = std::min(kMaxBlock, max_context_), C = c.hidden_size, D = c.HeadDim();
  const int64_t qd = c.num_attention_heads * D, kvd = c.num_key_value_heads * D;
  const int64_t E = c.num_local_experts, K = c.num_experts_per_tok, T = max_context_;
  const DType f32 = DType::kF32, i32 = DType::kI32;
  std::vector<TensorSpec> specs;
  for (const ParamSpec& s : table_.specs())
    specs.push_back({s.name, Shape(s.shape), f32, "weights"});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    specs.push_back({absl::StrCat("cache.", l, ".k"), {T, kvd}, f32, "kv_cache"});
    specs.push_back({absl::StrCat("cache.", l, ".v"), {T, kvd}, f32, "kv_cache"});
  }
  auto scratch = [&](const std::string& name, Shape shape, DType t = DType::kF32) {
    specs.push_back({"scratch." + name, shape, t, "scratch"});
  };
  scratch("tokens", {B}, i32);
  for (const char* name : {"x", "xn", "h", "ffn_out"}) scratch(name, {B, C});
  scratch("rstd", {B});
  scratch("q", {B, qd});
  scratch("att", {B, qd});
  scratch("logits", {B, c.vocab_size});
  scratch("attn_ws", {kernels::CachedAttentionWorkspaceElems(T, threads_)});
  scratch("rope_cos", {T, D / 2});
  scratch("rope_sin", {T, D / 2});
  // The FFN's (rows, width) buffers are shared by dense MLPs, routed experts and shared experts.
  int64_t ffn_elems = 1;
  if (c.first_k_dense_replace > 0) ffn_elems = std::max(ffn_elems, B * c.intermediate_size);
  if (c.NumMoeLayers() > 0) {
    ffn_elems = std::max({ffn_elems, B * K * c.ExpertWidth(), B * c.SharedWidth()});
    scratch("router_logits", {B, E});
    scratch("scores", {B, E});
    scratch("topk_w", {B, K});
    scratch("topk_idx", {B, K}, i32);
    scratch("counts", {E}, i32);
    scratch("offsets", {E + 1}, i32);
    scratch("sorted_pos", {B, K}, i32);
    scratch("row_token", {B * K}, i32);
    scratch("xs", {B * K, C});
    scratch("ys", {B * K, C});
    scratch("shared_out", {B, C});
  }
  for (const char* name : {"ea", "eb", "eh"}) scratch(name, {ffn_elems});
  ASSIGN_OR_RETURN(arena_, Arena::Create(specs));
  return absl::OkStatus();
}

absl::Status KvDecoder::LoadWeights(ParamSource& source) {
  for (const ParamSpec& s : table_.specs()) {
    // A source without the aux-loss-free bias (e.g. an HF folder) means no bias: zeros.
    if (s.kind == ParamKind::kBuffer && !source.Has(s.name)) continue;
    RETURN_IF_ERROR(source.ReadFull(s, arena_.Get(s.name).as<float>()));
  }
  return absl::OkStatus();
}

void KvDecoder::Bind() {
  const ModelConfig& c = config_;
  auto W = [this](const std::string& name) -> const float* { return arena_.Get(name).as<float>(); };
  auto S = [this](const std::string& name) { return arena_.Get("scratch." + name).as<float>(); };
  auto SI = [this](const std::string& name) { return arena_.Get("scratch." + name).as<int32_t>(); };
  embed_ = W("model.embed_tokens.weight");
  final_norm_ = W("model.norm.weight");
  head_ = W(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  layers_.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    Layer& ly = layers_[l];
    const std::string p = names::Layer(l);
    ly.attn_norm = W(p + "input_layernorm.weight");
    ly.wq = W(p + "self_attn.q_proj.weight");
    ly.wk = W(p + "self_attn.k_proj.weight");
    ly.wv = W(p + "self_attn.v_proj.weight");
    ly.wo = W(p + "self_attn.o_proj.weight");
    ly.ffn_norm = W(p + "post_attention_layernorm.weight");
    ly.k_cache = arena_.Get(absl::StrCat("cache.", l, ".k")).as<float>();
    ly.v_cache = arena_.Get(absl::StrCat("cache.", l, ".v")).as<float>();
    ly.is_moe = c.IsMoeLayer(l);
    if (!ly.is_moe) {
      ly.gate_proj = W(p + "mlp.gate_proj.weight");
      ly.up_proj = W(p + "mlp.up_proj.weight");
      ly.down_proj = W(p + "mlp.down_proj.weight");
      continue;
    }
    ly.router = W(p + "block_sparse_moe.gate.weight");
    const std::string bias = p + "block_sparse_moe.gate.e_score_correction_bias";
    ly.bias = arena_.Has(bias) ? W(bias) : nullptr;
    for (int e = 0; e < c.num_local_experts; ++e) {
      ly.w1.push_back(W(names::Expert(l, e, "w1")));
      ly.w2.push_back(W(names::Expert(l, e, "w2")));
      ly.w3.push_back(W(names::Expert(l, e, "w3")));
    }
    if (c.num_shared_experts > 0) {
      const std::string sp = p + "block_sparse_moe.shared_experts.";
      ly.sw1 = W(sp + "w1.weight");
      ly.sw2 = W(sp + "w2.weight");
      ly.sw3 = W(sp + "w3.weight");
    }
  }
  float* cos = S("rope_cos");
  float* sin = S("rope_sin");
  kernels::RopeTable(cos, sin, max_context_, c.HeadDim(), c.rope_theta);
  rope_cos_ = cos;
  rope_sin_ = sin;
  tokens_ = SI("tokens");
  x_ = S("x");
  xn_ = S("xn");
  h_ = S("h");
  ffn_out_ = S("ffn_out");
  rstd_ = S("rstd");
  q_ = S("q");
  att_ = S("att");
  logits_ = S("logits");
  attn_ws_ = S("attn_ws");
  ea_ = S("ea");
  eb_ = S("eb");
  eh_ = S("eh");
  if (c.NumMoeLayers() > 0) {
    router_logits_ = S("router_logits");
    scores_ = S("scores");
    topk_w_ = S("topk_w");
    xs_ = S("xs");
    ys_ = S("ys");
    shared_out_ = S("shared_out");
    topk_idx_ = SI("topk_idx");
    counts_ = SI("counts");
    offsets_ = SI("offsets");
    sorted_pos_ = SI("sorted_pos");
    row_token_ = SI("row_token");
  }
}

absl::StatusOr<const float*> KvDecoder::Append(int32_t token) { return AppendBlock(&token, 1); }

absl::StatusOr<const float*> KvDecoder::AppendBlock(const int32_t* tokens, int64_t n) {
  const int64_t max_block = std::min(kMaxBlock, max_context_);
  if (n < 1 || n > max_block)
    return absl::InvalidArgumentError(
        absl::StrCat("kv decoder: a block holds 1..", max_block, " tokens, got ", n));
  if (position_ + n > max_context_)
    return absl::OutOfRangeError(absl::StrCat("kv decoder: context full (", position_, " + ", n,
                                              " tokens > max_context ", max_context_, ")"));
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      return absl::InvalidArgumentError(absl::StrCat("kv decoder: token id ", tokens[i],
                                                     " outside the vocabulary [0, ",
                                                     config_.vocab_size, ")"));
    tokens_[i] = tokens[i];
  }
  Forward(n);
  return static_cast<const float*>(logits_);
}

absl::StatusOr<const float*> KvDecoder::Prefill(const std::vector<int32_t>& tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("kv decoder: empty prompt");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (position_ + n > max_context_)
    return absl::OutOfRangeError(absl::StrCat("kv decoder: prompt of ", n, " tokens after ",
                                              position_, " cached ones exceeds max_context ",
                                              max_context_));
  const int64_t max_block = std::min(kMaxBlock, max_context_);
  const float* last = nullptr;
  for (int64_t begin = 0; begin < n; begin += max_block) {
    const int64_t len = std::min(max_block, n - begin);
    ASSIGN_OR_RETURN(const float* logits, AppendBlock(tokens.data() + begin, len));
    last = logits + (len - 1) * config_.vocab_size;
  }
  return last;
}

// One block of n tokens at positions p0 .. p0+n-1, the math of Model<T>::Forward:
//   h = x + o_proj(attention(rope(q), cache(rope(k)), cache(v)))   over RMSNorm(x)
//   x' = h + FFN(RMSNorm(h));  logits = RMSNorm(x_L) head^T
void KvDecoder::Forward(int64_t n) {
  const ModelConfig& c = config_;
  const int64_t C = c.hidden_size, D = c.HeadDim(), V = c.vocab_size, p0 = position_;
  const int64_t hq = c.num_attention_heads, hkv = c.num_key_value_heads;
  const int64_t qd = hq * D, kvd = hkv * D;
  const float* cos = rope_cos_ + p0 * (D / 2);  // RoPE rows of positions p0..: table row = position
  const float* sin = rope_sin_ + p0 * (D / 2);
  kernels::EmbeddingForward(x_, tokens_, embed_, n, V, C);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& ly = layers_[l];
    float* k_new = ly.k_cache + p0 * kvd;  // this block's rows of the cache
    float* v_new = ly.v_cache + p0 * kvd;
    kernels::RmsNormForward(xn_, rstd_, x_, ly.attn_norm, n, C, c.rms_norm_eps);
    kernels::LinearForward(q_, xn_, ly.wq, n, C, qd);
    kernels::LinearForward(k_new, xn_, ly.wk, n, C, kvd);
    kernels::LinearForward(v_new, xn_, ly.wv, n, C, kvd);
    kernels::RopeForward(q_, cos, sin, 1, n, hq, D);
    kernels::RopeForward(k_new, cos, sin, 1, n, hkv, D);
    kernels::CachedAttentionForward(att_, q_, ly.k_cache, ly.v_cache, p0, n, hq, hkv, D, attn_ws_,
                                    threads_);
    kernels::LinearForward(h_, att_, ly.wo, n, qd, C);
    kernels::AddInPlace(h_, x_, n * C);  // residual
    kernels::RmsNormForward(xn_, rstd_, h_, ly.ffn_norm, n, C, c.rms_norm_eps);
    FeedForward(l, ffn_out_, xn_, n);
    kernels::Add(x_, h_, ffn_out_, n * C);  // residual
  }
  kernels::RmsNormForward(xn_, rstd_, x_, final_norm_, n, C, c.rms_norm_eps);
  kernels::LinearForward(logits_, xn_, head_, n, C, V);
  position_ += n;
}

// y(n,C) = SwiGLU MLP (dense layer) or routed experts + shared experts (MoE layer) of x(n,C).
void KvDecoder::FeedForward(int64_t layer, float* y, const float* x, int64_t n) {
  const ModelConfig& c = config_;
  const Layer& ly = layers_[layer];
  const int64_t C = c.hidden_size;
  auto mlp = [&](float* out, const float* w1, const float* w2, const float* w3, int64_t width) {
    kernels::LinearForward(ea_, x, w1, n, C, width);
    kernels::LinearForward(eb_, x, w3, n, C, width);
    kernels::SwigluForward(eh_, ea_, eb_, n * width);
    kernels::LinearForward(out, eh_, w2, n, width, C);
  };
  if (!ly.is_moe) {
    mlp(y, ly.gate_proj, ly.down_proj, ly.up_proj, c.intermediate_size);
    return;
  }
  const int64_t E = c.num_local_experts, K = c.num_experts_per_tok, F = c.ExpertWidth();
  kernels::LinearForward(router_logits_, x, ly.router, n, C, E);
  kernels::RouterForward(scores_, topk_idx_, topk_w_, router_logits_, ly.bias, n, router_);
  const int64_t m = kernels::PermutePlan(counts_, offsets_, sorted_pos_, row_token_, topk_idx_, n,
                                         K, E, /*capacity=*/0);
  kernels::PermuteForward(xs_, x, row_token_, m, C);
  kernels::GroupedMatmulForward(ea_, xs_, ly.w1.data(), offsets_, E, C, F);
  kernels::GroupedMatmulForward(eb_, xs_, ly.w3.data(), offsets_, E, C, F);
  kernels::SwigluForward(eh_, ea_, eb_, m * F);
  kernels::GroupedMatmulForward(ys_, eh_, ly.w2.data(), offsets_, E, F, C);
  kernels::UnpermuteForward(y, ys_, topk_w_, sorted_pos_, n, K, C);
  if (ly.sw1 != nullptr) {
    mlp(shared_out_, ly.sw1, ly.sw2, ly.sw3, c.SharedWidth());
    kernels::AddInPlace(y, shared_out_, n * C);
  }
}

}  // namespace moetrain::model

// Test helper: a randomly initialised model and its float64 twin, for checking the inference
// engine (model/kv_decoder.h) against Model<double>::Forward with the same weights.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "model/model_param_source.h"

namespace moetrain::testing {

// Every feature the decoder must support: GQA, explicit head_dim, rope_theta, a dense first layer,
// shared experts, sigmoid scores without renormalisation, a selection bias.
inline model::ModelConfig FeatureConfig() {
  model::ModelConfig c;
  c.vocab_size = 96;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 12;
  c.num_local_experts = 6;
  c.num_experts_per_tok = 2;
  c.rope_theta = 5e5;
  c.max_position_embeddings = 128;
  c.initializer_range = 0.1;
  c.num_shared_experts = 2;
  c.moe_intermediate_size = 16;
  c.first_k_dense_replace = 1;
  c.scoring_func = "sigmoid";
  c.norm_topk_prob = false;
  c.balancing = "bias";
  return c;
}

// Mixtral semantics with tied embeddings and multi-head (not grouped) attention.
inline model::ModelConfig TiedSoftmaxConfig() {
  model::ModelConfig c;
  c.vocab_size = 80;
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 3;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.intermediate_size = 32;
  c.max_position_embeddings = 128;
  c.initializer_range = 0.1;
  c.tie_word_embeddings = true;
  return c;
}

// A float model (the decoder's source) and a float64 model with identical values. Router biases,
// when the config has them, are random so that they change which experts are selected.
struct ReferenceModels {
  std::unique_ptr<model::Model<float>> f32;
  std::unique_ptr<model::Model<double>> f64;
  std::unique_ptr<model::ModelParamSource<float>> source;
};

inline ReferenceModels MakeReferenceModels(const model::ModelConfig& c, int64_t seq,
                                           uint64_t seed) {
  ReferenceModels r;
  auto f = model::Model<float>::Create(c, 1, seq, 1);
  auto d = model::Model<double>::Create(c, 1, seq, 1);
  EXPECT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(d.ok()) << d.status();
  r.f32 = std::move(*f);
  r.f64 = std::move(*d);
  r.f32->InitParams(seed);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<double> bias(0.0, 0.05);
  for (const model::ParamSpec& s : r.f32->table().specs()) {
    TensorView src = r.f32->Param(s.name), dst = r.f64->Param(s.name);
    if (s.kind == model::ParamKind::kBuffer) {
      for (int64_t i = 0; i < src.numel(); ++i)
        dst.as<float>()[i] = src.as<float>()[i] = static_cast<float>(bias(rng));
    } else {
      for (int64_t i = 0; i < src.numel(); ++i) dst.as<double>()[i] = src.as<float>()[i];
    }
  }
  r.source = std::make_unique<model::ModelParamSource<float>>(*r.f32);
  return r;
}

// Float64 logits (seq, V) of `tokens` (length seq of the model).
inline std::vector<double> ReferenceLogits(model::Model<double>& m,
                                           const std::vector<int32_t>& tokens) {
  std::vector<int32_t> targets(tokens.size(), model::kIgnoreIndex);
  m.Forward(tokens.data(), targets.data());
  const int64_t n = static_cast<int64_t>(tokens.size()) * m.config().vocab_size;
  return std::vector<double>(m.logits(), m.logits() + n);
}

}  // namespace moetrain::testing

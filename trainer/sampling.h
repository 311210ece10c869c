// Text generation for the end of a training run: nucleus (top-p) sampling with temperature.
//
// No KV cache yet: each new token reruns the causal forward over the (padded) window of the
// inference model's planned length; causal attention makes the padding invisible to earlier
// positions, so the logits at position t are exactly those of the prefix. Deterministic for a seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/model.h"

namespace moetrain::trainer {

struct SamplingOptions {
  double temperature = 0.8;
  double top_p = 0.9;
  int64_t max_new_tokens = 48;
  uint64_t seed = 0;
  int32_t stop_token = -1;  // e.g. EOS; -1 = none
};

// Picks a token from logits(V): softmax(logits / temperature), keep the smallest set of most likely
// tokens whose mass >= top_p, renormalise, draw one.
int32_t SampleTopP(const float* logits, int64_t vocab, double temperature, double top_p,
                   std::mt19937_64* rng);

// Continues `prompt` (token ids) with `model` (batch 1; its seq is the context window; the oldest
// tokens are dropped when the window is full). Returns only the new tokens.
std::vector<int32_t> Generate(model::Model<float>* model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options);

}  // namespace moetrain::trainer

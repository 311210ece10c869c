// Text generation: temperature, top-k and nucleus (top-p) sampling.
//
// Two engines. Generate (end of a training run) has no KV cache: each new token reruns the causal
// forward over the (padded) window of the inference model's planned length; causal attention makes
// the padding invisible to earlier positions, so the logits at position t are exactly those of the
// prefix. GenerateWithCache runs a model::KvDecoder: the prompt once, then one token per step.
// Both are deterministic for a seed and draw the same tokens from the same logits.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "model/kv_decoder.h"
#include "model/model.h"

namespace moetrain::trainer {

struct SamplingOptions {
  double temperature = 0.8;
  double top_p = 0.9;
  int64_t top_k = 0;        // keep the k most likely tokens before top-p; 0 = off
  int64_t max_new_tokens = 48;
  uint64_t seed = 0;
  int32_t stop_token = -1;  // e.g. EOS; -1 = none
};

// Picks a token from logits(V): p = softmax(logits / temperature); keep the top_k most likely
// (top_k <= 0 or >= V: all), then of those the smallest most-likely prefix whose mass >= top_p of
// the kept mass; renormalise, draw one (one uniform draw from rng). Ties in p go to the lower id.
// temperature <= 0 is greedy: the argmax (lowest id among ties), no draw.
int32_t SampleToken(const float* logits, int64_t vocab, double temperature, int64_t top_k,
                    double top_p, std::mt19937_64* rng);
// SampleToken without top-k (kept for existing callers; same draws).
int32_t SampleTopP(const float* logits, int64_t vocab, double temperature, double top_p,
                   std::mt19937_64* rng);

// Continues `prompt` (token ids) with `model` (batch 1; its seq is the context window; the oldest
// tokens are dropped when the window is full). Returns only the new tokens.
std::vector<int32_t> Generate(model::Model<float>* model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options);

// Resets `decoder`, prefills `prompt` and samples up to options.max_new_tokens tokens, stopping
// early at options.stop_token (not returned) or when the cache is full: a decoder of max_context M
// returns at most M - prompt.size() + 1 tokens (the last one sampled is never fed back).
// Returns only the new tokens. Errors: an empty prompt, a prompt id outside the vocabulary, a
// prompt longer than max_context (from the decoder).
absl::StatusOr<std::vector<int32_t>> GenerateWithCache(model::KvDecoder& decoder,
                                                       const std::vector<int32_t>& prompt,
                                                       const SamplingOptions& options);

}  // namespace moetrain::trainer

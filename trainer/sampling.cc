#include "trainer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/status.h"

namespace moetrain::trainer {

int32_t SampleToken(const float* logits, int64_t vocab, double temperature, int64_t top_k,
                    double top_p, std::mt19937_64* rng) {
  if (temperature <= 0)  // greedy; max_element returns the first (lowest id) maximum
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  std::vector<double> p(vocab);
  double mx = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]) / temperature);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += p[i] = std::exp(logits[i] / temperature - mx);
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  // Top-k: only the k most likely stay candidates, and top-p is a share of their mass.
  const size_t candidates =
      top_k > 0 && top_k < vocab ? static_cast<size_t>(top_k) : order.size();
  if (candidates < order.size()) {
    sum = 0;
    for (size_t i = 0; i < candidates; ++i) sum += p[order[i]];
  }
  double kept = 0;
  size_t n = 0;
  while (n < candidates && (n == 0 || kept < top_p * sum)) kept += p[order[n++]];
  double u = std::uniform_real_distribution<double>(0.0, kept)(*rng);
  for (size_t i = 0; i < n; ++i) {
    u -= p[order[i]];
    if (u <= 0) return order[i];
  }
  return order[n - 1];
}

int32_t SampleTopP(const float* logits, int64_t vocab, double temperature, double top_p,
                   std::mt19937_64* rng) {
  return SampleToken(logits, vocab, temperature, /*top_k=*/0, top_p, rng);
}

std::vector<int32_t> Generate(model::Model<float>* model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options) {
  const int64_t window = model->seq(), vocab = model->config().vocab_size;
  std::mt19937_64 rng(options.seed);
  MT_CHECK_MSG(!prompt.empty(), "Generate needs at least one prompt token (e.g. BOS)");
  std::vector<int32_t> context = prompt, out;
  std::vector<int32_t> tokens(window), targets(window, model::kIgnoreIndex);
  std::vector<float> row(vocab);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(context.size()) - window);
    const int64_t len = static_cast<int64_t>(context.size()) - start;
    std::fill(tokens.begin(), tokens.end(), 0);
    std::copy(context.begin() + start, context.end(), tokens.begin());
    model->Forward(tokens.data(), targets.data());
    model->GatherLogitsRow(len - 1, row.data());  // full row, also under tensor parallelism
    const int32_t next =
        SampleToken(row.data(), vocab, options.temperature, options.top_k, options.top_p, &rng);
    if (next == options.stop_token) break;
    context.push_back(next);
    out.push_back(next);
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> GenerateWithCache(model::KvDecoder& decoder,
                                                       const std::vector<int32_t>& prompt,
                                                       const SamplingOptions& options) {
  const int64_t vocab = decoder.config().vocab_size;
  std::mt19937_64 rng(options.seed);
  decoder.Reset();
  ASSIGN_OR_RETURN(const float* logits, decoder.Prefill(prompt));
  std::vector<int32_t> out;
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens) {
    const int32_t next =
        SampleToken(logits, vocab, options.temperature, options.top_k, options.top_p, &rng);
    if (next == options.stop_token) break;
    out.push_back(next);
    if (static_cast<int64_t>(out.size()) == options.max_new_tokens ||
        decoder.position() == decoder.max_context())
      break;
    ASSIGN_OR_RETURN(logits, decoder.Append(next));
  }
  return out;
}

}  // namespace moetrain::trainer

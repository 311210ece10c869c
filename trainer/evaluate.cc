#include "trainer/evaluate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "kernels/cross_entropy.h"
#include "model/model.h"

namespace moetrain::trainer {

absl::StatusOr<EvalResult> EvaluateTokens(model::KvDecoder& decoder,
                                          const std::vector<int32_t>& tokens, int64_t window,
                                          std::vector<float>* logits_out) {
  const int64_t n = static_cast<int64_t>(tokens.size()), V = decoder.config().vocab_size;
  if (n < 2)
    return absl::InvalidArgumentError(
        absl::StrCat("eval: need at least 2 tokens (one target), got ", n));
  if (window < 2 || window > decoder.max_context())
    return absl::InvalidArgumentError(absl::StrCat("eval: window ", window, " must be in [2, ",
                                                   decoder.max_context(),
                                                   "] (the decoder's context)"));
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      return absl::InvalidArgumentError(absl::StrCat("eval: token ", i, " (id ", tokens[i],
                                                     ") is outside the vocabulary [0, ", V, ")"));
  if (logits_out != nullptr) logits_out->assign(static_cast<size_t>((n - 1) * V), 0.0f);
  const int64_t block = model::KvDecoder::kMaxBlock;
  std::vector<float> losses(block), lse(block);
  double ce_sum = 0;
  // Window [s, e) feeds tokens s .. e-2: the last token's logits would predict past the window.
  for (int64_t s = 0; s < n - 1; s += window - 1) {
    const int64_t e = std::min(s + window, n);
    decoder.Reset();
    for (int64_t r = s; r < e - 1; r += block) {
      const int64_t len = std::min(block, e - 1 - r);
      ASSIGN_OR_RETURN(const float* logits, decoder.AppendBlock(tokens.data() + r, len));
      // Targets are the next tokens t_{r+1} .. t_{r+len}; all valid (no ignore index).
      kernels::CrossEntropyForward(losses.data(), lse.data(), logits, tokens.data() + r + 1, len, V,
                                   model::kIgnoreIndex);
      for (int64_t i = 0; i < len; ++i) ce_sum += losses[i];
      if (logits_out != nullptr) std::copy(logits, logits + len * V, logits_out->data() + r * V);
    }
  }
  EvalResult result;
  result.num_targets = n - 1;
  result.loss = ce_sum / static_cast<double>(n - 1);
  result.perplexity = std::exp(result.loss);
  return result;
}

}  // namespace moetrain::trainer

// Loss and perplexity of a token sequence under a model::KvDecoder (the engine behind
// `moetrain eval`).
//
// Which positions are scored: every next-token of the sequence, each exactly once. Tokens
// t_0 .. t_{n-1} give n-1 targets: position r (0 <= r <= n-2) predicts t_{r+1}. The sequence is cut
// into windows of at most `window` tokens that overlap by one, [s, s+window) for s = 0, w', 2w',
// ... with w' = window - 1, so the last token of a window is the first of the next. Each window
// starts from an empty cache; inside it, position r sees the tokens s .. r of its own window only.
// So the first position of every window is scored with a context of one token (no stride/sliding
// overlap: that is what a window means here, and it costs one forward per token).
//   loss = mean over the n-1 targets of -log softmax(logits_r)[t_{r+1}]   (natural log)
//   perplexity = exp(loss)
// logits_out (optional): resized to (n-1, V); row r is the fp32 logits at position r, the
// distribution that scored t_{r+1}.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "model/kv_decoder.h"

namespace moetrain::trainer {

struct EvalResult {
  double loss = 0;        // mean cross-entropy (nats per target)
  double perplexity = 0;  // exp(loss)
  int64_t num_targets = 0;
};

// Errors (InvalidArgument): fewer than 2 tokens, window < 2 or > decoder.max_context(), a token
// outside the vocabulary (naming its index).
absl::StatusOr<EvalResult> EvaluateTokens(model::KvDecoder& decoder,
                                          const std::vector<int32_t>& tokens, int64_t window,
                                          std::vector<float>* logits_out = nullptr);

}  // namespace moetrain::trainer

// The unigram baseline: the cross-entropy (nats/token) of a unigram model fitted to a token array,
// evaluated on that same array — the entropy of its empirical token distribution. It is the best any
// context-free model can do on that text, so a trained LM must beat it to have learned anything.
#pragma once

#include <cstdint>

namespace moetrain::trainer {

// REQUIRES: 0 <= tokens[i] < vocab, n > 0.
double UnigramEntropyNats(const int32_t* tokens, int64_t n, int64_t vocab);

}  // namespace moetrain::trainer

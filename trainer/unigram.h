// The unigram baseline for "did it learn": a unigram model (token frequencies) fitted to the whole
// validation split, scored on the validation targets the LM is evaluated on. Fitted on the split it
// scores, it is the best any context-free model can do there, so the LM must beat it by a margin.
#pragma once

#include <cstdint>

namespace moetrain::trainer {

// Mean -log p(t) (nats) over eval[0..m) with p the frequencies of fit[0..n).
// REQUIRES: ids in [0, vocab); every eval id occurs in fit (true when eval is drawn from fit).
double UnigramCrossEntropy(const int32_t* fit, int64_t n, const int32_t* eval, int64_t m,
                           int64_t vocab);

}  // namespace moetrain::trainer

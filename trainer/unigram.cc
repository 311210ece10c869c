#include "trainer/unigram.h"

#include <cmath>
#include <vector>

namespace moetrain::trainer {

double UnigramEntropyNats(const int32_t* tokens, int64_t n, int64_t vocab) {
  std::vector<int64_t> counts(vocab, 0);
  for (int64_t i = 0; i < n; ++i) ++counts[tokens[i]];
  double h = 0;
  for (int64_t c : counts)
    if (c > 0) {
      const double p = static_cast<double>(c) / n;
      h -= p * std::log(p);
    }
  return h;
}

}  // namespace moetrain::trainer

#include "trainer/unigram.h"

#include <cmath>
#include <vector>

#include "core/status.h"

namespace moetrain::trainer {

double UnigramCrossEntropy(const int32_t* fit, int64_t n, const int32_t* eval, int64_t m,
                           int64_t vocab) {
  std::vector<int64_t> counts(vocab, 0);
  for (int64_t i = 0; i < n; ++i) ++counts[fit[i]];
  double sum = 0;
  for (int64_t i = 0; i < m; ++i) {
    MT_CHECK_MSG(counts[eval[i]] > 0, "eval token ", eval[i], " not in the fitted split");
    sum -= std::log(static_cast<double>(counts[eval[i]]) / n);
  }
  return m > 0 ? sum / m : 0.0;
}

}  // namespace moetrain::trainer

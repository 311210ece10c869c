#include "trainer/flops.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/matmul.h"

namespace moetrain::trainer {

double ForwardFlopsPerToken(const model::ModelConfig& c, int64_t seq) {
  const double C = c.hidden_size, D = c.HeadDim(), hq = c.num_attention_heads,
               hkv = c.num_key_value_heads;
  double flops = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    flops += 2 * C * (2 * hq * D + 2 * hkv * D);
    flops += 2 * 2 * hq * D * (seq + 1) / 2.0;
    if (c.IsMoeLayer(l)) {
      flops += 2 * C * c.num_local_experts;
      flops += c.num_experts_per_tok * 6 * C * c.ExpertWidth();
      flops += 6 * C * c.SharedWidth();
    } else {
      flops += 6 * C * c.intermediate_size;
    }
  }
  flops += 2 * C * c.vocab_size;
  return flops;
}

double MeasureSgemmPeakFlops(int n, int reps) {
  std::vector<float> a(static_cast<size_t>(n) * n, 1.0f), b(a.size(), 0.5f), out(a.size());
  kernels::Matmul(out.data(), a.data(), b.data(), n, n, n, false, false);  // warm-up
  std::vector<double> secs;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    kernels::Matmul(out.data(), a.data(), b.data(), n, n, n, false, false);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  return 2.0 * n * n * static_cast<double>(n) / secs[secs.size() / 2];
}

}  // namespace moetrain::trainer

// EvaluateTokens: the loss equals the cross-entropy computed in float64 from the dumped logits,
// and each dumped row equals the float64 model's logits with the documented window contexts.
#include "trainer/evaluate.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/testing/reference_model.h"
#include "tests/testing/test_util.h"

namespace moetrain::trainer {
namespace {

// Mean over rows r of logsumexp(logits_r) - logits_r[tokens[r+1]], all in float64.
double CrossEntropyFloat64(const std::vector<float>& logits, const std::vector<int32_t>& tokens,
                           int64_t v) {
  double sum = 0;
  const int64_t rows = static_cast<int64_t>(tokens.size()) - 1;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits.data() + r * v;
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(row[j]));
    for (int64_t j = 0; j < v; ++j) s += std::exp(static_cast<double>(row[j]) - mx);
    sum += mx + std::log(s) - row[tokens[r + 1]];
  }
  return sum / static_cast<double>(rows);
}

TEST(EvaluateTokens, LossIsFloat64CrossEntropyOfTheDumpedLogitsAndWindowsAreAsDocumented) {
  const model::ModelConfig c = moetrain::testing::FeatureConfig();
  const int64_t n = 90, window = 33, V = c.vocab_size;  // windows [0,33) [32,65) [64,90)
  auto tokens = moetrain::testing::RandomInts(n, 0, static_cast<int32_t>(V), 8);
  auto ref = moetrain::testing::MakeReferenceModels(c, window, 6);
  auto d = model::KvDecoder::Create(c, window, *ref.source, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<float> logits;
  auto r = EvaluateTokens(**d, tokens, window, &logits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_targets, n - 1);
  ASSERT_EQ(logits.size(), static_cast<size_t>((n - 1) * V));
  const double ce = CrossEntropyFloat64(logits, tokens, V);
  EXPECT_NEAR(r->loss, ce, 1e-6 * ce);
  EXPECT_NEAR(r->perplexity, std::exp(ce), 1e-6 * std::exp(ce));
  // Row p: the float64 model over the window that starts at s = floor(p / 32) * 32.
  std::vector<double> want;
  for (int64_t s = 0; s < n - 1; s += window - 1) {
    std::vector<int32_t> w(tokens.begin() + s, tokens.begin() + std::min(s + window, n));
    const int64_t rows = static_cast<int64_t>(w.size()) - 1;
    w.resize(window, 0);  // causal: padding is invisible to the rows we keep
    auto full = moetrain::testing::ReferenceLogits(*ref.f64, w);
    want.insert(want.end(), full.begin(), full.begin() + rows * V);
  }
  double max_abs = 0;
  for (double x : want) max_abs = std::max(max_abs, std::fabs(x));
  EXPECT_TRUE(moetrain::testing::AllClose(logits, want, 1e-4, 1e-4 * max_abs, "eval logits"));
}

TEST(EvaluateTokens, OneWindowEqualsTheTrainingModelsCrossEntropy) {
  const model::ModelConfig c = moetrain::testing::TiedSoftmaxConfig();
  const int64_t n = 40;
  auto tokens = moetrain::testing::RandomInts(n, 0, static_cast<int32_t>(c.vocab_size), 1);
  auto ref = moetrain::testing::MakeReferenceModels(c, n, 3);
  auto d = model::KvDecoder::Create(c, n, *ref.source, 1);
  ASSERT_TRUE(d.ok()) << d.status();
  auto r = EvaluateTokens(**d, tokens, n);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<int32_t> targets(tokens.begin() + 1, tokens.end());
  targets.push_back(model::kIgnoreIndex);
  const model::LossBreakdown want = ref.f64->Forward(tokens.data(), targets.data());
  EXPECT_EQ(r->num_targets, want.num_targets);
  EXPECT_NEAR(r->loss, want.ce, 1e-5 * want.ce);
}

TEST(EvaluateTokens, RejectsBadInput) {
  const model::ModelConfig c = moetrain::testing::TiedSoftmaxConfig();
  auto ref = moetrain::testing::MakeReferenceModels(c, 8, 3);
  auto d = model::KvDecoder::Create(c, 8, *ref.source, 1);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(EvaluateTokens(**d, {1}, 8).ok());
  EXPECT_FALSE(EvaluateTokens(**d, {1, 2, 3}, 1).ok());
  EXPECT_FALSE(EvaluateTokens(**d, {1, 2, 3}, 9).ok());
  auto bad = EvaluateTokens(**d, {1, 2, 500}, 8);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token 2"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace moetrain::trainer

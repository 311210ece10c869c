// Sampling with top-k / top-p / temperature, and GenerateWithCache (KV cache) against the
// cache-free Generate over the full model forward (a second code path).
#include <cmath>
#include <map>

#include "gtest/gtest.h"
#include "tests/testing/reference_model.h"
#include "tests/testing/test_util.h"
#include "trainer/sampling.h"

namespace moetrain::trainer {
namespace {

TEST(SampleToken, TopKOneAndZeroTemperatureAreArgmax) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto logits = moetrain::testing::RandomVector<float>(50, seed);
    const int32_t argmax =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::mt19937_64 rng(seed);
    EXPECT_EQ(SampleToken(logits.data(), 50, 1.5, 1, 1.0, &rng), argmax);
    EXPECT_EQ(SampleToken(logits.data(), 50, 0.0, 0, 0.9, &rng), argmax);
  }
}

// Draw frequencies against the float64 top-k-then-top-p distribution.
TEST(SampleToken, FrequenciesFollowTopKTopPDistribution) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 1.5f, -1.0f, 0.0f};
  const double temperature = 0.7, top_p = 0.8;
  const int64_t top_k = 4;
  // Reference: p ~ exp(l / T); the 4 largest: ids 0 (2.0), 3 (1.5), 1 (1.0), 2 (0.5). Top-p keeps
  // the shortest prefix whose mass reaches 0.8 of those four.
  std::vector<int> order = {0, 3, 1, 2};
  std::vector<double> p(6);
  for (int i = 0; i < 6; ++i) p[i] = std::exp(logits[i] / temperature);
  double mass4 = 0;
  for (int i : order) mass4 += p[i];
  std::vector<int> kept;
  double kept_mass = 0;
  for (int i : order) {
    if (!kept.empty() && kept_mass >= top_p * mass4) break;
    kept.push_back(i);
    kept_mass += p[i];
  }
  ASSERT_GE(kept.size(), 2u);  // the case exercises a real choice
  ASSERT_LT(kept.size(), 4u);  // and a real top-p cut inside the top-k
  std::mt19937_64 rng(5);
  const int draws = 40000;
  std::map<int32_t, int> count;
  for (int d = 0; d < draws; ++d)
    ++count[SampleToken(logits.data(), 6, temperature, top_k, top_p, &rng)];
  int total_kept = 0;
  for (int i : kept) {
    const double want = p[i] / kept_mass, got = count[i] / static_cast<double>(draws);
    EXPECT_NEAR(got, want, 0.01) << "token " << i;
    total_kept += count[i];
  }
  EXPECT_EQ(total_kept, draws) << "only kept tokens are drawn";
}

TEST(GenerateWithCache, DeterministicForASeedAndEqualToCacheFreeGenerate) {
  const model::ModelConfig c = moetrain::testing::FeatureConfig();
  const std::vector<int32_t> prompt = {5, 17, 3, 90, 42};
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_p = 0.95;
  o.top_k = 40;
  o.max_new_tokens = 20;
  o.seed = 11;
  const int64_t seq = static_cast<int64_t>(prompt.size()) + o.max_new_tokens;
  auto ref = moetrain::testing::MakeReferenceModels(c, seq, 4);
  auto d = model::KvDecoder::Create(c, seq, *ref.source, 1);
  ASSERT_TRUE(d.ok()) << d.status();
  auto a = GenerateWithCache(**d, prompt, o);
  auto b = GenerateWithCache(**d, prompt, o);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->size(), 20u);
  EXPECT_EQ(*a, *b);
  // The cache-free path (full causal forward of Model<float> per token) draws the same tokens.
  EXPECT_EQ(Generate(ref.f32.get(), prompt, o), *a);
  o.seed = 12;
  auto other = GenerateWithCache(**d, prompt, o);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *a) << "another seed, another sample";
}

TEST(GenerateWithCache, TopKOneIsGreedyArgmaxOfTheFloat64Model) {
  const model::ModelConfig c = moetrain::testing::TiedSoftmaxConfig();
  const std::vector<int32_t> prompt = {1, 2, 3};
  SamplingOptions o;
  o.temperature = 2.0;
  o.top_k = 1;
  o.max_new_tokens = 8;
  const int64_t seq = 3 + 8;
  auto ref = moetrain::testing::MakeReferenceModels(c, seq, 9);
  auto d = model::KvDecoder::Create(c, seq, *ref.source, 1);
  ASSERT_TRUE(d.ok()) << d.status();
  auto got = GenerateWithCache(**d, prompt, o);
  ASSERT_TRUE(got.ok()) << got.status();
  // Reference: greedy decoding with full float64 forwards over the growing (padded) context.
  std::vector<int32_t> context = prompt, want;
  for (int step = 0; step < 8; ++step) {
    std::vector<int32_t> padded = context;
    padded.resize(seq, 0);
    auto logits = moetrain::testing::ReferenceLogits(*ref.f64, padded);
    const double* row = logits.data() + (context.size() - 1) * c.vocab_size;
    const int32_t next = static_cast<int32_t>(std::max_element(row, row + c.vocab_size) - row);
    want.push_back(next);
    context.push_back(next);
  }
  EXPECT_EQ(*got, want);
}

TEST(GenerateWithCache, StopsAtStopTokenAndWhenTheCacheIsFull) {
  const model::ModelConfig c = moetrain::testing::TiedSoftmaxConfig();
  auto ref = moetrain::testing::MakeReferenceModels(c, 8, 2);
  auto d = model::KvDecoder::Create(c, 6, *ref.source, 1);
  ASSERT_TRUE(d.ok()) << d.status();
  SamplingOptions o;
  o.temperature = 0;  // greedy
  o.max_new_tokens = 50;
  auto full = GenerateWithCache(**d, {1, 2, 3, 4}, o);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->size(), 3u) << "max_context 6 - prompt 4 + 1";
  o.stop_token = (*full)[1];
  auto stopped = GenerateWithCache(**d, {1, 2, 3, 4}, o);
  ASSERT_TRUE(stopped.ok());
  const size_t first_stop = std::find(full->begin(), full->end(), o.stop_token) - full->begin();
  EXPECT_EQ(*stopped, std::vector<int32_t>(full->begin(), full->begin() + first_stop));
  EXPECT_FALSE(GenerateWithCache(**d, {}, o).ok());
  EXPECT_FALSE(GenerateWithCache(**d, {1, 2, 3, 4, 5, 6, 7}, o).ok());
  EXPECT_FALSE(GenerateWithCache(**d, {1, 999}, o).ok());
}

}  // namespace
}  // namespace moetrain::trainer

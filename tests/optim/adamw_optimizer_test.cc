// AdamWOptimizer against an independent float64 re-implementation of AdamW with global-norm clipping
// and per-tensor weight-decay flags, over two steps of a real model's gradients.
#include "optim/adamw_optimizer.h"

#include <cmath>
#include <map>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::optim {
namespace {

model::ModelConfig Tiny() {
  model::ModelConfig c;
  c.vocab_size = 29;
  c.hidden_size = 8;
  c.intermediate_size = 6;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.num_local_experts = 3;
  c.num_experts_per_tok = 2;
  c.max_position_embeddings = 16;
  return c;
}

struct RefState {
  std::vector<double> p, m, v;
};

void RunCase(double clip) {
  auto model = model::Model<double>::Create(Tiny(), 2, 5);
  ASSERT_TRUE(model.ok());
  model::Model<double>& m = **model;
  m.InitParams(1);
  AdamWConfig cfg{0.9, 0.95, 1e-8, 0.1, clip};
  auto opt = AdamWOptimizer<double>::Create(&m, cfg);
  ASSERT_TRUE(opt.ok());
  auto tokens = moetrain::testing::RandomInts(10, 0, 29, 3);
  auto targets = moetrain::testing::RandomInts(10, 0, 29, 4);

  std::map<std::string, RefState> ref;
  for (const auto& s : m.table().specs()) {
    const double* p = m.Param(s.name).as<double>();
    ref[s.name] = RefState{std::vector<double>(p, p + s.numel()), std::vector<double>(s.numel(), 0),
                           std::vector<double>(s.numel(), 0)};
  }
  const double lrs[2] = {1e-2, 5e-3};
  for (int step = 1; step <= 2; ++step) {
    m.ZeroGrads();
    m.Forward(tokens.data(), targets.data());
    m.Backward();
    double sq = 0;
    for (const auto& s : m.table().specs()) {
      const double* g = m.Grad(s.name).as<double>();
      for (int64_t i = 0; i < s.numel(); ++i) sq += g[i] * g[i];
    }
    const double norm = std::sqrt(sq);
    const double scale = (clip > 0 && norm > clip) ? clip / (norm + 1e-6) : 1.0;
    for (const auto& s : m.table().specs()) {
      const double* g = m.Grad(s.name).as<double>();
      RefState& r = ref[s.name];
      const bool is_norm = s.shape.size() == 1;  // norms: no weight decay
      for (int64_t i = 0; i < s.numel(); ++i) {
        const double gi = g[i] * scale;
        r.m[i] = 0.9 * r.m[i] + 0.1 * gi;
        r.v[i] = 0.95 * r.v[i] + 0.05 * gi * gi;
        const double mh = r.m[i] / (1 - std::pow(0.9, step)), vh = r.v[i] / (1 - std::pow(0.95, step));
        r.p[i] -= lrs[step - 1] * (mh / (std::sqrt(vh) + 1e-8) + (is_norm ? 0.0 : 0.1) * r.p[i]);
      }
    }
    StepStats st = (*opt)->Step(lrs[step - 1]);
    EXPECT_NEAR(st.grad_norm, norm, 1e-12 * norm);
    if (clip > 0) EXPECT_LT(st.clip_scale, 1.0) << "the case must actually clip";
  }
  for (const auto& s : m.table().specs()) {
    const double* p = m.Param(s.name).as<double>();
    EXPECT_TRUE(moetrain::testing::AllClose(std::vector<double>(p, p + s.numel()), ref[s.name].p,
                                            1e-12, 1e-14, s.name));
    EXPECT_EQ((*opt)->StepCount(s.name), 2);
  }
}

TEST(AdamWOptimizerTest, MatchesReferenceWithoutClipping) { RunCase(0.0); }
TEST(AdamWOptimizerTest, MatchesReferenceWithClipping) { RunCase(0.05); }

}  // namespace
}  // namespace moetrain::optim

// fp16 loss scaling end to end on one rank: an inf injected into one gradient makes ZeroOptimizer
// skip the step with the master weights, both moments and every step count bitwise unchanged (and
// the model's compute copies too), and the dynamic loss scaler (hysteresis 1) halves its scale; the
// next clean step updates everything. For every ZeRO stage (a world of one still runs each stage's
// code path: the flat layout, rotating buffers, per-layer reduction).
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "optim/loss_scaler.h"
#include "optim/zero_optimizer.h"
#include "tests/testing/model_configs.h"

namespace moetrain::optim {
namespace {

model::ModelConfig Config() {
  return moetrain::testing::TinyOptimizerConfig();
}

struct Snapshot {
  std::vector<float> master, m, v, params;
  std::vector<int64_t> steps;
  bool operator==(const Snapshot& o) const {
    return master == o.master && m == o.m && v == o.v && params == o.params && steps == o.steps;
  }
};

Snapshot Take(model::Model<float>& model, ZeroOptimizer<float>& z) {
  Snapshot s;
  for (const auto& u : z.Units()) {
    const int64_t n = u.end - u.begin;
    s.master.insert(s.master.end(), u.master, u.master + n);
    s.m.insert(s.m.end(), u.m, u.m + n);
    s.v.insert(s.v.end(), u.v, u.v + n);
    s.steps.push_back(*u.step);
  }
  for (const auto& g : model.param_groups()) {
    EXPECT_TRUE(z.Materialize(g.index).ok());
    s.params.insert(s.params.end(), model.GroupParams(g.index), model.GroupParams(g.index) + g.numel);
  }
  return s;
}

class ZeroSkipStep : public ::testing::TestWithParam<int> {};

TEST_P(ZeroSkipStep, InfGradientSkipsTheStepAndHalvesTheScale) {
  const int stage = GetParam();
  const int64_t B = 2, S = 8;
  model::ModelParallel mp;
  mp.zero_stage = stage;
  model::ModelOptions mo;
  mo.compute_dtype = DType::kF16;
  auto model = model::Model<float>::Create(Config(), B, S, 1, mp, mo);
  ASSERT_TRUE(model.ok()) << model.status();
  ZeroOptions zo;
  zo.compute_dtype = DType::kF16;
  auto z = ZeroOptimizer<float>::Create(model->get(), zo, {});
  ASSERT_TRUE(z.ok()) << z.status();
  (*z)->InitFromSeed(7);
  LossScalerConfig lc;
  lc.initial_scale = 1024;
  lc.hysteresis = 1;
  auto scaler = LossScaler::Dynamic(lc);
  ASSERT_TRUE(scaler.ok());

  std::vector<int32_t> tokens(B * S), targets(B * S);
  std::mt19937 rng(3);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 32);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 32);
  // `inject`: after backward, write inf into one gradient element — into the gradient buffer of
  // the last layer for stage < 2; for stage >= 2 gradients are reduced inside Backward, so the inf
  // goes in through the loss instead (a huge scale overflows fp16 activation gradients).
  auto run_step = [&](bool inject) -> ZeroStepStats {
    (*z)->BeginStep();
    (*model)->Forward(tokens.data(), targets.data());
    const double scale = inject && stage >= 2 ? 1e30 : scaler->scale();
    (*model)->Backward(scale);
    if (inject && stage < 2) {
      const auto& groups = (*model)->param_groups();
      (*model)->GroupGrads(groups.back().index)[0] = std::numeric_limits<float>::infinity();
    }
    auto st = (*z)->Step(1e-2, scaler->scale());
    EXPECT_TRUE(st.ok()) << st.status();
    return *st;
  };

  ZeroStepStats first = run_step(false);  // moments and steps become non-trivial
  EXPECT_FALSE(first.skipped);
  EXPECT_FALSE(scaler->Update(first.skipped));
  const Snapshot before = Take(**model, **z);

  ZeroStepStats bad = run_step(true);
  EXPECT_TRUE(bad.skipped);
  EXPECT_FALSE(std::isfinite(bad.grad_norm));
  EXPECT_TRUE(scaler->Update(bad.skipped));
  EXPECT_EQ(scaler->scale(), 512);  // halved (hysteresis 1)
  EXPECT_TRUE(Take(**model, **z) == before) << "a skipped step changed the state";

  ZeroStepStats good = run_step(false);
  EXPECT_FALSE(good.skipped);
  const Snapshot after = Take(**model, **z);
  EXPECT_NE(after.master, before.master);
  EXPECT_NE(after.m, before.m);
  for (size_t i = 0; i < after.steps.size(); ++i)
    if (before.steps[i] > 0) {
      EXPECT_GE(after.steps[i], before.steps[i]);
    }
  // Compute copies are the master rounded to fp16.
  for (float p : after.params) EXPECT_EQ(p, F16ToFloat(FloatToF16(p)));
}

INSTANTIATE_TEST_SUITE_P(Stages, ZeroSkipStep, ::testing::Values(0, 1, 2, 3));

}  // namespace
}  // namespace moetrain::optim

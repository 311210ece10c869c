// ZeroOptimizer::FirstNonFiniteGradientTensor on one rank (ZeRO stages 0 and 1, fp32): after
// NaN/Inf is written into the gradients of chosen tensors (found by name through the parameter
// units, the layout the optimizer reads), the skipped step reports the smallest TABLE index among
// them -- the table position is looked up independently by a linear search over table().specs() --
// even when that tensor's buffer comes later in the optimizer's unit order; a clean step reports
// -1.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
#include "tests/testing/model_configs.h"

namespace moetrain::optim {
namespace {

model::ModelConfig Config() {
  return moetrain::testing::TinyOptimizerConfig();
}

int64_t TableIndex(const model::ParamTable& table, const std::string& name) {
  for (size_t i = 0; i < table.specs().size(); ++i)
    if (table.specs()[i].name == name) return static_cast<int64_t>(i);
  ADD_FAILURE() << name << " is not in the table";
  return -1;
}

// The gradient element `k` of tensor `name` in the model's full gradient buffers.
float* GradOf(model::Model<float>& model, const std::string& name, int64_t k) {
  for (const model::ParamGroup& g : model.param_groups())
    for (const model::ParamUnit& u : g.units)
      for (const model::ParamUnit::Tensor& t : u.tensors)
        if (t.spec->name == name) return model.GroupGrads(g.index) + u.offset + t.offset + k;
  ADD_FAILURE() << name << " has no gradient in the parameter units";
  static float dummy;
  return &dummy;
}

class ZeroNonFiniteTensor : public ::testing::TestWithParam<int> {};

TEST_P(ZeroNonFiniteTensor, NamesTheFirstBadTensorInTableOrder) {
  const int64_t B = 2, S = 8;
  model::ModelParallel mp;
  mp.zero_stage = GetParam();
  auto model = model::Model<float>::Create(Config(), B, S, 1, mp, {});
  ASSERT_TRUE(model.ok()) << model.status();
  auto z = ZeroOptimizer<float>::Create(model->get(), {}, {});
  ASSERT_TRUE(z.ok()) << z.status();
  (*z)->InitFromSeed(5);
  const model::ParamTable& table = (*model)->table();

  std::vector<int32_t> tokens(B * S), targets(B * S);
  std::mt19937 rng(11);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 32);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 32);
  // One step; `poison` lists (tensor, element, value) written into the gradients after backward.
  struct Poison {
    std::string name;
    int64_t k;
    float value;
  };
  auto step = [&](const std::vector<Poison>& poison) {
    (*z)->BeginStep();
    (*model)->Forward(tokens.data(), targets.data());
    (*model)->Backward(1.0);
    for (const Poison& p : poison) *GradOf(**model, p.name, p.k) = p.value;
    auto st = (*z)->Step(1e-3, 1.0);
    EXPECT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->skipped, !poison.empty());
    return (*z)->FirstNonFiniteGradientTensor();
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::string embed = "model.embed_tokens.weight";
  const std::string o_proj = "model.layers.1.self_attn.o_proj.weight";
  const std::string q_proj = "model.layers.0.self_attn.q_proj.weight";

  EXPECT_EQ(step({}), -1);
  EXPECT_EQ(step({{o_proj, 5, nan}}), TableIndex(table, o_proj));
  // Two bad tensors: the one earlier in the table wins, whatever the buffer order.
  const int64_t want = std::min(TableIndex(table, o_proj), TableIndex(table, q_proj));
  EXPECT_EQ(step({{o_proj, 0, inf}, {q_proj, 7, -inf}}), want);
  EXPECT_EQ(step({{o_proj, 1, nan}, {embed, 30, nan}}), TableIndex(table, embed));
  EXPECT_EQ(step({}), -1);  // a clean step after skipped ones
}

INSTANTIATE_TEST_SUITE_P(Stages, ZeroNonFiniteTensor, ::testing::Values(0, 1));

}  // namespace
}  // namespace moetrain::optim

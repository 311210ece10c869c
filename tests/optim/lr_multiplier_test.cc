// Per-tensor learning-rate multipliers in ZeroOptimizer (fine-tuning): a multiplier of 0 keeps the
// tensor bitwise unchanged (parameter, compute copy, moments) over several steps while the other
// tensors train, for every ZeRO stage; a multiplier of 0.5 gives exactly the AdamW update with lr/2
// (one step, against an independent float64 evaluation of the AdamW formula).
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "model/param_role.h"
#include "optim/zero_optimizer.h"
#include "tests/testing/model_configs.h"

namespace moetrain::optim {
namespace {

model::ModelConfig Config() {
  model::ModelConfig c = moetrain::testing::TinyOptimizerConfig();
  c.num_hidden_layers = 3;
  c.first_k_dense_replace = 1;  // layer 0 is dense: the dense_mlp role exists
  c.num_shared_experts = 1;
  return c;
}

// Every trainable tensor's current compute copy, by name (materializing ZeRO-3 groups one by one).
std::map<std::string, std::vector<float>> Params(model::Model<float>& model,
                                                 ZeroOptimizer<float>& z) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& g : model.param_groups()) {
    EXPECT_TRUE(z.Materialize(g.index).ok());
    for (const auto& u : g.units)
      for (const auto& t : u.tensors) {
        const TensorView v = model.Param(t.spec->name);
        out[t.spec->name].assign(v.as<float>(), v.as<float>() + v.numel());
      }
  }
  return out;
}

// Moments of the tensors with the given role, concatenated per tensor name.
std::map<std::string, std::vector<float>> Moments(ZeroOptimizer<float>& z, model::ParamRole role) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& u : z.Units())
    for (const auto& t : u.unit->tensors) {
      if (model::RoleOf(*t.spec) != role) continue;
      const int64_t a = std::max(u.begin, t.offset), b = std::min(u.end, t.offset + t.numel);
      for (int64_t i = a; i < b; ++i) {
        out[t.spec->name].push_back(u.m[i - u.begin]);
        out[t.spec->name].push_back(u.v[i - u.begin]);
      }
    }
  return out;
}

void RandomBatch(uint32_t seed, int64_t n, std::vector<int32_t>* tokens,
                 std::vector<int32_t>* targets) {
  std::mt19937 rng(seed);
  tokens->resize(n);
  targets->resize(n);
  for (auto& t : *tokens) t = static_cast<int32_t>(rng() % 32);
  for (auto& t : *targets) t = static_cast<int32_t>(rng() % 32);
}

struct FrozenCase {
  int stage;
  DType compute;
};

class FrozenTensors : public ::testing::TestWithParam<FrozenCase> {};

TEST_P(FrozenTensors, StayBitwiseUnchangedWhileTheOthersTrain) {
  const FrozenCase c = GetParam();
  const int64_t B = 2, S = 8;
  model::ModelParallel mp;
  mp.zero_stage = c.stage;
  model::ModelOptions mo;
  mo.compute_dtype = c.compute;
  auto model = model::Model<float>::Create(Config(), B, S, 1, mp, mo);
  ASSERT_TRUE(model.ok()) << model.status();
  ZeroOptions zo;
  zo.compute_dtype = c.compute;
  // Router and attention frozen; embeddings at a quarter of the rate; the rest at full rate.
  zo.lr_multiplier = [](const model::ParamSpec& s) {
    switch (model::RoleOf(s)) {
      case model::ParamRole::kRouter:
      case model::ParamRole::kAttention:
        return 0.0;
      case model::ParamRole::kEmbeddings:
        return 0.25;
      default:
        return 1.0;
    }
  };
  auto z = ZeroOptimizer<float>::Create(model->get(), zo, {});
  ASSERT_TRUE(z.ok()) << z.status();
  (*z)->InitFromSeed(11);
  const auto before = Params(**model, **z);
  std::vector<int32_t> tokens, targets;
  for (int step = 0; step < 4; ++step) {
    RandomBatch(100 + step, B * S, &tokens, &targets);
    (*z)->BeginStep();
    (*model)->Forward(tokens.data(), targets.data());
    (*model)->Backward(1.0);
    auto st = (*z)->Step(1e-2);
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_FALSE(st->skipped);
  }
  const auto after = Params(**model, **z);
  std::map<model::ParamRole, int> moved, unchanged;
  for (const auto& [name, values] : after) {
    const model::ParamRole role = model::RoleOf(*(*model)->table().Find(name));
    const bool same = values == before.at(name);
    (same ? unchanged : moved)[role] += 1;
    if (role == model::ParamRole::kRouter || role == model::ParamRole::kAttention) {
      EXPECT_TRUE(same) << name << " is frozen but changed";
    }
  }
  for (model::ParamRole r : {model::ParamRole::kRouter, model::ParamRole::kAttention})
    EXPECT_GT(unchanged[r], 0) << model::ParamRoleName(r);
  for (model::ParamRole r :
       {model::ParamRole::kExperts, model::ParamRole::kSharedExperts, model::ParamRole::kEmbeddings,
        model::ParamRole::kNorms, model::ParamRole::kDenseMlp}) {
    EXPECT_GT(moved[r], 0) << model::ParamRoleName(r) << " did not train";
  }
  // Frozen tensors' moments never left zero; trained ones did.
  for (const auto& [name, mv] : Moments(**z, model::ParamRole::kRouter)) {
    for (float x : mv) {
      ASSERT_EQ(x, 0.0f) << name;
    }
  }
  bool any_nonzero = false;
  for (const auto& [name, mv] : Moments(**z, model::ParamRole::kSharedExperts))
    for (float x : mv) any_nonzero = any_nonzero || x != 0;
  EXPECT_TRUE(any_nonzero);
}

INSTANTIATE_TEST_SUITE_P(Stages, FrozenTensors,
                         ::testing::Values(FrozenCase{0, DType::kF32}, FrozenCase{1, DType::kF32},
                                           FrozenCase{2, DType::kF32}, FrozenCase{3, DType::kF32},
                                           FrozenCase{1, DType::kBF16},
                                           FrozenCase{3, DType::kBF16}));

TEST(LrMultiplier, HalfIsExactlyTheAdamWUpdateWithHalfTheRate) {
  const int64_t B = 2, S = 8;
  auto model = model::Model<float>::Create(Config(), B, S, 1, {}, {});
  ASSERT_TRUE(model.ok()) << model.status();
  ZeroOptions zo;
  zo.adam = AdamWConfig{0.9, 0.95, 1e-8, 0.1, /*grad_clip=*/0.0};
  zo.sparse_expert_updates = false;  // every tensor takes the step, idle experts included
  zo.lr_multiplier = [](const model::ParamSpec& s) {
    return model::RoleOf(s) == model::ParamRole::kAttention ? 0.5 : 1.0;
  };
  auto z = ZeroOptimizer<float>::Create(model->get(), zo, {});
  ASSERT_TRUE(z.ok()) << z.status();
  (*z)->InitFromSeed(5);
  std::vector<int32_t> tokens, targets;
  RandomBatch(9, B * S, &tokens, &targets);
  (*z)->BeginStep();
  (*model)->Forward(tokens.data(), targets.data());
  (*model)->Backward(1.0);
  const auto p0 = Params(**model, **z);
  std::map<std::string, std::vector<float>> g0;
  for (const auto& [name, v] : p0) {
    const TensorView g = (*model)->Grad(name);
    g0[name].assign(g.as<float>(), g.as<float>() + g.numel());
  }
  const double lr = 3e-3;
  ASSERT_TRUE((*z)->Step(lr).ok());
  const auto p1 = Params(**model, **z);
  int checked_half = 0;
  for (const auto& [name, before] : p0) {
    const model::ParamSpec& spec = *(*model)->table().Find(name);
    const double rate = lr * (model::RoleOf(spec) == model::ParamRole::kAttention ? 0.5 : 1.0);
    const double wd = spec.weight_decay ? 0.1 : 0.0;
    for (size_t i = 0; i < before.size(); ++i) {
      // First AdamW step in float64: m = (1-b1) g, v = (1-b2) g^2, bias-corrected by 1-b^1.
      const double g = g0[name][i], p = before[i];
      const double m_hat = (1 - 0.9) * g / (1 - 0.9), v_hat = (1 - 0.95) * g * g / (1 - 0.95);
      const double expected = p - rate * (m_hat / (std::sqrt(v_hat) + 1e-8) + wd * p);
      ASSERT_NEAR(p1.at(name)[i], expected, 4e-7 * std::max(1.0, std::fabs(expected)))
          << name << "[" << i << "] g " << g;
    }
    if (rate < lr) ++checked_half;
  }
  EXPECT_EQ(checked_half, 4 * Config().num_hidden_layers);  // q, k, v, o per layer
}

TEST(LrMultiplier, RejectsNegativeMultiplierNamingTheTensor) {
  auto model = model::Model<float>::Create(Config(), 1, 4, 1, {}, {});
  ASSERT_TRUE(model.ok());
  ZeroOptions zo;
  zo.lr_multiplier = [](const model::ParamSpec& s) {
    return s.name == "model.norm.weight" ? -1.0 : 1.0;
  };
  auto z = ZeroOptimizer<float>::Create(model->get(), zo, {});
  ASSERT_FALSE(z.ok());
  EXPECT_NE(std::string(z.status().message()).find("model.norm.weight"), std::string::npos)
      << z.status();
}

}  // namespace
}  // namespace moetrain::optim

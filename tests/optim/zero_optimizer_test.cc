// ZeroOptimizer against an independent float64 re-implementation of AdamW with global-norm clipping
// and per-tensor weight-decay flags, over two steps of a real model's gradients, for every ZeRO stage
// in a world of one (each stage still runs its own code path: master copy, flat padded layout,
// rotating layer buffers, per-layer gradient reduction, stage-3 gathers).
//
// The reference is a second, plain model (no optimizer, no hooks): each step its parameters are set
// to the reference weights, its gradients give the reference norm, and AdamW is applied in float64
// by the loop below. The optimizer's parameters (its master chunks, and the compute copies it writes
// into the model) must match within 1e-12, its reported norm too, and every unit's step count is 2.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
#include "tests/testing/test_util.h"

namespace moetrain::optim {
namespace {

model::ModelConfig Tiny() {
  model::ModelConfig c;
  c.vocab_size = 29;
  c.hidden_size = 8;
  c.intermediate_size = 6;
  c.num_hidden_layers = 3;  // > 2: stages 2-3 reuse their two rotating layer buffers
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.num_local_experts = 3;
  c.num_experts_per_tok = 2;
  c.max_position_embeddings = 16;
  return c;
}

constexpr int64_t kBatch = 2, kSeq = 5;
constexpr uint64_t kSeed = 1;

struct RefState {
  std::vector<double> p, m, v;
};

// Every trained tensor of the optimizer by name, read through fetch(unit state, tensor).
template <typename Fetch>
std::map<std::string, std::vector<double>> ByName(ZeroOptimizer<double>& z, Fetch fetch) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& u : z.Units()) {
    EXPECT_EQ(u.begin, 0);  // a world of one owns the whole unit
    EXPECT_EQ(u.end, u.unit->padded);
    for (const model::ParamUnit::Tensor& t : u.unit->tensors) {
      const double* p = fetch(u, t);
      out[t.spec->name].assign(p, p + t.numel);
    }
  }
  return out;
}

void RunCase(int stage, double clip) {
  SCOPED_TRACE("stage " + std::to_string(stage) + ", clip " + std::to_string(clip));
  model::ModelParallel mp;
  mp.zero_stage = stage;
  auto model = model::Model<double>::Create(Tiny(), kBatch, kSeq, 1, mp);
  ASSERT_TRUE(model.ok()) << model.status();
  model::Model<double>& m = **model;
  ZeroOptions zo;
  zo.adam = AdamWConfig{0.9, 0.95, 1e-8, 0.1, clip};
  auto opt_or = ZeroOptimizer<double>::Create(&m, zo, ZeroComms{});
  ASSERT_TRUE(opt_or.ok()) << opt_or.status();
  ZeroOptimizer<double>& opt = **opt_or;
  ASSERT_EQ(opt.stage(), stage);
  opt.InitFromSeed(kSeed);

  auto ref_model = model::Model<double>::Create(Tiny(), kBatch, kSeq, 1);
  ASSERT_TRUE(ref_model.ok()) << ref_model.status();
  model::Model<double>& r = **ref_model;
  r.InitParams(kSeed);  // the same numbers as InitFromSeed (init is layout independent)

  auto tokens = moetrain::testing::RandomInts(kBatch * kSeq, 0, 29, 3);
  auto targets = moetrain::testing::RandomInts(kBatch * kSeq, 0, 29, 4);

  std::map<std::string, RefState> ref;
  for (const auto& s : r.table().specs()) {
    if (!r.HasGrad(s.name)) continue;  // buffers
    const double* p = r.Param(s.name).as<double>();
    ref[s.name] = RefState{std::vector<double>(p, p + s.numel()), std::vector<double>(s.numel(), 0),
                           std::vector<double>(s.numel(), 0)};
  }
  const double lrs[2] = {1e-2, 5e-3};
  for (int step = 1; step <= 2; ++step) {
    // Reference: gradients of the reference weights, then float64 AdamW.
    for (auto& [name, st] : ref) std::copy(st.p.begin(), st.p.end(), r.Param(name).as<double>());
    r.ZeroGrads();
    r.Forward(tokens.data(), targets.data());
    r.Backward();
    double sq = 0;
    for (const auto& [name, st] : ref) {
      const double* g = r.Grad(name).as<double>();
      for (size_t i = 0; i < st.p.size(); ++i) sq += g[i] * g[i];
    }
    const double norm = std::sqrt(sq);
    const double scale = (clip > 0 && norm > clip) ? clip / (norm + 1e-6) : 1.0;
    for (const auto& s : r.table().specs()) {
      if (!r.HasGrad(s.name)) continue;
      const double* g = r.Grad(s.name).as<double>();
      RefState& st = ref[s.name];
      const bool is_norm = s.shape.size() == 1;  // norms: no weight decay
      for (int64_t i = 0; i < s.numel(); ++i) {
        const double gi = g[i] * scale;
        st.m[i] = 0.9 * st.m[i] + 0.1 * gi;
        st.v[i] = 0.95 * st.v[i] + 0.05 * gi * gi;
        const double mh = st.m[i] / (1 - std::pow(0.9, step)), vh = st.v[i] / (1 - std::pow(0.95, step));
        st.p[i] -= lrs[step - 1] * (mh / (std::sqrt(vh) + 1e-8) + (is_norm ? 0.0 : 0.1) * st.p[i]);
      }
    }

    // The optimizer's step protocol.
    opt.BeginStep();
    m.Forward(tokens.data(), targets.data());
    m.Backward();
    auto st = opt.Step(lrs[step - 1]);
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_NEAR(st->grad_norm, norm, 1e-12 * norm);
    EXPECT_FALSE(st->skipped);
    // The reference updates every expert: the case must give every expert tokens.
    EXPECT_EQ(st->experts_skipped, 0);
    if (clip > 0) {
      EXPECT_LT(st->clip_scale, 1.0) << "the case must actually clip";
    } else {
      EXPECT_EQ(st->clip_scale, 1.0);
    }
  }

  // The master weights, and the compute copies in the model (stage 3: gathered on demand).
  auto master = ByName(opt, [](const auto& u, const model::ParamUnit::Tensor& t) -> const double* {
    return u.master + (t.offset - u.begin);  // master points at the chunk start
  });
  auto copies = ByName(opt, [&](const auto& u, const model::ParamUnit::Tensor& t) -> const double* {
    EXPECT_TRUE(opt.Materialize(u.group->index).ok());
    return m.GroupParams(u.group->index) + u.unit->offset + t.offset;
  });
  EXPECT_EQ(master.size(), ref.size()) << "every trained tensor appears in exactly one unit";
  for (const auto& [name, st] : ref) {
    ASSERT_TRUE(master.count(name)) << name << " missing from the optimizer's units";
    EXPECT_TRUE(moetrain::testing::AllClose(master[name], st.p, 1e-12, 1e-14, name + " (master)"));
    EXPECT_TRUE(moetrain::testing::AllClose(copies[name], st.p, 1e-12, 1e-14, name + " (model copy)"));
  }
  for (const auto& u : opt.Units()) EXPECT_EQ(*u.step, 2);
}

class ZeroOptimizerTest : public ::testing::TestWithParam<int> {};

TEST_P(ZeroOptimizerTest, MatchesReferenceWithoutClipping) { RunCase(GetParam(), 0.0); }
TEST_P(ZeroOptimizerTest, MatchesReferenceWithClipping) { RunCase(GetParam(), 0.05); }

INSTANTIATE_TEST_SUITE_P(Stages, ZeroOptimizerTest, ::testing::Values(0, 1, 2, 3),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "Stage" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace moetrain::optim

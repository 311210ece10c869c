// ZeRO stages against ZeRO-0, as real MPI ranks (mpirun -np 4: dp = 4, and dp = 4 with ep = 2) and
// as a world of one. For each stage 1-3: the per-step loss and every parameter this rank holds after
// a few AdamW steps (with gradient accumulation) match the stage-0 run within 1e-5 relative; the
// optimizer state per rank shrinks with the dp size. Sparse expert updates: an expert that the router
// bias keeps from receiving any token stays bitwise unchanged (parameters, moments, step count) in
// every stage, while the others move, and its gradients are not communicated.
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
#include "parallel/process_groups.h"
#include "tests/parallel/mpi_test_env.h"
#include "tests/testing/model_configs.h"

namespace moetrain::optim {
namespace {

using model::Model;
using model::ModelConfig;
using parallel::testing::TestLaunch;
using parallel::testing::TestWorld;

ModelConfig TinyConfig() {
  ModelConfig c = moetrain::testing::TinyMoeConfig();
  c.vocab_size = 40;
  c.num_hidden_layers = 3;
  c.first_k_dense_replace = 1;
  c.initializer_range = 0.2;
  return c;
}

struct RunResult {
  std::vector<double> losses;
  std::map<std::string, std::vector<float>> params;  // every tensor this rank holds
  std::map<std::string, int64_t> steps;               // per unit's first tensor
  std::map<std::string, bool> zero_moments;           // per unit's first tensor: m == v == 0
  size_t optimizer_bytes = 0;
  int64_t experts_skipped = 0;
  int64_t edp_grad_bytes = 0;      // all-reduce + reduce-scatter payload on the edp group
  int64_t expected_edp_grad_bytes = 0;  // the same from the layout, counting experts != 0 only
};

constexpr int64_t kGlobalBatch = 8, kSeq = 8, kAccum = 2, kSteps = 3;

// Trains kSteps steps of kAccum micro-batches on a fixed global batch split over dp.
RunResult Train(const ModelConfig& config, parallel::ProcessGroups& groups, int stage,
                const std::vector<float>* force_bias = nullptr) {
  RunResult r;
  const int dp = groups.grid().dp(), dp_rank = groups.coords().dp_rank;
  const int64_t B = kGlobalBatch / dp;
  model::ModelParallel mp;
  mp.dp = &groups.dp();
  mp.ep = &groups.ep();
  mp.edp = &groups.edp();
  mp.tp = &groups.tp();
  mp.zero_stage = stage;
  auto model_or = Model<float>::Create(config, B, kSeq, 1, mp);
  EXPECT_TRUE(model_or.ok()) << model_or.status();
  if (!model_or.ok()) return r;
  Model<float>& m = **model_or;
  ZeroOptions zo;
  zo.adam.weight_decay = 0.1;
  auto z_or = ZeroOptimizer<float>::Create(&m, zo, {&groups.world(), &groups.dp(), &groups.edp(), &groups.tp()});
  EXPECT_TRUE(z_or.ok()) << z_or.status();
  if (!z_or.ok()) return r;
  ZeroOptimizer<float>& z = **z_or;
  z.InitFromSeed(1234);
  if (force_bias != nullptr) {
    for (const auto& spec : m.table().specs()) {
      if (spec.kind != model::ParamKind::kBuffer) continue;
      float* b = m.Param(spec.name).as<float>();
      for (size_t e = 0; e < force_bias->size(); ++e) b[e] = (*force_bias)[e];
    }
  }
  groups.edp().ResetCounters();
  std::vector<int32_t> tokens(B * kSeq), targets(B * kSeq);
  for (int64_t step = 0; step < kSteps; ++step) {
    z.BeginStep();
    double loss = 0;
    for (int64_t micro = 0; micro < kAccum; ++micro) {
      std::mt19937 rng(static_cast<uint32_t>(micro));  // the same two batches every step: it must learn
      std::uniform_int_distribution<int> tok(0, config.vocab_size - 1);
      std::vector<int32_t> all(kGlobalBatch * (kSeq + 1));
      for (auto& t : all) t = tok(rng);
      for (int64_t i = 0; i < B; ++i)
        for (int64_t s = 0; s < kSeq; ++s) {
          tokens[i * kSeq + s] = all[(dp_rank * B + i) * (kSeq + 1) + s];
          targets[i * kSeq + s] = all[(dp_rank * B + i) * (kSeq + 1) + s + 1];
        }
      model::LossBreakdown l = m.Forward(tokens.data(), targets.data());
      m.Backward(1.0 / kAccum);
      loss += l.total / kAccum;
    }
    auto st = z.Step(3e-3);
    EXPECT_TRUE(st.ok()) << st.status();
    if (st.ok()) r.experts_skipped += st->experts_skipped;
    r.losses.push_back(loss);
  }
  const auto& ec = groups.edp().counters();
  r.edp_grad_bytes = ec.all_reduce.payload_bytes + ec.reduce_scatter.payload_bytes;
  if (groups.edp().size() > 1) {
    const int64_t calls_per_step = stage >= 2 ? kAccum : 1;
    for (const auto& g : m.param_groups())
      for (const auto& u : g.units)
        if (u.expert > 0) r.expected_edp_grad_bytes += kSteps * calls_per_step * u.padded * 4;
  }
  for (const auto& g : m.param_groups()) {
    EXPECT_TRUE(z.Materialize(g.index).ok());
    for (const auto& u : g.units)
      for (const auto& t : u.tensors) {
        const float* p = m.Param(t.spec->name).as<float>();
        r.params[t.spec->name].assign(p, p + t.numel);
      }
  }
  for (const auto& us : z.Units()) {
    const std::string& name = us.unit->tensors.front().spec->name;
    r.steps[name] = *us.step;
    bool zero = true;
    for (int64_t i = 0; i < us.end - us.begin; ++i) zero = zero && us.m[i] == 0 && us.v[i] == 0;
    r.zero_moments[name] = zero;
  }
  for (const auto& [cat, bytes] : z.MemoryPlan())
    if (cat == "optimizer") r.optimizer_bytes = bytes;
  return r;
}

double RelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return err / scale;
}

std::vector<int> ExpertLayouts(int world) {
  std::vector<int> eps = {1};
  if (world % 2 == 0) eps.push_back(2);
  return eps;
}

TEST(Zero, EveryStageMatchesStageZero) {
  const int world = TestWorld().size();
  for (int ep : ExpertLayouts(world)) {
    SCOPED_TRACE(absl::StrCat("dp=", world, " ep=", ep));
    auto grid = parallel::RankGrid::Create(world, 1, ep);
    ASSERT_TRUE(grid.ok()) << grid.status();
    auto groups = parallel::ProcessGroups::Create(TestLaunch(), *grid);
    ASSERT_TRUE(groups.ok()) << groups.status();
    const ModelConfig config = TinyConfig();
    RunResult base = Train(config, *groups, 0);
    ASSERT_EQ(base.losses.size(), static_cast<size_t>(kSteps));
    EXPECT_LT(base.losses.back(), base.losses.front());  // it trains
    for (int stage = 1; stage <= 3; ++stage) {
      SCOPED_TRACE(absl::StrCat("stage ", stage));
      RunResult r = Train(config, *groups, stage);
      ASSERT_EQ(r.losses.size(), base.losses.size());
      for (int64_t s = 0; s < kSteps; ++s)
        EXPECT_NEAR(r.losses[s], base.losses[s], 1e-5 * std::abs(base.losses[s])) << "step " << s;
      ASSERT_EQ(r.params.size(), base.params.size());
      for (const auto& [name, values] : base.params)
        EXPECT_LT(RelDiff(r.params.at(name), values), 1e-5) << name;
      // Moments are sharded over dp (experts over edp): the state shrinks with the group size.
      const double expected = static_cast<double>(base.optimizer_bytes) / world;
      if (world > 1 && ep == 1) {
        EXPECT_LT(r.optimizer_bytes, 1.2 * expected + 4096);
      }
    }
  }
}

TEST(Zero, ExpertWithoutTokensStaysBitwiseUnchanged) {
  const int world = TestWorld().size();
  const int ep = world % 2 == 0 ? 2 : 1;
  auto grid = parallel::RankGrid::Create(world, 1, ep);
  ASSERT_TRUE(grid.ok()) << grid.status();
  auto groups = parallel::ProcessGroups::Create(TestLaunch(), *grid);
  ASSERT_TRUE(groups.ok()) << groups.status();
  ModelConfig config = TinyConfig();
  config.scoring_func = "sigmoid";
  config.balancing = "bias";
  config.router_bias_update_rate = 0;
  // Selection uses score + bias: expert 0 is never among the top-2.
  const std::vector<float> bias = {-1000.f, 0.f, 0.f, 0.f};
  for (int stage = 0; stage <= 3; ++stage) {
    SCOPED_TRACE(absl::StrCat("stage ", stage));
    // Reference initial values from a run of zero steps is the seeded init: rebuild it here.
    model::ModelParallel plain_mp;
    auto init = Model<float>::Create(config, 1, kSeq, 1, plain_mp);
    ASSERT_TRUE(init.ok());
    (*init)->InitParams(1234);
    RunResult r = Train(config, *groups, stage, &bias);
    for (const auto& [name, values] : r.params) {
      const model::ParamSpec* spec = (*init)->table().Find(name);
      ASSERT_NE(spec, nullptr);
      if (spec->kind != model::ParamKind::kExpert) continue;
      const float* p0 = (*init)->Param(name).as<float>();
      const bool same = std::equal(values.begin(), values.end(), p0);
      if (spec->expert == 0) {
        EXPECT_TRUE(same) << name << " moved although it received no tokens";
      } else {
        EXPECT_FALSE(same) << name << " did not train";
      }
    }
    for (const auto& [name, step] : r.steps) {
      const model::ParamSpec* spec = (*init)->table().Find(name);
      if (spec->kind != model::ParamKind::kExpert) continue;
      EXPECT_EQ(step, spec->expert == 0 ? 0 : kSteps) << name;
      EXPECT_EQ(r.zero_moments.at(name), spec->expert == 0) << name;
    }
    // Expert 0's gradients never travel: the edp traffic is exactly that of the other experts.
    EXPECT_EQ(r.edp_grad_bytes, r.expected_edp_grad_bytes);
    // One skipped update per step for each layer's expert 0 held here.
    const bool holds_expert0 = groups->ep().rank() == 0;
    EXPECT_EQ(r.experts_skipped, holds_expert0 ? kSteps * config.NumMoeLayers() : 0);
  }
}

}  // namespace
}  // namespace moetrain::optim

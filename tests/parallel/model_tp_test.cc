// Tensor-parallel model against the single-process reference, in float64: run as real MPI ranks
// (mpirun -np 2: the world is the tp group) and as a world of one (tp = 1, the same checks).
// For every config: each rank's parameter shards equal the slices of the reference's FULL
// initialisation; the loss (total, ce, aux, z) matches to 1e-12 relative; every gradient, gathered
// over tp, matches the reference to 1e-10 (max abs error / max abs value); tensors replicated over
// tp get bitwise identical gradients on every tp rank; the full logits row gathered over tp equals
// the reference; the optimizer's global gradient norm (ZeroOptimizer stage 0 with the tp group:
// tensors replicated over tp counted once) equals the reference's.
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
#include "tests/parallel/mpi_test_env.h"
#include "tests/testing/model_configs.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using parallel::testing::TestWorld;

ModelConfig TinyConfig() {
  ModelConfig c = moetrain::testing::TinyMoeConfig();
  c.vocab_size = 38;  // even: splits over tp = 2
  return c;
}

std::vector<std::pair<std::string, ModelConfig>> Cases() {
  std::vector<std::pair<std::string, ModelConfig>> cases;
  cases.push_back({"softmax_shared_gqa", TinyConfig()});
  ModelConfig b = TinyConfig();
  b.first_k_dense_replace = 1;
  b.num_hidden_layers = 3;
  b.scoring_func = "sigmoid";
  b.router_z_loss_coef = 0.01;
  b.tie_word_embeddings = true;
  b.num_shared_experts = 0;
  cases.push_back({"dense_first_sigmoid_zloss_tied", b});
  ModelConfig d = TinyConfig();
  d.capacity_factor = 0.6;
  d.num_experts_per_tok = 4;
  d.num_attention_heads = 2;
  d.num_key_value_heads = 2;
  cases.push_back({"capacity_mha", d});
  return cases;
}

double RelErr(const std::vector<double>& x, const double* ref, int64_t n) {
  double err = 0, scale = 1e-300;
  for (int64_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(x[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return err / scale;
}

TEST(ModelTensorParallel, MatchesSingleProcessInFloat64) {
  parallel::Communicator& world = TestWorld();
  const int tp = world.size(), rank = world.rank();
  const int64_t B = 2, S = 5;
  for (const auto& [label, config] : Cases()) {
    SCOPED_TRACE(label);
    auto ref_or = Model<double>::Create(config, B, S, 1);
    ModelParallel mp;
    mp.tp = &world;
    auto tpm_or = Model<double>::Create(config, B, S, 1, mp);
    ASSERT_TRUE(ref_or.ok() && tpm_or.ok()) << ref_or.status() << tpm_or.status();  // no collective yet
    Model<double>& ref = **ref_or;
    Model<double>& tpm = **tpm_or;
    EXPECT_EQ(tpm.tp_size(), tp);
    ref.InitParams(7);
    tpm.InitParams(7);
    for (const ParamSpec& s : ref.table().specs()) {
      if (s.kind == ParamKind::kBuffer) continue;
      std::vector<double> want(s.LocalNumel(tp));
      ExtractShard(s, tp, rank, ref.Param(s.name).as<double>(), want.data());
      const double* got = tpm.Param(s.name).as<double>();
      int64_t bad = 0;
      for (size_t i = 0; i < want.size(); ++i) bad += got[i] != want[i];
      EXPECT_EQ(bad, 0) << s.name << ": shard is not the slice of the full init";
    }

    std::vector<int32_t> tokens = moetrain::testing::RandomInts(B * S, 0, static_cast<int32_t>(config.vocab_size), 5);
    std::vector<int32_t> targets = moetrain::testing::RandomInts(B * S, 0, static_cast<int32_t>(config.vocab_size), 6);
    targets[S - 1] = kIgnoreIndex;
    ref.ZeroGrads();
    tpm.ZeroGrads();
    LossBreakdown lr = ref.Forward(tokens.data(), targets.data());
    LossBreakdown lt = tpm.Forward(tokens.data(), targets.data());
    EXPECT_NEAR(lt.total, lr.total, 1e-12 * std::abs(lr.total));
    EXPECT_NEAR(lt.ce, lr.ce, 1e-12 * std::abs(lr.ce));
    EXPECT_NEAR(lt.aux, lr.aux, 1e-12 * std::abs(lr.aux) + 1e-300);
    EXPECT_NEAR(lt.z, lr.z, 1e-12 * std::abs(lr.z) + 1e-300);
    EXPECT_EQ(lt.num_targets, lr.num_targets);
    std::vector<double> row(config.vocab_size);
    tpm.GatherLogitsRow(3, row.data());
    EXPECT_LT(RelErr(row, ref.logits() + 3 * config.vocab_size, config.vocab_size), 1e-12);

    ref.Backward(0.75);
    tpm.Backward(0.75);
    for (const ParamSpec& s : ref.table().specs()) {
      if (s.kind == ParamKind::kBuffer) continue;
      const TensorView g = tpm.Grad(s.name);
      std::vector<double> full(s.numel());
      if (s.IsTpSplit(tp)) {
        std::vector<double> gathered(s.numel());
        ASSERT_TRUE(world.AllGather(g.data(), gathered.data(), g.numel(), DType::kF64).ok());
        for (int r = 0; r < tp; ++r)
          InsertShard(s, tp, r, gathered.data() + r * g.numel(), full.data());
      } else {
        const double* p = g.as<double>();
        full.assign(p, p + g.numel());
        // Replicated over tp: the same bits on every rank.
        std::vector<double> mn(full), mx(full);
        ASSERT_TRUE(world.AllReduce(mn.data(), mn.data(), s.numel(), DType::kF64,
                                    parallel::ReduceOp::kMin).ok());
        ASSERT_TRUE(world.AllReduce(mx.data(), mx.data(), s.numel(), DType::kF64,
                                    parallel::ReduceOp::kMax).ok());
        EXPECT_EQ(mn, mx) << s.name << ": replicated gradient differs across tp ranks";
      }
      EXPECT_LT(RelErr(full, ref.Grad(s.name).as<double>(), s.numel()), 1e-10) << s.name;
    }

    // Step(0.0) reports the norm of the gradients already in the model (no BeginStep: that would
    // zero them) and leaves the parameters unchanged. The reference is whole on every rank, so it
    // is a world of one; the tp model's norm sums the tp shards over the world.
    auto ref_opt = optim::ZeroOptimizer<double>::Create(&ref, {}, optim::ZeroComms{});
    optim::ZeroComms tp_comms;
    tp_comms.world = &world;
    tp_comms.tp = &world;
    auto tp_opt = optim::ZeroOptimizer<double>::Create(&tpm, {}, tp_comms);
    ASSERT_TRUE(ref_opt.ok() && tp_opt.ok()) << ref_opt.status() << tp_opt.status();
    auto ref_stats = (*ref_opt)->Step(0.0);
    auto tp_stats = (*tp_opt)->Step(0.0);
    ASSERT_TRUE(ref_stats.ok() && tp_stats.ok()) << ref_stats.status() << tp_stats.status();
    const double want_norm = ref_stats->grad_norm;
    EXPECT_GT(want_norm, 0.0);
    EXPECT_NEAR(tp_stats->grad_norm, want_norm, 1e-12 * want_norm);
  }
}

TEST(ModelTensorParallel, RejectsIndivisibleShapes) {
  parallel::Communicator& world = TestWorld();
  if (world.size() < 2) GTEST_SKIP() << "needs a tp group of 2";
  ModelConfig c = TinyConfig();
  c.vocab_size = 37;
  ModelParallel mp;
  mp.tp = &world;
  auto m = Model<double>::Create(c, 2, 5, 1, mp);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.vocab_size (37) is not divisible by the tensor-parallel size"),
            std::string::npos) << m.status();
}

}  // namespace
}  // namespace moetrain::model

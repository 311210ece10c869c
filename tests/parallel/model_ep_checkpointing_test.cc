// Activation checkpointing under expert parallelism (mpirun -np 2: the world is both the dp and the
// ep group; a world of one runs the same checks without a dispatcher). The recompute re-runs the
// dispatch/combine all-to-alls inside Backward; every rank checkpoints the same layers, so the
// collectives stay in step. On every rank, full and selective checkpointing give the same loss,
// expert loads and local gradients as no checkpointing, bit for bit, over two micro-batches.
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "tests/parallel/mpi_test_env.h"
#include "tests/testing/model_configs.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using parallel::testing::TestWorld;

ModelConfig EpConfig() {
  ModelConfig c = moetrain::testing::TinyMoeConfig();
  c.vocab_size = 40;
  c.intermediate_size = 24;
  c.num_hidden_layers = 4;
  c.first_k_dense_replace = 1;
  c.router_aux_loss_coef = 0.02;
  c.router_z_loss_coef = 0.001;
  return c;
}

struct EpRun {
  std::vector<double> losses;
  std::vector<std::vector<std::vector<int64_t>>> counts;
  std::vector<float> grads;  // every local gradient, concatenated in table order
};

EpRun RunEp(ActivationCheckpointing mode) {
  parallel::Communicator& world = TestWorld();
  const int64_t B = 2, S = 6;
  const ModelConfig c = EpConfig();
  ModelParallel mp;
  mp.dp = &world;
  mp.ep = &world;
  ModelOptions o;
  o.checkpointing = mode;
  auto created = Model<float>::Create(c, B, S, 1, mp, o);  // collective over ep
  MT_CHECK_OK(created.status());
  Model<float>& m = **created;
  m.InitParams(5);
  m.ZeroGrads();
  EpRun r;
  for (int micro = 0; micro < 2; ++micro) {
    const uint64_t seed = 100 * world.rank() + micro;  // each dp rank its own tokens
    auto tokens = moetrain::testing::RandomInts(B * S, 0, static_cast<int32_t>(c.vocab_size), seed);
    auto targets = moetrain::testing::RandomInts(B * S, 0, static_cast<int32_t>(c.vocab_size), seed + 50);
    r.losses.push_back(m.Forward(tokens.data(), targets.data()).total);
    m.Backward(0.5);
    r.counts.push_back(m.ExpertCounts());
  }
  for (const ParamSpec& s : m.table().specs()) {
    if (!m.HasGrad(s.name)) continue;
    const TensorView g = m.Grad(s.name);
    r.grads.insert(r.grads.end(), g.as<float>(), g.as<float>() + g.numel());
  }
  return r;
}

TEST(ModelExpertParallelCheckpointing, BitwiseEqualToNoCheckpointing) {
  const EpRun none = RunEp(ActivationCheckpointing::kNone);
  for (ActivationCheckpointing mode :
       {ActivationCheckpointing::kFull, ActivationCheckpointing::kSelective}) {
    SCOPED_TRACE(mode == ActivationCheckpointing::kFull ? "full" : "selective");
    const EpRun got = RunEp(mode);
    EXPECT_EQ(got.counts, none.counts);
    ASSERT_EQ(got.losses.size(), none.losses.size());
    for (size_t i = 0; i < got.losses.size(); ++i)
      EXPECT_EQ(std::memcmp(&got.losses[i], &none.losses[i], sizeof(double)), 0)
          << "micro " << i << ": " << got.losses[i] << " vs " << none.losses[i];
    ASSERT_EQ(got.grads.size(), none.grads.size());
    int64_t differ = 0;
    for (size_t i = 0; i < got.grads.size(); ++i)
      differ += std::memcmp(&got.grads[i], &none.grads[i], sizeof(float)) != 0;
    EXPECT_EQ(differ, 0) << "of " << got.grads.size() << " gradient elements differ";
  }
}

}  // namespace
}  // namespace moetrain::model

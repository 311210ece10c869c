// The whole float32 training step is bitwise independent of the thread count: with SetNumThreads(t)
// for t = 1, 2, 3 the losses, the logits and every parameter gradient are the same bits. This holds
// because every kernel either owns its outputs per thread (rows, heads, column blocks) or reduces in
// a fixed order, and Matmul's OpenMP panels keep each element one BLAS dot product over the full k
// (kernels/cpu/matmul.cc). Sizes are chosen so that several products really are split into panels.
#include <omp.h>

#include <cstring>
#include <vector>

#include "core/threads.h"
#include "gtest/gtest.h"
#include "model/model.h"
#include "tests/testing/test_util.h"

extern "C" int openblas_get_num_threads(void);
extern "C" void openblas_set_num_threads(int num_threads);

namespace moetrain::model {
namespace {

using moetrain::testing::RandomInts;

struct StepResult {
  LossBreakdown loss;
  std::vector<float> logits;
  std::vector<std::vector<float>> grads;
};

StepResult RunStep(const ModelConfig& c, int64_t batch, int64_t seq, int threads) {
  SetNumThreads(threads);
  auto model = Model<float>::Create(c, batch, seq, threads);
  EXPECT_TRUE(model.ok()) << model.status();
  Model<float>& m = **model;
  m.InitParams(7);
  const int64_t n = batch * seq;
  auto tokens = RandomInts(n, 0, static_cast<int32_t>(c.vocab_size), 11);
  auto targets = RandomInts(n, 0, static_cast<int32_t>(c.vocab_size), 12);
  targets[3] = kIgnoreIndex;
  StepResult r;
  m.ZeroGrads();
  r.loss = m.Forward(tokens.data(), targets.data());
  m.Backward(1.0);
  r.logits.assign(m.logits(), m.logits() + n * c.vocab_size);
  for (const ParamSpec& s : m.table().specs()) {
    if (!m.HasGrad(s.name)) continue;
    const float* g = m.Grad(s.name).as<float>();
    r.grads.emplace_back(g, g + s.numel());
  }
  return r;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(ThreadDeterminismTest, TrainingStepIsBitwiseEqualForAnyThreadCount) {
  const int saved_omp = omp_get_max_threads(), saved_blas = openblas_get_num_threads();
  ModelConfig c;
  c.vocab_size = 1000;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.moe_intermediate_size = 256;
  c.num_hidden_layers = 2;
  c.first_k_dense_replace = 1;  // a dense SwiGLU layer, then an MoE layer
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.num_local_experts = 8;
  c.num_experts_per_tok = 2;
  c.num_shared_experts = 1;
  c.router_z_loss_coef = 0.01;
  c.max_position_embeddings = 256;
  const int64_t batch = 4, seq = 128;

  const StepResult one = RunStep(c, batch, seq, 1);
  for (int threads : {2, 3}) {
    SCOPED_TRACE(threads);
    const StepResult r = RunStep(c, batch, seq, threads);
    EXPECT_EQ(r.loss.total, one.loss.total);
    EXPECT_EQ(r.loss.ce, one.loss.ce);
    EXPECT_EQ(r.loss.aux, one.loss.aux);
    EXPECT_EQ(r.loss.z, one.loss.z);
    EXPECT_TRUE(SameBits(r.logits, one.logits)) << "logits";
    ASSERT_EQ(r.grads.size(), one.grads.size());
    for (size_t i = 0; i < r.grads.size(); ++i)
      EXPECT_TRUE(SameBits(r.grads[i], one.grads[i])) << "gradient #" << i;
  }
  omp_set_num_threads(saved_omp);
  openblas_set_num_threads(saved_blas);
}

}  // namespace
}  // namespace moetrain::model

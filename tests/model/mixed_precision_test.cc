// Mixed precision on CPU (ModelOptions::compute_dtype):
//  1. bf16 and fp32 models with the same weights and batch: loss within 1%, gradient cosine > 0.99,
//     and the bf16 step really differs from the fp32 one (rounding happened).
//  2. Every stored activation / activation-gradient slot of a bf16 (and f16) step is exactly
//     representable in that dtype (second path: CastRound leaves it unchanged), while the fp32
//     statistics (RMSNorm rstd) are not rounded.
//  3. f16 with a huge Backward scale overflows to non-finite gradients that AllFinite detects,
//  while
//     the same scale in fp32 stays finite.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cast.h"
#include "model/model.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using moetrain::testing::RandomInts;

ModelConfig SmallConfig() {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 24;
  c.moe_intermediate_size = 16;
  c.num_hidden_layers = 2;
  c.first_k_dense_replace = 1;  // layer 0 dense MLP, layer 1 MoE: both FFN paths
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.num_shared_experts = 1;
  c.router_aux_loss_coef = 0.01;
  c.router_z_loss_coef = 0.001;
  c.initializer_range = 0.1;
  c.max_position_embeddings = 64;
  return c;
}

constexpr int64_t kBatch = 2, kSeq = 16;

struct Step {
  std::unique_ptr<Model<float>> model;
  LossBreakdown loss;
  std::vector<float> grads;  // all gradients, table order
};

Step RunStep(DType dtype, double scale) {
  const ModelConfig c = SmallConfig();
  ModelOptions o;
  o.compute_dtype = dtype;
  auto m = Model<float>::Create(c, kBatch, kSeq, 1, {}, o);
  EXPECT_TRUE(m.ok()) << m.status();
  Step s;
  s.model = std::move(*m);
  s.model->InitParams(3);
  const int64_t n = kBatch * kSeq;
  const auto tokens = RandomInts(n, 0, static_cast<int32_t>(c.vocab_size), 21);
  const auto targets = RandomInts(n, 0, static_cast<int32_t>(c.vocab_size), 22);
  s.model->ZeroGrads();
  s.loss = s.model->Forward(tokens.data(), targets.data());
  s.model->Backward(scale);
  for (const ParamSpec& p : s.model->table().specs()) {
    if (!s.model->HasGrad(p.name)) continue;
    const float* g = s.model->Grad(p.name).as<float>();
    s.grads.insert(s.grads.end(), g, g + p.numel());
  }
  return s;
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

TEST(MixedPrecisionTest, Bf16TracksFp32) {
  const Step f32 = RunStep(DType::kF32, 1.0);
  const Step b16 = RunStep(DType::kBF16, 1.0);
  ASSERT_EQ(f32.grads.size(), b16.grads.size());
  EXPECT_NEAR(b16.loss.total, f32.loss.total, 0.01 * f32.loss.total);
  EXPECT_NE(b16.loss.total, f32.loss.total);  // the bf16 path really rounds
  EXPECT_NE(f32.grads, b16.grads);
  EXPECT_GT(Cosine(f32.grads, b16.grads), 0.99);
  // Per tensor too (looser: a router tie may flip a token's expert under rounding).
  size_t off = 0;
  for (const ParamSpec& p : f32.model->table().specs()) {
    if (!f32.model->HasGrad(p.name)) continue;
    std::vector<float> a(f32.grads.begin() + off, f32.grads.begin() + off + p.numel());
    std::vector<float> b(b16.grads.begin() + off, b16.grads.begin() + off + p.numel());
    off += p.numel();
    EXPECT_GT(Cosine(a, b), 0.95) << p.name;
  }
}

// True when every value of the slot is unchanged by rounding to dtype (a second code path).
::testing::AssertionResult Representable(const Model<float>& m, const std::string& slot, DType d) {
  const TensorView v = m.Slot(slot);
  const float* x = v.as<float>();
  std::vector<float> r(v.numel());
  kernels::CastRound(x, r.data(), v.numel(), d);
  int64_t nonzero = 0;
  for (int64_t i = 0; i < v.numel(); ++i) {
    nonzero += x[i] != 0;
    if (std::memcmp(&x[i], &r[i], 4) != 0)
      return ::testing::AssertionFailure() << slot << "[" << i << "] = " << x[i] << " is not a "
                                           << DTypeName(d) << " value (rounds to " << r[i] << ")";
  }
  if (nonzero == 0) return ::testing::AssertionFailure() << slot << " was never written";
  return ::testing::AssertionSuccess();
}

TEST(MixedPrecisionTest, StoredActivationsAreRepresentable) {
  const std::vector<std::string> slots = {
      "x.0", "x.1", "x.2", "L0.h", "L0.hn", "L1.hn", "L0.attn.xn", "L0.attn.q", "L0.attn.k",
      "L0.attn.v", "L1.attn.att", "L0.mlp.a", "L0.mlp.b", "L0.mlp.h", "L1.moe.a", "L1.moe.h",
      "L1.moe.ys", "L1.shared.h", "xf", "logits",
      // activation gradients (what the last layer to run backward left in the workspace)
      "ws.dlogits", "ws.dcur", "ws.dffn", "ws.dh", "ws.attn.dxn", "ws.attn.dq", "ws.attn.datt",
      "ws.mlp.dh", "ws.mlp.da", "ws.moe.dh", "ws.moe.dxs", "ws.moe.dys", "ws.shared.db"};
  for (DType d : {DType::kBF16, DType::kF16}) {
    const Step s = RunStep(d, 1.0);
    for (const std::string& slot : slots)
      EXPECT_TRUE(Representable(*s.model, slot, d)) << DTypeName(d);
    // fp32 statistics are kept in fp32: the norm's rstd is not rounded.
    EXPECT_FALSE(Representable(*s.model, "L0.attn.rstd", DType::kBF16));
  }
  // And the fp32 model rounds nothing.
  const Step f = RunStep(DType::kF32, 1.0);
  EXPECT_FALSE(Representable(*f.model, "L0.attn.q", DType::kBF16));
  EXPECT_FALSE(Representable(*f.model, "ws.attn.dxn", DType::kBF16));
}

TEST(MixedPrecisionTest, F16OverflowGivesNonFiniteGradients) {
  const double huge = 1e9;  // dlogits ~ huge / num_targets >> 65504, the largest f16
  const Step f16 = RunStep(DType::kF16, huge);
  EXPECT_FALSE(kernels::AllFinite(f16.grads.data(), static_cast<int64_t>(f16.grads.size())));
  const Step ok16 = RunStep(DType::kF16, 1.0);
  EXPECT_TRUE(kernels::AllFinite(ok16.grads.data(), static_cast<int64_t>(ok16.grads.size())));
  const Step f32 = RunStep(DType::kF32, huge);
  EXPECT_TRUE(kernels::AllFinite(f32.grads.data(), static_cast<int64_t>(f32.grads.size())));
}

}  // namespace
}  // namespace moetrain::model

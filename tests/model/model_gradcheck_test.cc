// Whole-model gradient checks.
//  1. float64 model: every parameter tensor, at sampled coordinates, against central finite differences
//     of the total loss (CE + aux + z), norm-wise relative error < 1e-6.
//  2. float32 model with the same weights against the float64 model: every gradient within 1e-4.
// Configs cover: GQA, 4 experts top-2, one shared expert, a dense first layer, sigmoid scoring,
// z-loss, tied embeddings, capacity drops, an ignored target.
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "kernels/elementwise.h"
#include "model/model.h"
#include "tests/testing/model_configs.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using moetrain::testing::RandomInts;

struct Case {
  std::string label;
  ModelConfig config;
  int64_t batch = 2, seq = 5;
};

ModelConfig TinyConfig() {
  return moetrain::testing::TinyMoeConfig();  // vocab 37: not a multiple of 8
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
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
  d.capacity_factor = 0.6;  // forces drops
  d.norm_topk_prob = false;
  d.num_experts_per_tok = 4;  // k = E
  cases.push_back({"capacity_k_equals_e_no_renorm", d});
  return cases;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch MakeBatch(const ModelConfig& c, int64_t b, int64_t s) {
  Batch x;
  x.tokens = RandomInts(b * s, 0, static_cast<int32_t>(c.vocab_size), 5);
  x.targets = RandomInts(b * s, 0, static_cast<int32_t>(c.vocab_size), 6);
  x.targets[s - 1] = kIgnoreIndex;  // one ignored position
  return x;
}

class ModelGradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(ModelGradCheck, Float64MatchesFiniteDifferences) {
  const Case& tc = GetParam();
  auto model_or = Model<double>::Create(tc.config, tc.batch, tc.seq);
  ASSERT_TRUE(model_or.ok()) << model_or.status();
  Model<double>& m = **model_or;
  m.InitParams(1234);
  Batch x = MakeBatch(tc.config, tc.batch, tc.seq);
  m.ZeroGrads();
  LossBreakdown base = m.Forward(x.tokens.data(), x.targets.data());
  ASSERT_TRUE(std::isfinite(base.total));
  if (tc.config.capacity_factor > 0) {
    int64_t kept = 0;
    for (auto& layer : m.ExpertCounts())
      for (int64_t c : layer) kept += c;
    ASSERT_LT(kept, tc.batch * tc.seq * tc.config.num_experts_per_tok * tc.config.NumMoeLayers())
        << "capacity case must actually drop tokens";
  }
  const auto base_counts = m.ExpertCounts();
  m.Backward();

  std::mt19937_64 rng(99);
  int tensors = 0, skipped = 0, checked = 0;
  for (const ParamSpec& spec : m.table().specs()) {
    if (spec.kind == ParamKind::kBuffer) continue;
    double* p = m.Param(spec.name).as<double>();
    const double* g = m.Grad(spec.name).as<double>();
    const int64_t numel = spec.numel();
    std::vector<double> analytic, numeric;
    for (int sample = 0; sample < 6; ++sample) {
      const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(numel));
      const double h = 1e-5, saved = p[i];
      p[i] = saved + h;
      LossBreakdown lp = m.Forward(x.tokens.data(), x.targets.data());
      bool same = m.ExpertCounts() == base_counts;
      p[i] = saved - h;
      LossBreakdown lm = m.Forward(x.tokens.data(), x.targets.data());
      same = same && m.ExpertCounts() == base_counts;
      p[i] = saved;
      if (!same) {  // the perturbation changed routing: the loss is not differentiable there
        ++skipped;
        continue;
      }
      analytic.push_back(g[i]);
      numeric.push_back((lp.total - lm.total) / (2 * h));
      ++checked;
    }
    double num = 0, den = 0;
    for (size_t j = 0; j < analytic.size(); ++j) {
      num += (analytic[j] - numeric[j]) * (analytic[j] - numeric[j]);
      den += numeric[j] * numeric[j];
    }
    if (den == 0) {
      // Only legitimate for an expert that received no token: then the analytic gradient is 0 too.
      for (double a : analytic) EXPECT_EQ(a, 0.0) << spec.name;
      continue;
    }
    const double rel = std::sqrt(num / den);
    EXPECT_LT(rel, 1e-6) << tc.label << " " << spec.name << " relative error " << rel;
    ++tensors;
  }
  EXPECT_GT(tensors, 20);
  EXPECT_LT(skipped, checked / 10 + 1) << "too many routing flips; the check would be weak";
}

TEST_P(ModelGradCheck, Float32TracksFloat64) {
  const Case& tc = GetParam();
  auto m64_or = Model<double>::Create(tc.config, tc.batch, tc.seq);
  auto m32_or = Model<float>::Create(tc.config, tc.batch, tc.seq);
  ASSERT_TRUE(m64_or.ok() && m32_or.ok());
  Model<double>& m64 = **m64_or;
  Model<float>& m32 = **m32_or;
  m64.InitParams(77);
  for (const ParamSpec& spec : m64.table().specs()) {
    if (spec.kind == ParamKind::kBuffer) continue;
    const double* src = m64.Param(spec.name).as<double>();
    float* dst = m32.Param(spec.name).as<float>();
    for (int64_t i = 0; i < spec.numel(); ++i) dst[i] = static_cast<float>(src[i]);
    double* back = m64.Param(spec.name).as<double>();  // use the exactly-representable values
    for (int64_t i = 0; i < spec.numel(); ++i) back[i] = static_cast<double>(dst[i]);
  }
  Batch x = MakeBatch(tc.config, tc.batch, tc.seq);
  m64.ZeroGrads();
  m32.ZeroGrads();
  LossBreakdown l64 = m64.Forward(x.tokens.data(), x.targets.data());
  LossBreakdown l32 = m32.Forward(x.tokens.data(), x.targets.data());
  ASSERT_EQ(m64.ExpertCounts(), m32.ExpertCounts()) << "routing must agree for the comparison";
  EXPECT_NEAR(l32.total, l64.total, 1e-5 * std::fabs(l64.total));
  m64.Backward();
  m32.Backward();
  for (const ParamSpec& spec : m64.table().specs()) {
    if (spec.kind == ParamKind::kBuffer) continue;
    const double* g64 = m64.Grad(spec.name).as<double>();
    const float* g32 = m32.Grad(spec.name).as<float>();
    double num = 0, den = 0;
    for (int64_t i = 0; i < spec.numel(); ++i) {
      num += (g32[i] - g64[i]) * (g32[i] - g64[i]);
      den += g64[i] * g64[i];
    }
    if (den == 0) {
      EXPECT_EQ(num, 0.0) << spec.name;
      continue;
    }
    EXPECT_LT(std::sqrt(num / den), 1e-4) << tc.label << " " << spec.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, ModelGradCheck, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.label; });

TEST(ModelTest, GradientsAccumulateAcrossBackwardCalls) {
  auto m_or = Model<double>::Create(TinyConfig(), 1, 4);
  ASSERT_TRUE(m_or.ok());
  Model<double>& m = **m_or;
  m.InitParams(3);
  Batch x = MakeBatch(TinyConfig(), 1, 4);
  m.ZeroGrads();
  m.Forward(x.tokens.data(), x.targets.data());
  m.Backward();
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  std::vector<double> once(m.Grad(name).as<double>(), m.Grad(name).as<double>() + 8);
  m.Forward(x.tokens.data(), x.targets.data());
  m.Backward(0.5);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(m.Grad(name).as<double>()[i], 1.5 * once[i], 1e-12);
}

TEST(ModelTest, InitIsDeterministicAndNamed) {
  auto a = Model<float>::Create(TinyConfig(), 1, 4);
  auto b = Model<float>::Create(TinyConfig(), 1, 4);
  ASSERT_TRUE(a.ok() && b.ok());
  (*a)->InitParams(5);
  (*b)->InitParams(5);
  for (const ParamSpec& spec : (*a)->table().specs()) {
    TensorView va = (*a)->Param(spec.name), vb = (*b)->Param(spec.name);
    ASSERT_EQ(std::memcmp(va.data(), vb.data(), va.nbytes()), 0) << spec.name;
  }
  (*b)->InitParams(6);
  TensorView va = (*a)->Param("model.embed_tokens.weight"), vb = (*b)->Param("model.embed_tokens.weight");
  EXPECT_NE(std::memcmp(va.data(), vb.data(), va.nbytes()), 0);
}

TEST(ModelTest, RejectsBadConfigWithFieldName) {
  ModelConfig c = TinyConfig();
  c.num_key_value_heads = 3;
  auto m = Model<float>::Create(c, 1, 4);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("num_key_value_heads"), std::string::npos) << m.status();
  c = TinyConfig();
  c.num_experts_per_tok = 5;
  m = Model<float>::Create(c, 1, 4);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("num_experts_per_tok"), std::string::npos);
}

}  // namespace
}  // namespace moetrain::model

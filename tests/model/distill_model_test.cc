// Model-level distillation (Model::SetDistillationTarget + a separate teacher model), with plain
// SGD on the flat parameter groups standing in for the optimizer:
//  1. float64 model: the distillation loss's parameter gradients against central finite differences.
//  2. The reported KL against a float64 recomputation from the two models' logits.
//  3. alpha = 0: loss curve and final weights bitwise equal to plain CE training.
//  4. The teacher's weights bitwise unchanged after training a student against it.
//  5. The KL falls, and a distilled student ends closer to the teacher than a CE-only one.
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using moetrain::testing::RandomInts;
using moetrain::testing::RandomVector;

constexpr int64_t kBatch = 2, kSeq = 8;

ModelConfig StudentConfig() {
  ModelConfig c;
  c.vocab_size = 29;
  c.hidden_size = 16;
  c.intermediate_size = 12;
  c.moe_intermediate_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.num_shared_experts = 1;
  c.router_aux_loss_coef = 0.01;
  c.router_z_loss_coef = 0.001;
  c.initializer_range = 0.3;
  c.max_position_embeddings = 32;
  return c;
}

// The teacher has its own (larger) config, sharing only the vocabulary.
ModelConfig TeacherConfig() {
  ModelConfig c = StudentConfig();
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 3;
  c.initializer_range = 0.5;  // confident, far-from-uniform teacher distributions
  return c;
}

template <typename T>
std::vector<T> FlatParams(const Model<T>& m) {
  std::vector<T> out;
  for (const ParamGroup& g : m.param_groups())
    out.insert(out.end(), m.GroupParams(g.index), m.GroupParams(g.index) + g.numel);
  return out;
}

template <typename T>
void SgdStep(Model<T>& m, double lr) {
  for (const ParamGroup& g : m.param_groups()) {
    T* p = m.GroupParams(g.index);
    const T* d = m.GroupGrads(g.index);
    for (int64_t i = 0; i < g.numel; ++i) p[i] -= static_cast<T>(lr) * d[i];
  }
  m.ZeroGrads();
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};
Batch MakeBatch(uint64_t seed, int32_t vocab) {
  Batch b{RandomInts(kBatch * kSeq, 0, vocab, seed), RandomInts(kBatch * kSeq, 0, vocab, seed + 1)};
  b.targets[3] = kIgnoreIndex;
  return b;
}

std::unique_ptr<Model<float>> MakeFloat(const ModelConfig& c, uint64_t seed) {
  auto m = Model<float>::Create(c, kBatch, kSeq, 1);
  MT_CHECK_OK(m.status());
  (*m)->InitParams(seed);
  (*m)->ZeroGrads();
  return std::move(m).value();
}

TEST(DistillModelTest, GradientMatchesFiniteDifferences) {
  const ModelConfig c = StudentConfig();
  auto m_or = Model<double>::Create(c, kBatch, kSeq, 1);
  ASSERT_TRUE(m_or.ok()) << m_or.status();
  Model<double>& m = **m_or;
  m.InitParams(3);
  m.ZeroGrads();
  const Batch b = MakeBatch(11, static_cast<int32_t>(c.vocab_size));
  const std::vector<double> teacher = RandomVector<double>(kBatch * kSeq * c.vocab_size, 12, 2.0);
  ASSERT_TRUE(m.SetDistillationTarget(teacher.data(), 0.7, 2.0).ok());
  m.Forward(b.tokens.data(), b.targets.data());
  m.Backward(1.0);
  double num = 0, den = 0;
  int checked = 0;
  for (const ParamGroup& g : m.param_groups()) {
    double* p = m.GroupParams(g.index);
    const double* grad = m.GroupGrads(g.index);
    for (int64_t i = 0; i < g.numel; i += std::max<int64_t>(1, g.numel / 16)) {
      const double saved = p[i], h = 1e-5;
      p[i] = saved + h;
      const double fp = m.Forward(b.tokens.data(), b.targets.data()).total;
      p[i] = saved - h;
      const double fm = m.Forward(b.tokens.data(), b.targets.data()).total;
      p[i] = saved;
      const double fd = (fp - fm) / (2 * h);
      num += (fd - grad[i]) * (fd - grad[i]);
      den += fd * fd;
      ++checked;
    }
  }
  const double err = std::sqrt(num) / std::sqrt(den);
  std::printf("  distill model gradient vs FD over %d coordinates: rel L2 error %.3g\n", checked, err);
  EXPECT_GT(den, 0);
  EXPECT_LT(err, 1e-6);
}

// KL(teacher_T || student_T) mean over targets, in float64 from the logits.
double ReferenceKl(const float* zs, const float* zt, const std::vector<int32_t>& targets,
                   int64_t v, double tau) {
  double sum = 0;
  int64_t count = 0;
  for (size_t t = 0; t < targets.size(); ++t) {
    if (targets[t] == kIgnoreIndex) continue;
    std::vector<double> ps(v), pt(v);
    double ss = 0, st = 0;
    for (int64_t j = 0; j < v; ++j) {
      ss += ps[j] = std::exp(zs[t * v + j] / tau);
      st += pt[j] = std::exp(zt[t * v + j] / tau);
    }
    for (int64_t j = 0; j < v; ++j) sum += pt[j] / st * std::log((pt[j] / st) / (ps[j] / ss));
    ++count;
  }
  return sum / count;
}

TEST(DistillModelTest, AlphaZeroIsBitwisePlainTrainingAndTeacherIsUnchanged) {
  const ModelConfig sc = StudentConfig();
  auto teacher = MakeFloat(TeacherConfig(), 100);
  auto plain = MakeFloat(sc, 7), distilled = MakeFloat(sc, 7);
  ASSERT_TRUE(distilled->SetDistillationTarget(teacher->logits(), 0.0, 2.0).ok());
  const std::vector<float> teacher_before = FlatParams(*teacher);
  for (int step = 0; step < 6; ++step) {
    const Batch b = MakeBatch(20 + step, static_cast<int32_t>(sc.vocab_size));
    teacher->Forward(b.tokens.data(), b.targets.data());
    const LossBreakdown lp = plain->Forward(b.tokens.data(), b.targets.data());
    const LossBreakdown ld = distilled->Forward(b.tokens.data(), b.targets.data());
    ASSERT_EQ(lp.total, ld.total) << "step " << step;
    ASSERT_EQ(lp.ce, ld.ce) << "step " << step;
    EXPECT_GT(ld.kl, 0) << "the KL is still measured with alpha = 0";
    EXPECT_NEAR(ld.kl, ReferenceKl(distilled->logits(), teacher->logits(), b.targets, sc.vocab_size, 2.0),
                1e-5 * ld.kl);
    plain->Backward(1.0);
    distilled->Backward(1.0);
    SgdStep(*plain, 0.5);
    SgdStep(*distilled, 0.5);
  }
  const std::vector<float> a = FlatParams(*plain), b = FlatParams(*distilled);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  const std::vector<float> teacher_after = FlatParams(*teacher);
  EXPECT_EQ(std::memcmp(teacher_before.data(), teacher_after.data(),
                        teacher_before.size() * sizeof(float)),
            0);
}

TEST(DistillModelTest, DistilledStudentMovesTowardTheTeacher) {
  const ModelConfig sc = StudentConfig();
  auto teacher = MakeFloat(TeacherConfig(), 100);
  const std::vector<float> teacher_before = FlatParams(*teacher);
  // Same init, same data; only alpha differs. alpha = 0 still reports the KL (see above).
  auto ce_only = MakeFloat(sc, 7), student = MakeFloat(sc, 7);
  ASSERT_TRUE(ce_only->SetDistillationTarget(teacher->logits(), 0.0, 2.0).ok());
  ASSERT_TRUE(student->SetDistillationTarget(teacher->logits(), 0.7, 2.0).ok());
  // A small fixed pool of batches, revisited (the student can fit the teacher on it).
  std::vector<Batch> pool;
  for (int i = 0; i < 4; ++i) pool.push_back(MakeBatch(40 + 2 * i, static_cast<int32_t>(sc.vocab_size)));
  auto kl_on_pool = [&](Model<float>& m) {
    double kl = 0;
    for (const Batch& b : pool) {
      teacher->Forward(b.tokens.data(), b.targets.data());
      kl += m.Forward(b.tokens.data(), b.targets.data()).kl / pool.size();
    }
    return kl;
  };
  const double kl0 = kl_on_pool(*student);
  for (int step = 0; step < 60; ++step) {
    const Batch& b = pool[step % pool.size()];
    teacher->Forward(b.tokens.data(), b.targets.data());
    ce_only->Forward(b.tokens.data(), b.targets.data());
    ce_only->Backward(1.0);
    SgdStep(*ce_only, 0.3);
    student->Forward(b.tokens.data(), b.targets.data());
    student->Backward(1.0);
    SgdStep(*student, 0.3);
  }
  const double kl_student = kl_on_pool(*student), kl_ce = kl_on_pool(*ce_only);
  std::printf("  KL to teacher: start %.4f, distilled %.4f, CE only %.4f\n", kl0, kl_student, kl_ce);
  EXPECT_LT(kl_student, 0.5 * kl0);
  EXPECT_LT(kl_student, kl_ce);
  const std::vector<float> teacher_after = FlatParams(*teacher);
  EXPECT_EQ(std::memcmp(teacher_before.data(), teacher_after.data(),
                        teacher_before.size() * sizeof(float)),
            0);
}

TEST(DistillModelTest, RejectsBadArguments) {
  auto m = MakeFloat(StudentConfig(), 1);
  std::vector<float> t(kBatch * kSeq * StudentConfig().vocab_size);
  EXPECT_EQ(m->SetDistillationTarget(t.data(), 1.5, 2.0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->SetDistillationTarget(t.data(), 0.5, 0.0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(m->distilling());
  EXPECT_TRUE(m->SetDistillationTarget(t.data(), 0.5, 1.0).ok());
  EXPECT_TRUE(m->distilling());
  EXPECT_TRUE(m->SetDistillationTarget(nullptr, 0, 1).ok());
  EXPECT_FALSE(m->distilling());
}

}  // namespace
}  // namespace moetrain::model

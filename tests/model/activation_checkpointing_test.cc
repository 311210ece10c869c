// Activation checkpointing (ModelOptions::checkpointing) changes memory, never numbers:
//  - for MoE configs with shared experts, dense first layers, a router bias and dropped tokens, every
//    parameter gradient after two accumulated micro-batches is BITWISE equal to kNone's for full and
//    selective checkpointing (every layer, and every 2nd layer), in float and in double; the losses
//    and the expert loads (ExpertCounts, read after Backward) are the same bits too, so the
//    recompute neither changes nor double counts the router statistics;
//  - the planned activation bytes fall none > selective > full, by exactly what the shared slot
//    sets save, computed here from the blocks' own slot declarations (not from the model's plan).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/model.h"
#include "tests/testing/model_configs.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using moetrain::testing::RandomInts;

ModelConfig BaseConfig() {
  ModelConfig c = moetrain::testing::TinyMoeConfig();
  c.vocab_size = 40;
  c.intermediate_size = 24;
  c.num_hidden_layers = 5;
  c.first_k_dense_replace = 2;  // layers 0, 1 dense: the dense checkpoint set is really shared
  c.router_aux_loss_coef = 0.02;
  c.router_z_loss_coef = 0.001;
  return c;
}

std::vector<std::pair<std::string, ModelConfig>> Cases() {
  std::vector<std::pair<std::string, ModelConfig>> cases;
  cases.push_back({"softmax_shared_dense_first", BaseConfig()});
  ModelConfig b = BaseConfig();
  b.scoring_func = "sigmoid";
  b.balancing = "bias";
  b.capacity_factor = 0.7;  // drops tokens: the recomputed plan must drop the same ones
  b.num_shared_experts = 2;
  cases.push_back({"sigmoid_bias_capacity", b});
  return cases;
}

struct Mode {
  const char* label;
  ActivationCheckpointing mode;
  int every;
};
const Mode kModes[] = {{"none", ActivationCheckpointing::kNone, 1},
                       {"full", ActivationCheckpointing::kFull, 1},
                       {"selective", ActivationCheckpointing::kSelective, 1},
                       {"full_every2", ActivationCheckpointing::kFull, 2},
                       {"selective_every2", ActivationCheckpointing::kSelective, 2}};

constexpr int64_t kB = 2, kS = 6;

template <typename T>
struct Run {
  std::vector<LossBreakdown> losses;
  std::vector<std::vector<std::vector<int64_t>>> counts;  // after each micro-batch's Backward
  std::vector<std::vector<T>> grads;
  size_t activation_bytes = 0;
};

template <typename T>
Run<T> TwoMicroBatches(const ModelConfig& c, const Mode& mode) {
  ModelOptions o;
  o.checkpointing = mode.mode;
  o.checkpoint_every = mode.every;
  auto created = Model<T>::Create(c, kB, kS, 2, {}, o);
  EXPECT_TRUE(created.ok()) << created.status();
  Model<T>& m = **created;
  m.InitParams(3);
  // A non-zero selection bias, so routing depends on it (zero after InitParams).
  for (const ParamSpec& s : m.table().specs()) {
    if (s.kind != ParamKind::kBuffer) continue;
    float* bias = m.Param(s.name).template as<float>();
    auto v = moetrain::testing::RandomVector<float>(s.numel(), 17, 0.3);
    std::copy(v.begin(), v.end(), bias);
  }
  Run<T> r;
  r.activation_bytes = m.MemoryPlan()["activations"];
  m.ZeroGrads();
  for (int micro = 0; micro < 2; ++micro) {
    auto tokens = RandomInts(kB * kS, 0, static_cast<int32_t>(c.vocab_size), 10 + micro);
    auto targets = RandomInts(kB * kS, 0, static_cast<int32_t>(c.vocab_size), 20 + micro);
    targets[micro] = kIgnoreIndex;
    r.losses.push_back(m.Forward(tokens.data(), targets.data()));
    m.Backward(0.5);
    r.counts.push_back(m.ExpertCounts());
  }
  for (const ParamSpec& s : m.table().specs()) {
    if (!m.HasGrad(s.name)) continue;
    const T* g = m.Grad(s.name).template as<T>();
    r.grads.emplace_back(g, g + s.numel());
  }
  return r;
}

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

template <typename T>
void ExpectBitwiseEqual(const Run<T>& got, const Run<T>& want, const ModelConfig& c) {
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (size_t i = 0; i < got.losses.size(); ++i) {
    EXPECT_TRUE(SameBits(got.losses[i].total, want.losses[i].total))
        << "micro " << i << ": loss " << got.losses[i].total << " vs " << want.losses[i].total;
    EXPECT_TRUE(SameBits(got.losses[i].aux, want.losses[i].aux)) << "micro " << i << ": aux";
    EXPECT_TRUE(SameBits(got.losses[i].z, want.losses[i].z)) << "micro " << i << ": z";
    EXPECT_EQ(got.counts[i], want.counts[i]) << "micro " << i << ": expert loads";
  }
  ASSERT_EQ(got.grads.size(), want.grads.size());
  int64_t bad_tensors = 0;
  for (size_t t = 0; t < got.grads.size(); ++t) {
    const bool same = got.grads[t].size() == want.grads[t].size() &&
                      std::memcmp(got.grads[t].data(), want.grads[t].data(),
                                  got.grads[t].size() * sizeof(T)) == 0;
    if (!same && bad_tensors++ < 5) {
      double max_err = 0;
      for (size_t i = 0; i < got.grads[t].size(); ++i)
        max_err = std::max(max_err, std::abs(static_cast<double>(got.grads[t][i] - want.grads[t][i])));
      ADD_FAILURE() << "gradient tensor #" << t << " differs, max abs error " << max_err;
    }
  }
  EXPECT_EQ(bad_tensors, 0);
  (void)c;
}

template <typename T>
void CheckAllModes() {
  for (const auto& [label, config] : Cases()) {
    SCOPED_TRACE(label);
    const Run<T> none = TwoMicroBatches<T>(config, kModes[0]);
    // The reference really trains something: gradients are not all zero.
    double norm = 0;
    for (const auto& g : none.grads)
      for (T v : g) norm += static_cast<double>(v) * v;
    ASSERT_GT(norm, 0.0);
    for (size_t i = 1; i < std::size(kModes); ++i) {
      SCOPED_TRACE(kModes[i].label);
      ExpectBitwiseEqual(TwoMicroBatches<T>(config, kModes[i]), none, config);
    }
  }
}

TEST(ActivationCheckpointing, GradientsBitwiseEqualFloat) { CheckAllModes<float>(); }
TEST(ActivationCheckpointing, GradientsBitwiseEqualDouble) { CheckAllModes<double>(); }

// Planned bytes of one slot set, declared by the blocks' own Declare* functions under a prefix and
// planned by a fresh Arena (so per-slot alignment counts as it does in the model).
template <typename T>
size_t SlotBytes(const std::function<void(SlotDeclarer*)>& declare) {
  std::vector<TensorSpec> specs;
  SlotDeclarer d(&specs, "x.", "activations");
  declare(&d);
  auto arena = Arena::Create(specs);
  EXPECT_TRUE(arena.ok()) << arena.status();
  return arena->CategoryBytes("activations");
}

TEST(ActivationCheckpointing, PlannedActivationsShrinkByTheSharedSets) {
  using T = float;
  const ModelConfig c = BaseConfig();
  const int64_t n = kB * kS, C = c.hidden_size;
  const size_t attn = SlotBytes<T>([&](SlotDeclarer* d) {
    AttentionBlock<T>::DeclareActivations(d, c, kB, kS);
  });
  const size_t residual = SlotBytes<T>([&](SlotDeclarer* d) {  // h, hn, rstd2 of the layer
    d->Add("h", {n, C}, DType::kF32);
    d->Add("hn", {n, C}, DType::kF32);
    d->Add("rstd2", {n}, DType::kF32);
  });
  const size_t dense = residual + attn + SlotBytes<T>([&](SlotDeclarer* d) {
    MlpBlock<T>::DeclareActivations(d, n, c.intermediate_size);
  });
  const size_t moe = residual + attn + SlotBytes<T>([&](SlotDeclarer* d) {
    MoeBlock<T>::DeclareActivations(d, c, n, /*ep_size=*/1);
  }) + SlotBytes<T>([&](SlotDeclarer* d) { MlpBlock<T>::DeclareActivations(d, n, c.SharedWidth()); });

  auto plan = [&](const Mode& mode) {
    ModelOptions o;
    o.checkpointing = mode.mode;
    o.checkpoint_every = mode.every;
    auto m = Model<T>::Create(c, kB, kS, 1, {}, o);
    EXPECT_TRUE(m.ok()) << m.status();
    return (*m)->MemoryPlan()["activations"];
  };
  // Expected saving: every checkpointed layer's set minus one shared set per kind (full), or
  // every checkpointed layer's attention minus one shared attention set (selective).
  auto expected_saving = [&](const Mode& mode) {
    if (mode.mode == ActivationCheckpointing::kNone) return size_t{0};
    int64_t ckpt_dense = 0, ckpt_moe = 0;
    for (int64_t l = 0; l < c.num_hidden_layers; l += mode.every)
      (c.IsMoeLayer(l) ? ckpt_moe : ckpt_dense) += 1;
    if (mode.mode == ActivationCheckpointing::kSelective)
      return static_cast<size_t>(ckpt_dense + ckpt_moe - 1) * attn;
    return (ckpt_dense > 0 ? static_cast<size_t>(ckpt_dense - 1) * dense : 0) +
           (ckpt_moe > 0 ? static_cast<size_t>(ckpt_moe - 1) * moe : 0);
  };
  const size_t none = plan(kModes[0]);
  size_t bytes[std::size(kModes)];
  for (size_t i = 0; i < std::size(kModes); ++i) {
    SCOPED_TRACE(kModes[i].label);
    bytes[i] = plan(kModes[i]);
    EXPECT_EQ(none - bytes[i], expected_saving(kModes[i]));
  }
  EXPECT_GT(bytes[0], bytes[2]);  // none > selective
  EXPECT_GT(bytes[2], bytes[1]);  // selective > full
  EXPECT_GT(bytes[3], bytes[1]);  // every 2nd layer saves less than every layer
}

TEST(ActivationCheckpointing, RejectsCheckpointEveryBelowOne) {
  ModelOptions o;
  o.checkpointing = ActivationCheckpointing::kFull;
  o.checkpoint_every = 0;
  auto m = Model<float>::Create(BaseConfig(), kB, kS, 1, {}, o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(std::string(m.status().message()).find("checkpoint_every"), std::string::npos);
}

}  // namespace
}  // namespace moetrain::model

// The golden fixture (tests/fixtures/mixtral-tiny, from Hugging Face transformers' Mixtral in float64):
// weights come in through the real safetensors reader and the HF import path; logits, CE, aux loss,
// routing counts and every gradient are compared against the float64 references.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/hf_config.h"
#include "checkpoint/hf_import.h"
#include "checkpoint/safetensors.h"
#include "gtest/gtest.h"
#include "model/model.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

const std::string kDir = std::string(MOETRAIN_FIXTURE_DIR) + "/mixtral-tiny";

std::vector<int32_t> ReadTokens() {
  std::ifstream in(kDir + "/tokens.txt");
  std::vector<int32_t> t;
  int v;
  while (in >> v) t.push_back(v);
  return t;
}

nlohmann::json Expected() {
  std::ifstream in(kDir + "/expected.json");
  return nlohmann::json::parse(in);
}

template <typename T>
struct Loaded {
  std::unique_ptr<Model<T>> model;
  std::vector<int32_t> tokens, targets;
  LossBreakdown loss;
};

// aux_coef: 0 to compare against grads_ce, the config's 0.001 for grads_total.
template <typename T>
Loaded<T> LoadAndRun(double aux_coef) {
  Loaded<T> r;
  auto config = checkpoint::ReadHfConfig(kDir + "/model/config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  config->router_aux_loss_coef = aux_coef;
  r.tokens = ReadTokens();
  const int64_t s = static_cast<int64_t>(r.tokens.size());
  auto m = Model<T>::Create(*config, 1, s);
  EXPECT_TRUE(m.ok()) << m.status();
  r.model = std::move(*m);
  absl::Status st = checkpoint::LoadHfWeights(kDir + "/model", r.model.get());
  EXPECT_TRUE(st.ok()) << st;
  // Position t predicts token t+1; the last position has no label.
  r.targets.assign(r.tokens.begin() + 1, r.tokens.end());
  r.targets.push_back(kIgnoreIndex);
  r.model->ZeroGrads();
  r.loss = r.model->Forward(r.tokens.data(), r.targets.data());
  r.model->Backward();
  return r;
}

template <typename T>
void CheckLogits(const Loaded<T>& r, double tol) {
  auto ref = checkpoint::SafetensorsFile::Open(kDir + "/logits_ref.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto want = ref->ReadAsDouble("logits");
  ASSERT_TRUE(want.ok());
  std::vector<double> got(r.model->logits(), r.model->logits() + want->size());
  const double rel = moetrain::testing::RelativeL2Error(got, *want);
  EXPECT_LT(rel, tol) << "logits relative error";
  double max_abs = 0;
  for (double v : *want) max_abs = std::max(max_abs, std::fabs(v));
  EXPECT_TRUE(moetrain::testing::AllClose(got, *want, tol, tol * max_abs, "logits"));
}

template <typename T>
void CheckGrads(const Loaded<T>& r, const std::string& file, double tol) {
  auto ref = checkpoint::SafetensorsFile::Open(kDir + "/" + file);
  ASSERT_TRUE(ref.ok()) << ref.status();
  int checked = 0;
  for (const ParamSpec& spec : r.model->table().specs()) {
    ASSERT_TRUE(ref->Has(spec.name)) << spec.name;
    auto want = ref->ReadAsDouble(spec.name);
    ASSERT_TRUE(want.ok());
    const T* g = r.model->Grad(spec.name).template as<T>();
    std::vector<double> got(g, g + spec.numel());
    double norm = 0;
    for (double v : *want) norm += v * v;
    if (norm == 0) {  // an expert that received no token: exactly zero
      for (double v : got) ASSERT_EQ(v, 0.0) << spec.name;
    } else {
      EXPECT_LT(moetrain::testing::RelativeL2Error(got, *want), tol) << file << " " << spec.name;
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(ref->Names().size())) << "every reference gradient checked";
}

TEST(MixtralFixtureTest, Float32LogitsLossesAndRouting) {
  Loaded<float> r = LoadAndRun<float>(0.001);
  nlohmann::json e = Expected();
  CheckLogits(r, 1e-5);
  EXPECT_NEAR(r.loss.ce, e["ce_loss"].get<double>(), 1e-5 * e["ce_loss"].get<double>());
  EXPECT_NEAR(r.loss.aux, e["aux_loss"].get<double>(), 1e-5 * e["aux_loss"].get<double>());
  EXPECT_NEAR(r.loss.total, e["total_loss"].get<double>(), 1e-5 * e["total_loss"].get<double>());
  auto counts = r.model->ExpertCounts();
  auto want = e["tokens_per_expert_per_layer"].get<std::vector<std::vector<int64_t>>>();
  EXPECT_EQ(counts, want);
}

TEST(MixtralFixtureTest, Float32GradientsCeOnly) {
  CheckGrads(LoadAndRun<float>(0.0), "grads_ce.safetensors", 1e-4);
}

TEST(MixtralFixtureTest, Float32GradientsWithAux) {
  CheckGrads(LoadAndRun<float>(0.001), "grads_total.safetensors", 1e-4);
}

// The float64 model against the float64 reference: agreement far below float32 round-off shows
// the semantics (not only the precision) match.
TEST(MixtralFixtureTest, Float64MatchesReferenceTightly) {
  Loaded<double> r = LoadAndRun<double>(0.001);
  nlohmann::json e = Expected();
  CheckLogits(r, 1e-10);
  EXPECT_NEAR(r.loss.total, e["total_loss"].get<double>(), 1e-11);
  CheckGrads(r, "grads_total.safetensors", 1e-9);
}

}  // namespace
}  // namespace moetrain::model

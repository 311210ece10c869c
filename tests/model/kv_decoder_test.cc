// KvDecoder against Model<double>::Forward with the same weights (every config feature), against
// the golden HF fixture's float64 logits, and incremental decoding against block prefill.
#include "model/kv_decoder.h"

#include <cmath>
#include <fstream>

#include "checkpoint/hf_config.h"
#include "checkpoint/hf_param_source.h"
#include "checkpoint/safetensors.h"
#include "gtest/gtest.h"
#include "tests/testing/reference_model.h"
#include "tests/testing/test_util.h"

namespace moetrain::model {
namespace {

using moetrain::testing::AllClose;

// |got - want| <= tol * (|want| + max |want|): 1e-4 relative to the logits' scale.
::testing::AssertionResult CloseToReference(const std::vector<float>& got,
                                            const std::vector<double>& want, double tol) {
  double max_abs = 0;
  for (double v : want) max_abs = std::max(max_abs, std::fabs(v));
  return AllClose(got, want, tol, tol * max_abs, "logits");
}

// Logits of every position, one Append per token.
std::vector<float> DecodeOneByOne(KvDecoder& d, const std::vector<int32_t>& tokens) {
  const int64_t v = d.config().vocab_size;
  std::vector<float> out;
  d.Reset();
  for (int32_t t : tokens) {
    auto logits = d.Append(t);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    out.insert(out.end(), *logits, *logits + v);
  }
  return out;
}

// Logits of every position, in blocks of the decoder's largest block.
std::vector<float> DecodeInBlocks(KvDecoder& d, const std::vector<int32_t>& tokens) {
  const int64_t v = d.config().vocab_size, n = static_cast<int64_t>(tokens.size());
  std::vector<float> out;
  d.Reset();
  for (int64_t begin = 0; begin < n; begin += KvDecoder::kMaxBlock) {
    const int64_t len = std::min(KvDecoder::kMaxBlock, n - begin);
    auto logits = d.AppendBlock(tokens.data() + begin, len);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    out.insert(out.end(), *logits, *logits + len * v);
  }
  return out;
}

void CheckAgainstFloat64Model(const ModelConfig& c) {
  const int64_t seq = KvDecoder::kMaxBlock + 9;  // blocks cross a boundary
  auto ref = moetrain::testing::MakeReferenceModels(c, seq, 7);
  auto tokens = moetrain::testing::RandomInts(seq, 0, static_cast<int32_t>(c.vocab_size), 3);
  const std::vector<double> want = moetrain::testing::ReferenceLogits(*ref.f64, tokens);
  auto d = KvDecoder::Create(c, seq, *ref.source, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  const std::vector<float> one = DecodeOneByOne(**d, tokens);
  EXPECT_TRUE(CloseToReference(one, want, 1e-4)) << "one token at a time";
  const std::vector<float> blocks = DecodeInBlocks(**d, tokens);
  EXPECT_TRUE(CloseToReference(blocks, want, 1e-4)) << "blocks";
  // Incremental decoding == prefill (different matmul shapes: equal up to float rounding).
  EXPECT_TRUE(AllClose(one, blocks, 1e-5, 1e-5, "append vs block"));
  // Prefill returns the last position's row; Reset makes a rerun bitwise identical.
  (*d)->Reset();
  auto last = (*d)->Prefill(tokens);
  ASSERT_TRUE(last.ok()) << last.status();
  const std::vector<float> last_row(*last, *last + c.vocab_size);
  EXPECT_EQ(last_row, std::vector<float>(blocks.end() - c.vocab_size, blocks.end()));
  EXPECT_EQ(DecodeOneByOne(**d, tokens), one);
}

TEST(KvDecoder, MatchesFloat64ModelSharedExpertsDenseLayerSigmoidBias) {
  CheckAgainstFloat64Model(moetrain::testing::FeatureConfig());
}

TEST(KvDecoder, MatchesFloat64ModelTiedEmbeddingsSoftmax) {
  CheckAgainstFloat64Model(moetrain::testing::TiedSoftmaxConfig());
}

TEST(KvDecoder, BiasChangesSelectionOnly) {
  // With the bias zeroed the decoder must give different logits (the bias picked other experts),
  // which the float64 check above then shows it applies exactly as training does.
  const ModelConfig c = moetrain::testing::FeatureConfig();
  auto ref = moetrain::testing::MakeReferenceModels(c, 8, 7);
  auto tokens = moetrain::testing::RandomInts(8, 0, static_cast<int32_t>(c.vocab_size), 3);
  auto with_bias = KvDecoder::Create(c, 8, *ref.source, 1);
  ASSERT_TRUE(with_bias.ok()) << with_bias.status();
  const std::vector<float> a = DecodeInBlocks(**with_bias, tokens);
  for (const ParamSpec& s : ref.f32->table().specs())
    if (s.kind == ParamKind::kBuffer)
      std::fill_n(ref.f32->Param(s.name).as<float>(), s.numel(), 0.0f);
  auto no_bias = KvDecoder::Create(c, 8, *ref.source, 1);
  ASSERT_TRUE(no_bias.ok()) << no_bias.status();
  EXPECT_NE(DecodeInBlocks(**no_bias, tokens), a);
}

TEST(KvDecoder, GoldenMixtralFixture) {
  const std::string dir = std::string(MOETRAIN_FIXTURE_DIR) + "/mixtral-tiny";
  auto config = checkpoint::ReadHfConfig(dir + "/model/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto source = checkpoint::HfParamSource::Open(dir + "/model");
  ASSERT_TRUE(source.ok()) << source.status();
  std::ifstream in(dir + "/tokens.txt");
  std::vector<int32_t> tokens;
  for (int v; in >> v;) tokens.push_back(v);
  ASSERT_EQ(tokens.size(), 48u);
  auto ref = checkpoint::SafetensorsFile::Open(dir + "/logits_ref.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto want = ref->ReadAsDouble("logits");
  ASSERT_TRUE(want.ok()) << want.status();
  auto d = KvDecoder::Create(*config, 48, **source, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(CloseToReference(DecodeOneByOne(**d, tokens), *want, 1e-4));
  EXPECT_TRUE(CloseToReference(DecodeInBlocks(**d, tokens), *want, 1e-4));
  // Planned memory: the cache is layers x 2 x max_context x kv_heads x head_dim floats.
  const ModelConfig& c = *config;
  EXPECT_EQ(
      (*d)->MemoryPlan().at("kv_cache"),
      static_cast<size_t>(c.num_hidden_layers * 2 * 48 * c.num_key_value_heads * c.HeadDim() * 4));
}

TEST(KvDecoder, RejectsBadTokensFullContextAndMissingTensors) {
  const ModelConfig c = moetrain::testing::TiedSoftmaxConfig();
  auto ref = moetrain::testing::MakeReferenceModels(c, 4, 1);
  auto d = KvDecoder::Create(c, 3, *ref.source, 1);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->Append(static_cast<int32_t>(c.vocab_size)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*d)->Append(-1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*d)->position(), 0);
  EXPECT_TRUE((*d)->Prefill({1, 2, 3}).ok());
  auto full = (*d)->Append(4);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kOutOfRange) << full.status();
  EXPECT_EQ((*d)->Prefill({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(KvDecoder::Create(c, 0, *ref.source, 1).ok());
  EXPECT_FALSE(KvDecoder::Create(c, c.max_position_embeddings + 1, *ref.source, 1).ok());
  // A source for another shape of model lacks tensors: the error names the tensor.
  ModelConfig more_layers = c;
  more_layers.num_hidden_layers = 3;
  auto bad = KvDecoder::Create(more_layers, 4, *ref.source, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.layers.2."), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace moetrain::model

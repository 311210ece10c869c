// HF export: round trips through the HF param source (bitwise for f32), bf16 against an independent
// round-to-nearest-even, index sharding, int8 error bounds, qwen2_moe naming against the live model's
// forward pass, and the refusals.
// With MOETRAIN_HF_EXPORT_DUMP=DIR set, the fixture (f32, bf16) and the random qwen2_moe model are also
// exported there with moetrain's logits (for scripts/check_hf_export.py; docs/export.md).
#include "checkpoint/hf_export.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/hf_config.h"
#include "checkpoint/hf_param_source.h"
#include "checkpoint/safetensors.h"
#include "gtest/gtest.h"
#include "model/model.h"
#include "model/model_param_source.h"

namespace moetrain::checkpoint {
namespace {
namespace fs = std::filesystem;

const std::string kFixture = std::string(MOETRAIN_FIXTURE_DIR) + "/mixtral-tiny";

std::string TempDir(const std::string& tag) {
  const fs::path p = fs::temp_directory_path() / absl::StrCat("mt_hf_export_", ::getpid(), "_", tag);
  fs::remove_all(p);
  return p.string();
}

std::vector<float> ReadAll(model::ParamSource& src, const model::ParamSpec& spec) {
  std::vector<float> v(static_cast<size_t>(spec.numel()));
  absl::Status st = src.ReadFull(spec, v.data());
  EXPECT_TRUE(st.ok()) << st;
  return v;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Fixture {
  model::ModelConfig config;
  std::unique_ptr<HfParamSource> source;
};
Fixture OpenFixture() {
  Fixture f;
  auto c = ReadHfConfigAny(kFixture + "/model/config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  f.config = *c;
  auto s = HfParamSource::Open(kFixture + "/model");
  EXPECT_TRUE(s.ok()) << s.status();
  f.source = std::move(*s);
  return f;
}

// Every table tensor of `config` reads bitwise alike from both sources.
void ExpectSameTensors(const model::ModelConfig& config, model::ParamSource& want,
                       model::ParamSource& got) {
  const model::ParamTable table = model::ParamTable::Build(config);
  for (const model::ParamSpec& spec : table.specs()) {
    ASSERT_TRUE(got.Has(spec.name)) << spec.name;
    EXPECT_TRUE(BitwiseEqual(ReadAll(want, spec), ReadAll(got, spec))) << spec.name;
  }
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

ExportOptions Options(const std::string& dir, DType dtype = DType::kF32) {
  ExportOptions o;
  o.out_dir = dir;
  o.dtype = dtype;
  return o;
}

TEST(HfExport, FixtureF32RoundTripIsBitwise) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("f32");
  auto summary = ExportHf(f.config, *f.source, Options(dir));
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->model_type, "mixtral");
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(absl::StrCat(dir, ".tmp.", ::getpid())));
  auto back = HfParamSource::Open(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->naming(), HfNaming::kMixtral);
  ExpectSameTensors(f.config, *f.source, **back);
  // Nothing extra in the folder, and the config reads back to the same model.
  EXPECT_EQ((*back)->Names(), f.source->Names());
  auto c = ReadHfConfigAny(dir + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(HfConfigJson(*c, HfNaming::kMixtral, DType::kF32, {}),
            HfConfigJson(f.config, HfNaming::kMixtral, DType::kF32, {}));
  EXPECT_EQ(ReadJson(dir + "/config.json")["model_type"], "mixtral");
  EXPECT_EQ(ReadJson(dir + "/generation_config.json")["eos_token_id"], 2);
  fs::remove_all(dir);
}

// Independent bf16 rounding: pick the nearer of the two bf16 neighbours (truncation and next up in
// magnitude) in float64; ties go to the even mantissa.
uint16_t ReferenceBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint16_t lo = static_cast<uint16_t>(u >> 16), hi = static_cast<uint16_t>(lo + 1);
  auto value = [](uint16_t b) {
    uint32_t v = static_cast<uint32_t>(b) << 16;
    float g;
    std::memcpy(&g, &v, 4);
    return static_cast<double>(g);
  };
  const double dlo = std::fabs(static_cast<double>(x) - value(lo));
  const double dhi = std::fabs(static_cast<double>(x) - value(hi));
  if (dlo != dhi) return dlo < dhi ? lo : hi;
  return (lo & 1) == 0 ? lo : hi;
}

TEST(HfExport, Bf16MatchesIndependentRounding) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("bf16");
  ASSERT_TRUE(ExportHf(f.config, *f.source, Options(dir, DType::kBF16)).ok());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  int64_t checked = 0;
  const model::ParamTable table = model::ParamTable::Build(f.config);
  for (const model::ParamSpec& spec : table.specs()) {
    auto info = file->Info(spec.name);
    ASSERT_TRUE(info.ok()) << spec.name;
    ASSERT_EQ(info->dtype, DType::kBF16) << spec.name;
    std::vector<uint16_t> bits(static_cast<size_t>(spec.numel()));
    ASSERT_TRUE(file->ReadInto(spec.name, TensorView(bits.data(), Shape(spec.shape), DType::kBF16)).ok());
    const std::vector<float> want = ReadAll(*f.source, spec);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(bits[i], ReferenceBf16(want[i])) << spec.name << "[" << i << "] = " << want[i];
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  EXPECT_EQ(ReadJson(dir + "/config.json")["torch_dtype"], "bfloat16");
  fs::remove_all(dir);
}

TEST(HfExport, ShardedIndexReadsBackIdentically) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("sharded");
  ExportOptions o = Options(dir);
  o.max_shard_bytes = 100 * 1024;
  auto summary = ExportHf(f.config, *f.source, o);
  ASSERT_TRUE(summary.ok()) << summary.status();
  const nlohmann::json index = ReadJson(dir + "/model.safetensors.index.json");
  std::set<std::string> files;
  for (auto& [name, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
  ASSERT_GT(files.size(), 2u);
  // Each file is within the limit (no single fixture tensor exceeds it) and the sizes add up.
  int64_t total = 0;
  const std::string last = absl::StrFormat("model-%05d-of-%05d.safetensors", files.size(), files.size());
  EXPECT_TRUE(files.count(last)) << last;
  for (const std::string& file : files) {
    auto st = SafetensorsFile::Open(dir + "/" + file);
    ASSERT_TRUE(st.ok()) << st.status();
    int64_t bytes = 0;
    for (const std::string& n : st->Names()) bytes += st->Info(n)->nbytes;
    EXPECT_LE(bytes, o.max_shard_bytes) << file;
    total += bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
  auto back = HfParamSource::Open(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(f.config, *f.source, **back);
  fs::remove_all(dir);
}

TEST(HfExport, Int8ErrorWithinHalfAScale) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("int8");
  ExportOptions o = Options(dir);
  o.quantize_int8 = true;
  ASSERT_TRUE(ExportHf(f.config, *f.source, o).ok());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  int quantized = 0;
  const model::ParamTable table = model::ParamTable::Build(f.config);
  for (const model::ParamSpec& spec : table.specs()) {
    const std::vector<float> want = ReadAll(*f.source, spec);
    const bool expect_int8 = spec.shape.size() == 2 && spec.name != "model.embed_tokens.weight" &&
                             spec.name != "lm_head.weight" &&
                             spec.name.find(".gate.weight") == std::string::npos;
    ASSERT_EQ(file->Info(spec.name)->dtype, expect_int8 ? DType::kI8 : DType::kF32) << spec.name;
    if (!expect_int8) {
      EXPECT_TRUE(BitwiseEqual(*file->ReadAsFloat(spec.name), want)) << spec.name;
      EXPECT_FALSE(file->Has(spec.name + "_scale"));
      continue;
    }
    ++quantized;
    const std::vector<double> q = *file->ReadAsDouble(spec.name);
    auto scale = file->ReadAsDouble(spec.name + "_scale");
    ASSERT_TRUE(scale.ok()) << spec.name;
    const int64_t rows = spec.shape[0], cols = spec.shape[1];
    ASSERT_EQ(static_cast<int64_t>(scale->size()), rows);
    for (int64_t r = 0; r < rows; ++r) {
      double amax = 0;
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(double(want[r * cols + c])));
      const double s = (*scale)[r];
      EXPECT_NEAR(s, amax / 127, 1e-6 * amax / 127) << spec.name << " row " << r;
      for (int64_t c = 0; c < cols; ++c) {
        const double err = std::fabs(double(want[r * cols + c]) - q[r * cols + c] * s);
        ASSERT_LE(err, s / 2 * (1 + 1e-6)) << spec.name << "[" << r << "," << c << "]";
        ASSERT_LE(std::fabs(q[r * cols + c]), 127);
      }
    }
  }
  EXPECT_GT(quantized, 0);
  EXPECT_EQ(file->metadata().at("quantization"), "moetrain-int8-weight-per-row-v1");
  fs::remove_all(dir);
}

model::ModelConfig SharedDenseConfig() {
  model::ModelConfig c;
  c.vocab_size = 96;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 16;
  c.num_shared_experts = 2;
  c.first_k_dense_replace = 1;
  c.norm_topk_prob = false;
  c.max_position_embeddings = 64;
  c.initializer_range = 0.1;  // larger than default so routing and logits are far from trivial
  return c;
}

// Copies every tensor of `src` into a tp = 1 model.
void LoadInto(model::ParamSource& src, model::Model<float>* m) {
  for (const model::ParamSpec& spec : m->table().specs()) {
    const std::vector<float> v = ReadAll(src, spec);
    std::memcpy(m->Param(spec.name).data(), v.data(), v.size() * sizeof(float));
  }
}

TEST(HfExport, Qwen2MoeRoundTripGivesTheSameModel) {
  const model::ModelConfig c = SharedDenseConfig();
  constexpr int64_t kSeq = 24;
  auto m = model::Model<float>::Create(c, 1, kSeq, /*num_threads=*/1);
  ASSERT_TRUE(m.ok()) << m.status();
  (*m)->InitParams(7);
  model::ModelParamSource<float> live(**m);
  const std::string dir = TempDir("qwen");
  auto summary = ExportHf(c, live, Options(dir));
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->model_type, "qwen2_moe");
  const nlohmann::json cj = ReadJson(dir + "/config.json");
  EXPECT_EQ(cj["mlp_only_layers"], nlohmann::json::array({0}));
  EXPECT_EQ(cj["shared_expert_intermediate_size"], 32);

  // The raw file carries Qwen2-MoE's names: the shared down_proj doubled, zero gate and biases.
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  const model::ParamSpec& w2 = *(*m)->table().Find("model.layers.1.block_sparse_moe.shared_experts.w2.weight");
  const std::vector<float> ours = ReadAll(live, w2);
  const std::vector<float> theirs = *file->ReadAsFloat("model.layers.1.mlp.shared_expert.down_proj.weight");
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(theirs[i], 2 * ours[i]);
  for (const std::string& zero : {QwenSharedGateName(2), QwenQkvBiasName(0, 'q'), QwenQkvBiasName(2, 'v')}) {
    auto v = file->ReadAsFloat(zero);
    ASSERT_TRUE(v.ok()) << zero;
    for (float x : *v) ASSERT_EQ(x, 0.0f) << zero;
  }
  EXPECT_TRUE(file->Has("model.layers.2.mlp.experts.3.gate_proj.weight"));
  EXPECT_TRUE(file->Has("model.layers.0.mlp.down_proj.weight"));

  // Read back: same config, same names, bitwise the same tensors.
  auto back_config = ReadHfConfigAny(dir + "/config.json");
  ASSERT_TRUE(back_config.ok()) << back_config.status();
  EXPECT_EQ(HfConfigJson(*back_config, HfNaming::kQwen2Moe, DType::kF32, {}),
            HfConfigJson(c, HfNaming::kQwen2Moe, DType::kF32, {}));
  auto back = HfParamSource::Open(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->naming(), HfNaming::kQwen2Moe);
  ExpectSameTensors(c, live, **back);
  std::vector<std::string> table_names;
  for (const auto& s : (*m)->table().specs()) table_names.push_back(s.name);
  std::sort(table_names.begin(), table_names.end());
  EXPECT_EQ((*back)->Names(), table_names);

  // A second model loaded from the export computes bitwise the same logits.
  auto m2 = model::Model<float>::Create(*back_config, 1, kSeq, /*num_threads=*/1);
  ASSERT_TRUE(m2.ok()) << m2.status();
  LoadInto(**back, m2->get());
  std::vector<int32_t> tokens(kSeq), targets(kSeq, model::kIgnoreIndex);
  for (int64_t i = 0; i < kSeq; ++i) tokens[i] = static_cast<int32_t>((i * 37 + 11) % c.vocab_size);
  (*m)->Forward(tokens.data(), targets.data());
  (*m2)->Forward(tokens.data(), targets.data());
  const int64_t n = kSeq * c.vocab_size;
  EXPECT_EQ(std::memcmp((*m)->logits(), (*m2)->logits(), n * sizeof(float)), 0);

  if (const char* dump = std::getenv("MOETRAIN_HF_EXPORT_DUMP")) {
    const std::string out = std::string(dump) + "/qwen2_moe_f32";
    ExportOptions o = Options(out);
    o.overwrite = true;
    ASSERT_TRUE(ExportHf(c, live, o).ok());
    std::vector<int32_t> ids(tokens);
    ASSERT_TRUE(WriteSafetensors(std::string(dump) + "/qwen2_moe_logits.safetensors",
                                 {{"logits", TensorView(const_cast<float*>((*m)->logits()),
                                                        Shape({kSeq, c.vocab_size}), DType::kF32),
                                   DType::kF32},
                                  {"tokens", TensorView(ids.data(), Shape({kSeq}), DType::kI32),
                                   DType::kI32}})
                    .ok());
    // Dense first layer but no shared experts: qwen2_moe with a zero-width shared expert.
    model::ModelConfig c0 = c;
    c0.num_shared_experts = 0;
    auto m0 = model::Model<float>::Create(c0, 1, kSeq, /*num_threads=*/1);
    ASSERT_TRUE(m0.ok()) << m0.status();
    (*m0)->InitParams(9);
    model::ModelParamSource<float> live0(**m0);
    ExportOptions o0 = Options(std::string(dump) + "/qwen2_moe_noshared_f32");
    o0.overwrite = true;
    ASSERT_TRUE(ExportHf(c0, live0, o0).ok());
    (*m0)->Forward(tokens.data(), targets.data());
    ASSERT_TRUE(WriteSafetensors(std::string(dump) + "/qwen2_moe_noshared_logits.safetensors",
                                 {{"logits", TensorView(const_cast<float*>((*m0)->logits()),
                                                        Shape({kSeq, c.vocab_size}), DType::kF32),
                                   DType::kF32},
                                  {"tokens", TensorView(ids.data(), Shape({kSeq}), DType::kI32),
                                   DType::kI32}})
                    .ok());
    Fixture f = OpenFixture();
    for (DType t : {DType::kF32, DType::kBF16}) {
      ExportOptions fo = Options(absl::StrCat(dump, "/mixtral_tiny_", DTypeName(t)), t);
      fo.overwrite = true;
      ASSERT_TRUE(ExportHf(f.config, *f.source, fo).ok());
    }
  }
  fs::remove_all(dir);
}

TEST(HfExport, RefusesWhatNeitherArchitectureExpresses) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("refuse");
  struct Case {
    std::function<void(model::ModelConfig*)> change;
    std::string feature;
  };
  const std::vector<Case> cases = {
      {[](model::ModelConfig* c) { c->scoring_func = "sigmoid"; }, "scoring_func 'sigmoid'"},
      {[](model::ModelConfig* c) { c->balancing = "bias"; }, "score-correction bias"},
      {[](model::ModelConfig* c) { c->capacity_factor = 1.25; }, "capacity_factor 1.25"},
  };
  for (const Case& k : cases) {
    model::ModelConfig c = f.config;
    k.change(&c);
    auto r = ExportHf(c, *f.source, Options(dir));
    ASSERT_FALSE(r.ok()) << k.feature;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(k.feature), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(dir), std::string::npos) << r.status();
    EXPECT_FALSE(fs::exists(dir));
  }
  // z-loss is training-only: still exports.
  model::ModelConfig z = f.config;
  z.router_z_loss_coef = 0.01;
  ASSERT_TRUE(ExportHf(z, *f.source, Options(dir)).ok());
  // Non-empty out_dir: refused unless overwrite, which replaces it whole.
  { std::ofstream(dir + "/stale.txt") << "old"; }
  auto again = ExportHf(f.config, *f.source, Options(dir));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("not empty"), std::string::npos) << again.status();
  EXPECT_TRUE(fs::exists(dir + "/stale.txt"));
  ExportOptions o = Options(dir);
  o.overwrite = true;
  ASSERT_TRUE(ExportHf(f.config, *f.source, o).ok());
  EXPECT_FALSE(fs::exists(dir + "/stale.txt"));
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  fs::remove_all(dir);
}

TEST(HfExport, TokenizerFilesAreCopiedOrTheMissingFileNamed) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("tok");
  ExportOptions o = Options(dir);
  o.tokenizer_model_path = dir + ".missing.model";
  auto r = ExportHf(f.config, *f.source, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(o.tokenizer_model_path), std::string::npos) << r.status();
  EXPECT_FALSE(fs::exists(dir));
  // Any bytes stand in for a SentencePiece model: the exporter copies it verbatim.
  const std::string model_path = dir + ".model";
  const std::string bytes("\x0a\x05piece\x00\xff", 10);
  { std::ofstream(model_path, std::ios::binary) << bytes; }
  o.tokenizer_model_path = model_path;
  auto ok = ExportHf(f.config, *f.source, o);
  ASSERT_TRUE(ok.ok()) << ok.status();
  std::ifstream in(dir + "/tokenizer.model", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), bytes);
  const nlohmann::json tc = ReadJson(dir + "/tokenizer_config.json");
  EXPECT_EQ(tc["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(ReadJson(dir + "/special_tokens_map.json")["eos_token"], "</s>");
  fs::remove_all(dir);
  fs::remove(model_path);
}

// A source that lacks one tensor: the error names it and nothing is left on disk.
class DroppingSource : public model::ParamSource {
 public:
  DroppingSource(model::ParamSource& inner, std::string drop) : inner_(inner), drop_(std::move(drop)) {}
  absl::Status ReadFull(const model::ParamSpec& spec, float* out) override {
    if (spec.name == drop_) return absl::DataLossError(absl::StrCat("broken: '", drop_, "'"));
    return inner_.ReadFull(spec, out);
  }
  bool Has(const std::string& name) const override { return inner_.Has(name); }

 private:
  model::ParamSource& inner_;
  std::string drop_;
};

TEST(HfExport, SourceErrorLeavesNothingBehind) {
  Fixture f = OpenFixture();
  const std::string dir = TempDir("broken");
  const std::string bad = "model.layers.1.block_sparse_moe.experts.4.w2.weight";
  DroppingSource src(*f.source, bad);
  ExportOptions o = Options(dir);
  o.max_shard_bytes = 100 * 1024;  // the failure comes after some files were written
  auto r = ExportHf(f.config, src, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status();
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(absl::StrCat(dir, ".tmp.", ::getpid())));
}

TEST(HfExport, ImportRefusesWhatMoetrainCannotRepresent) {
  const model::ModelConfig c = SharedDenseConfig();
  auto m = model::Model<float>::Create(c, 1, 4, 1);
  ASSERT_TRUE(m.ok());
  (*m)->InitParams(3);
  model::ModelParamSource<float> live(**m);
  const std::string dir = TempDir("import_refuse");
  ASSERT_TRUE(ExportHf(c, live, Options(dir)).ok());
  // A learned (nonzero) shared-expert gate.
  {
    auto file = SafetensorsFile::Open(dir + "/model.safetensors");
    ASSERT_TRUE(file.ok());
    std::vector<std::vector<float>> data;
    std::vector<NamedTensor> tensors;
    const std::vector<std::string> names = file->Names();
    data.reserve(names.size());
    for (const std::string& n : names) {
      data.push_back(*file->ReadAsFloat(n));
      if (n == QwenSharedGateName(1)) data.back()[5] = 0.25f;
      tensors.push_back({n, TensorView(data.back().data(), Shape(file->Info(n)->shape), DType::kF32),
                         DType::kF32});
    }
    ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}).ok());
  }
  auto src = HfParamSource::Open(dir);
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(src.status().message().find(QwenSharedGateName(1)), std::string::npos) << src.status();
  EXPECT_NE(src.status().message().find("not representable"), std::string::npos) << src.status();
  // Config fields with no moetrain equivalent, one at a time.
  const nlohmann::json original = ReadJson(dir + "/config.json");
  for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"decoder_sparse_step", 2}, {"mlp_only_layers", {1}}, {"use_sliding_window", true},
           {"shared_expert_intermediate_size", 24}, {"model_type", "deepseek_v3"}}) {
    nlohmann::json j = original;
    j[field] = value;
    { std::ofstream(dir + "/config.json") << j.dump(); }
    auto r = ReadHfConfigAny(dir + "/config.json");
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(dir + "/config.json"), std::string::npos) << r.status();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moetrain::checkpoint

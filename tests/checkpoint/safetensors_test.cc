// Safetensors reader/writer tests. Independent evidence that the parse is right comes from (1) the
// golden fixture written by Python's safetensors, checked against config.json, (2) a byte buffer
// the test assembles by hand, with known bit patterns, (3) bitwise round trips, and (4) one test
// per corruption class, each of which must fail with a message naming the file.
#include "checkpoint/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::checkpoint {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kFixture = std::string(MOETRAIN_FIXTURE_DIR) + "/mixtral-tiny";

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
}

// A safetensors file from a header string and a data buffer (no padding added).
std::string Assemble(const std::string& header, const std::string& data) {
  return Bytes<uint64_t>(header.size()) + header + data;
}

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint64_t DoubleBits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/safetensors_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // Files in dir_ (to check no temp file is left behind).
  std::vector<std::string> ListDir() const {
    std::vector<std::string> out;
    std::string cmd = "ls -A '" + dir_ + "'";
    FILE* p = ::popen(cmd.c_str(), "r");
    char line[4096];
    while (p && std::fgets(line, sizeof(line), p)) {
      std::string s(line);
      if (!s.empty() && s.back() == '\n') s.pop_back();
      out.push_back(s);
    }
    if (p) ::pclose(p);
    return out;
  }
  std::string dir_;
};

// ---------------------------------------------------------------------------------------------------
// The golden fixture (written by Python's safetensors).

TEST(SafetensorsFixtureTest, ModelNamesAndShapesMatchConfig) {
  std::ifstream cfg_in(kFixture + "/model/config.json");
  ASSERT_TRUE(cfg_in.good());
  const nlohmann::json cfg = nlohmann::json::parse(cfg_in);
  const int64_t vocab = cfg["vocab_size"], hidden = cfg["hidden_size"];
  const int64_t layers = cfg["num_hidden_layers"], heads = cfg["num_attention_heads"];
  const int64_t kv_heads = cfg["num_key_value_heads"], experts = cfg["num_local_experts"];
  const int64_t inter = cfg["intermediate_size"];
  const int64_t head_dim = hidden / heads;

  const std::string path = kFixture + "/model/model.safetensors";
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();

  std::map<std::string, std::vector<int64_t>> want = {
      {"model.embed_tokens.weight", {vocab, hidden}},
      {"lm_head.weight", {vocab, hidden}},
      {"model.norm.weight", {hidden}},
  };
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    want[p + "self_attn.q_proj.weight"] = {heads * head_dim, hidden};
    want[p + "self_attn.k_proj.weight"] = {kv_heads * head_dim, hidden};
    want[p + "self_attn.v_proj.weight"] = {kv_heads * head_dim, hidden};
    want[p + "self_attn.o_proj.weight"] = {hidden, heads * head_dim};
    want[p + "block_sparse_moe.gate.weight"] = {experts, hidden};
    want[p + "input_layernorm.weight"] = {hidden};
    want[p + "post_attention_layernorm.weight"] = {hidden};
    for (int64_t e = 0; e < experts; ++e) {
      const std::string q = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
      want[q + "w1.weight"] = {inter, hidden};
      want[q + "w2.weight"] = {hidden, inter};
      want[q + "w3.weight"] = {inter, hidden};
    }
  }
  std::vector<std::string> want_names;
  for (const auto& kv : want) want_names.push_back(kv.first);  // std::map: sorted
  EXPECT_EQ(file->Names(), want_names);

  for (const auto& [name, shape] : want) {
    auto info = file->Info(name);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->shape, shape) << name;
    EXPECT_EQ(info->dtype, DType::kF32) << name;
    EXPECT_EQ(info->nbytes, static_cast<size_t>(info->numel) * 4) << name;
  }
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  // Values: finite, not all zero; ReadInto f64 agrees with ReadAsFloat.
  auto embed = file->ReadAsFloat("model.embed_tokens.weight");
  ASSERT_TRUE(embed.ok()) << embed.status();
  ASSERT_EQ(embed->size(), static_cast<size_t>(vocab * hidden));
  double sumsq = 0;
  for (float x : *embed) {
    ASSERT_TRUE(std::isfinite(x));
    sumsq += double{x} * x;
  }
  EXPECT_GT(sumsq, 0);
  std::vector<double> embed64(embed->size());
  TensorView dst(embed64.data(), Shape({vocab, hidden}), DType::kF64);
  ASSERT_TRUE(file->ReadInto("model.embed_tokens.weight", dst).ok());
  EXPECT_EQ(embed64, testing::Cast<double>(*embed));

  // The raw bytes in the file are exactly what ReadAsFloat returned.
  auto info = file->Info("model.embed_tokens.weight");
  const std::string raw = ReadFileBytes(path).substr(info->file_offset, info->nbytes);
  EXPECT_EQ(std::memcmp(raw.data(), embed->data(), raw.size()), 0);

  // A wrong destination shape names the tensor, the file and both shapes.
  std::vector<float> wrong(static_cast<size_t>(vocab * hidden));
  absl::Status s = file->ReadInto("model.embed_tokens.weight",
                                  TensorView(wrong.data(), Shape({hidden, vocab}), DType::kF32));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.embed_tokens.weight"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(256, 64)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(64, 256)"));

  // Unknown names.
  EXPECT_FALSE(file->Has("model.nope"));
  EXPECT_TRUE(file->Has("lm_head.weight"));
  EXPECT_EQ(file->Info("model.nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file->ReadAsDouble("model.nope").status().message()), HasSubstr(path));
}

TEST(SafetensorsFixtureTest, ReferenceOutputs) {
  std::ifstream tokens_in(kFixture + "/tokens.txt");
  const std::vector<int64_t> tokens{std::istream_iterator<int64_t>(tokens_in),
                                    std::istream_iterator<int64_t>()};
  ASSERT_EQ(tokens.size(), 48u);

  auto logits = SafetensorsFile::Open(kFixture + "/logits_ref.safetensors");
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_THAT(logits->Names(), ElementsAre("logits"));
  EXPECT_TRUE(logits->metadata().empty());
  auto info = logits->Info("logits");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->dtype, DType::kF64);
  EXPECT_EQ(info->shape, (std::vector<int64_t>{static_cast<int64_t>(tokens.size()), 256}));
  auto values = logits->ReadAsDouble("logits");
  ASSERT_TRUE(values.ok());
  for (double v : *values) ASSERT_TRUE(std::isfinite(v));

  // Gradients: F64, same names and shapes as the model.
  auto model = SafetensorsFile::Open(kFixture + "/model/model.safetensors");
  auto grads = SafetensorsFile::Open(kFixture + "/grads_ce.safetensors");
  ASSERT_TRUE(model.ok() && grads.ok());
  EXPECT_EQ(grads->Names(), model->Names());
  EXPECT_EQ(grads->metadata().at("loss"), "cross-entropy only");
  for (const std::string& name : model->Names()) {
    EXPECT_EQ(grads->Info(name)->shape, model->Info(name)->shape) << name;
    EXPECT_EQ(grads->Info(name)->dtype, DType::kF64) << name;
  }
}

// ---------------------------------------------------------------------------------------------------
// A hand-assembled file: every dtype, a scalar, an empty tensor, unsorted offsets, a hole, and a
// header length that is not a multiple of 8 (so the data is unaligned).

TEST_F(SafetensorsTest, HandAssembledFile) {
  const std::string header = R"({"__metadata__":{"k":"v","format":"pt"},)"
                             R"("f16":{"dtype":"F16","shape":[2],"data_offsets":[40,44]},)"
                             R"("bf16":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]},)"
                             R"("f64":{"dtype":"F64","shape":[],"data_offsets":[4,12]},)"
                             R"("i32":{"dtype":"I32","shape":[3],"data_offsets":[12,24]},)"
                             R"("f32":{"dtype":"F32","shape":[2,1],"data_offsets":[24,32]},)"
                             R"("empty":{"dtype":"F32","shape":[2,0],"data_offsets":[32,32]},)"
                             R"("i64":{"dtype":"I64","shape":[1],"data_offsets":[44,52]}})";
  ASSERT_NE(header.size() % 8, 0u);
  std::string data;
  data += Bytes<uint16_t>(0x3F80) + Bytes<uint16_t>(0x4049);  // bf16: 1.0, 3.140625
  data += Bytes<uint64_t>(0x3FE0000000000000ull);             // f64: 0.5
  data += Bytes<int32_t>(1) + Bytes<int32_t>(-2) + Bytes<int32_t>(3);
  data += Bytes<uint32_t>(0x40200000u) + Bytes<uint32_t>(0xBF800000u);  // f32: 2.5, -1.0
  data += std::string(8, '\xAA');                                       // a hole at [32, 40)
  data += Bytes<uint16_t>(0x3C00) + Bytes<uint16_t>(0xC000);            // f16: 1.0, -2.0
  data += Bytes<int64_t>(-7);
  const std::string path = Path("hand.safetensors");
  WriteFileBytes(path, Assemble(header, data));

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(file->Names(), ElementsAre("bf16", "empty", "f16", "f32", "f64", "i32", "i64"));
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"k", "v"}}));

  EXPECT_THAT(*file->ReadAsDouble("bf16"), ElementsAre(1.0, 3.140625));
  EXPECT_THAT(*file->ReadAsDouble("f16"), ElementsAre(1.0, -2.0));
  EXPECT_THAT(*file->ReadAsDouble("f64"), ElementsAre(0.5));
  EXPECT_THAT(*file->ReadAsDouble("i32"), ElementsAre(1.0, -2.0, 3.0));
  EXPECT_THAT(*file->ReadAsFloat("f32"), ElementsAre(2.5f, -1.0f));
  EXPECT_THAT(*file->ReadAsDouble("i64"), ElementsAre(-7.0));
  EXPECT_TRUE(file->ReadAsFloat("empty")->empty());

  auto info = file->Info("f16");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->dtype, DType::kF16);
  EXPECT_EQ(info->shape, std::vector<int64_t>{2});
  EXPECT_EQ(info->nbytes, 4u);
  EXPECT_EQ(info->file_offset, 8 + header.size() + 40);
  EXPECT_EQ(file->Info("f64")->shape, std::vector<int64_t>{});
  EXPECT_EQ(file->Info("f64")->numel, 1);
  EXPECT_EQ(file->Info("empty")->numel, 0);

  // ReadInto: conversions to f32/f64, raw copies, scalars, and refused conversions.
  float f32_out[2];
  ASSERT_TRUE(file->ReadInto("bf16", TensorView(f32_out, Shape({1, 2}), DType::kF32)).ok());
  EXPECT_EQ(f32_out[1], 3.140625f);
  double f64_out[2];
  ASSERT_TRUE(file->ReadInto("f32", TensorView(f64_out, Shape({2, 1}), DType::kF64)).ok());
  EXPECT_EQ(f64_out[0], 2.5);
  EXPECT_EQ(f64_out[1], -1.0);
  double scalar = 0;
  ASSERT_TRUE(file->ReadInto("f64", TensorView(&scalar, Shape(), DType::kF64)).ok());
  EXPECT_EQ(scalar, 0.5);
  uint16_t raw16[2];
  ASSERT_TRUE(file->ReadInto("f16", TensorView(raw16, Shape({2}), DType::kF16)).ok());
  EXPECT_EQ(raw16[0], 0x3C00);
  EXPECT_EQ(raw16[1], 0xC000);
  int32_t ints[3];
  ASSERT_TRUE(file->ReadInto("i32", TensorView(ints, Shape({3}), DType::kI32)).ok());
  EXPECT_EQ(ints[1], -2);
  absl::Status s = file->ReadInto("f16", TensorView(raw16, Shape({2}), DType::kBF16));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
  s = file->ReadInto("f16", TensorView(f32_out, Shape({2}), DType::kF32, Device::kCuda));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = file->ReadInto("f16", TensorView(f32_out, Shape({1, 2}), DType::kF32));  // same numel
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("(2)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(1, 2)"));
  EXPECT_TRUE(file->ReadInto("empty", TensorView(nullptr, Shape({2, 0}), DType::kF32)).ok());

  // Moving keeps the mapping valid.
  SafetensorsFile moved = std::move(*file);
  EXPECT_THAT(*moved.ReadAsDouble("bf16"), ElementsAre(1.0, 3.140625));
}

// ---------------------------------------------------------------------------------------------------
// Round trips through the writer.

std::vector<float> SpecialFloats() {
  std::vector<float> v = testing::RandomVector<float>(1000, 11, 3.0);
  const float extra[] = {0.0f,
                         -0.0f,
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::denorm_min(),
                         std::numeric_limits<float>::min(),
                         std::numeric_limits<float>::max(),
                         65504.0f,
                         65520.0f,
                         1e-7f,
                         6e-8f,
                         1.00390625f,  // bf16 tie: rounds to even
                         1.01171875f,  // bf16 tie: rounds up to even
                         3.3895314e38f};
  v.insert(v.end(), std::begin(extra), std::end(extra));
  return v;
}

TEST_F(SafetensorsTest, RoundTripIsBitwiseForF32AndF64AndRneFor16Bit) {
  std::vector<float> f = SpecialFloats();
  const int64_t n = static_cast<int64_t>(f.size());
  std::vector<double> d = testing::RandomVector<double>(n, 12, 1e3);
  d[0] = -0.0;
  d[1] = std::numeric_limits<double>::denorm_min();
  d[2] = 1.0 + std::ldexp(1.0, -40);  // not representable in f32
  std::vector<int32_t> ints = testing::RandomInts(7, -1000, 1000, 13);
  std::vector<uint16_t> bf_raw = {0x3F80, 0x7FC0, 0x8000};

  const std::string path = Path("rt.safetensors");
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "42"}};
  std::vector<NamedTensor> tensors = {
      {"z.f32", TensorView(f.data(), Shape({n}), DType::kF32), DType::kF32},
      {"a.f64", TensorView(d.data(), Shape({n / 5, 5}), DType::kF64), DType::kF64},
      {"f32_as_bf16", TensorView(f.data(), Shape({n}), DType::kF32), DType::kBF16},
      {"f32_as_f16", TensorView(f.data(), Shape({n}), DType::kF32), DType::kF16},
      {"f64_as_bf16", TensorView(d.data(), Shape({n}), DType::kF64), DType::kBF16},
      {"f64_as_f32", TensorView(d.data(), Shape({n}), DType::kF64), DType::kF32},
      {"f32_as_f64", TensorView(f.data(), Shape({n}), DType::kF32), DType::kF64},
      {"ints", TensorView(ints.data(), Shape({7}), DType::kI32), DType::kI32},
      {"raw_bf16", TensorView(bf_raw.data(), Shape({3}), DType::kBF16), DType::kBF16},
      {"empty", TensorView(nullptr, Shape({0, 3}), DType::kF32), DType::kF16},
      {"scalar", TensorView(d.data(), Shape(), DType::kF64), DType::kF64},
  };
  ASSERT_TRUE(WriteSafetensors(path, tensors, meta).ok());
  EXPECT_THAT(ListDir(), ElementsAre("rt.safetensors"));  // no temp file left

  // Header: multiple of 8, space-padded, given order with __metadata__ first, contiguous offsets.
  const std::string bytes = ReadFileBytes(path);
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  const std::string header = bytes.substr(8, header_len);
  EXPECT_EQ(header.substr(0, 15), R"({"__metadata__")");
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
  const auto j = nlohmann::ordered_json::parse(header);
  std::vector<std::string> order;
  uint64_t expect_begin = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    order.push_back(it.key());
    if (it.key() == "__metadata__") continue;
    EXPECT_EQ(it.value()["data_offsets"][0].get<uint64_t>(), expect_begin) << it.key();
    expect_begin = it.value()["data_offsets"][1].get<uint64_t>();
  }
  EXPECT_EQ(8 + header_len + expect_begin, bytes.size());
  std::vector<std::string> want_order = {"__metadata__"};
  for (const auto& t : tensors) want_order.push_back(t.name);
  EXPECT_EQ(order, want_order);

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata(), meta);
  EXPECT_EQ(file->Info("a.f64")->shape, (std::vector<int64_t>{n / 5, 5}));
  EXPECT_EQ(file->Info("f32_as_bf16")->dtype, DType::kBF16);
  EXPECT_EQ(file->Info("f32_as_f16")->dtype, DType::kF16);
  EXPECT_EQ(file->Info("empty")->shape, (std::vector<int64_t>{0, 3}));

  auto f32 = *file->ReadAsFloat("z.f32");
  auto f64 = *file->ReadAsDouble("a.f64");
  auto bf16 = *file->ReadAsFloat("f32_as_bf16");
  auto f16 = *file->ReadAsFloat("f32_as_f16");
  auto d_bf16 = *file->ReadAsFloat("f64_as_bf16");
  auto d_f32 = *file->ReadAsFloat("f64_as_f32");
  auto f_f64 = *file->ReadAsDouble("f32_as_f64");
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(FloatBits(f32[i]), FloatBits(f[i]));
    ASSERT_EQ(DoubleBits(f64[i]), DoubleBits(d[i]));
    ASSERT_EQ(FloatBits(bf16[i]), FloatBits(Bf16ToFloat(FloatToBf16(f[i]))));
    ASSERT_EQ(FloatBits(f16[i]), FloatBits(F16ToFloat(FloatToF16(f[i]))));
    ASSERT_EQ(FloatBits(d_bf16[i]), FloatBits(Bf16ToFloat(FloatToBf16(static_cast<float>(d[i])))));
    ASSERT_EQ(FloatBits(d_f32[i]), FloatBits(static_cast<float>(d[i])));
    if (std::isnan(f[i])) {
      ASSERT_TRUE(std::isnan(f_f64[i]));
    } else {
      ASSERT_EQ(DoubleBits(f_f64[i]), DoubleBits(static_cast<double>(f[i])));
    }
  }
  // Spot checks of the 16-bit rounding that do not go through core/dtype.h.
  EXPECT_EQ(bf16[n - 3], 1.0f);         // 1 + 2^-8 ties to even (1.0)
  EXPECT_EQ(bf16[n - 2], 1.015625f);    // 1 + 3*2^-8 ties to even (1 + 2^-6)
  EXPECT_EQ(f16[n - 7], 65504.0f);      // max f16
  EXPECT_TRUE(std::isinf(f16[n - 6]));  // 65520 rounds to inf
  EXPECT_EQ(DoubleBits(*file->ReadAsDouble("scalar")->data()), DoubleBits(d[0]));

  int32_t ints_back[7];
  ASSERT_TRUE(file->ReadInto("ints", TensorView(ints_back, Shape({7}), DType::kI32)).ok());
  EXPECT_EQ(std::vector<int32_t>(ints_back, ints_back + 7), ints);
  uint16_t raw_back[3];
  ASSERT_TRUE(file->ReadInto("raw_bf16", TensorView(raw_back, Shape({3}), DType::kBF16)).ok());
  EXPECT_EQ(std::vector<uint16_t>(raw_back, raw_back + 3), bf_raw);
}

TEST_F(SafetensorsTest, NoMetadataOmitsTheKeyAndEmptyFileListIsValid) {
  const std::string path = Path("empty.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {}, {}).ok());
  const std::string bytes = ReadFileBytes(path);
  EXPECT_EQ(bytes, Assemble("{}      ", ""));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Names().empty());
  EXPECT_TRUE(file->metadata().empty());
}

// ---------------------------------------------------------------------------------------------------
// Corruption: every case fails with a message naming the file.

struct CorruptCase {
  std::string label;
  std::string bytes;
  std::string want;  // a substring of the message
};

TEST_F(SafetensorsTest, CorruptFilesFailWithTheFileName) {
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  auto with_entry = [&](const std::string& entry, const std::string& data) {
    return Assemble("{" + entry + "}", data);
  };
  std::vector<CorruptCase> cases = {
      {"empty", "", "shorter than the 8-byte header length"},
      {"short", "abcde", "shorter than the 8-byte header length"},
      {"header_len_past_end", Bytes<uint64_t>(100) + "{}", "exceeds the file size"},
      {"header_len_huge", Bytes<uint64_t>(~0ull) + "{}", "exceeds the file size"},
      {"invalid_json", Assemble("{\"a\":", ""), "invalid JSON"},
      {"not_object", Assemble("[1,2]", ""), "not an object"},
      {"entry_not_object", with_entry(R"("a":3)", ""), "entry is not a JSON object"},
      {"missing_dtype", with_entry(R"("a":{"shape":[2],"data_offsets":[0,8]})", eight),
       "missing field 'dtype'"},
      {"missing_shape", with_entry(R"("a":{"dtype":"F32","data_offsets":[0,8]})", eight),
       "missing field 'shape'"},
      {"missing_offsets", with_entry(R"("a":{"dtype":"F32","shape":[2]})", eight),
       "missing field 'data_offsets'"},
      {"dtype_not_string", with_entry(R"("a":{"dtype":4,"shape":[2],"data_offsets":[0,8]})", eight),
       "dtype is not a string"},
      {"unknown_dtype", with_entry(R"("a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]})", eight),
       "unsupported safetensors dtype 'Q7'"},
      {"unsupported_spec_dtype",
       with_entry(R"("a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]})", eight),
       "unsupported safetensors dtype 'U8'"},
      {"negative_dim",
       with_entry(R"("a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", eight),
       "non-negative integers"},
      {"float_dim", with_entry(R"("a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", eight),
       "non-negative integers"},
      {"shape_not_array",
       with_entry(R"("a":{"dtype":"F32","shape":2,"data_offsets":[0,8]})", eight),
       "shape is not an array"},
      {"shape_overflow",
       with_entry(R"("a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})",
                  eight),
       "overflows"},
      {"offsets_three",
       with_entry(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]})", eight),
       "is not [begin, end]"},
      {"offsets_negative",
       with_entry(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", eight),
       "is not [begin, end]"},
      {"offsets_reversed",
       with_entry(R"("a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]})", eight), "begin > end"},
      {"size_mismatch",
       with_entry(R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]})", eight + "1234"),
       "needs 12"},
      {"past_end", with_entry(ok_entry, "1234"), "run past the data buffer"},
      {"overlap",
       with_entry(ok_entry + R"(,"b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]})",
                  eight + "12"),
       "overlap"},
      {"metadata_not_object", with_entry(R"("__metadata__":[1])", ""),
       "__metadata__ is not a JSON object"},
      {"metadata_not_string", with_entry(R"("__metadata__":{"step":3})", ""),
       "__metadata__ value for 'step'"},
  };
  for (const CorruptCase& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string path = Path(c.label + ".safetensors");
    WriteFileBytes(path, c.bytes);
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss) << file.status();
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(c.want));
  }
}

TEST_F(SafetensorsTest, TruncatedWrittenFileFails) {
  std::vector<float> v = testing::RandomVector<float>(64, 3);
  const std::string path = Path("t.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(path, {{"w", TensorView(v.data(), Shape({8, 8}), DType::kF32), DType::kF32}})
          .ok());
  const std::string bytes = ReadFileBytes(path);
  ASSERT_TRUE(::truncate(path.c_str(), static_cast<off_t>(bytes.size() - 1)) == 0);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("'w'"));
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
}

TEST_F(SafetensorsTest, MissingOrUnreadableFilesFailWithTheFileName) {
  const std::string missing = Path("missing.safetensors");
  auto file = SafetensorsFile::Open(missing);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(missing));

  auto dir = SafetensorsFile::Open(dir_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(dir.status().message()), HasSubstr(dir_));
}

// ---------------------------------------------------------------------------------------------------
// The writer is atomic: a failed write leaves an existing file untouched and no temp file.

TEST_F(SafetensorsTest, FailedWriteLeavesExistingFileIntact) {
  const std::string path = Path("model.safetensors");
  std::vector<float> v = {1, 2, 3, 4};
  std::vector<double> d = {5, 6};
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"v", TensorView(v.data(), Shape({4}), DType::kF32), DType::kF32}},
                               {{"version", "1"}})
                  .ok());
  const std::string before = ReadFileBytes(path);

  const TensorView fv(v.data(), Shape({4}), DType::kF32);
  struct Bad {
    std::string label;
    std::vector<NamedTensor> tensors;
    std::map<std::string, std::string> meta;
  };
  std::vector<Bad> bad = {
      {"unsupported out dtype", {{"v", fv, DType::kF32}, {"w", fv, DType::kI32}}, {}},
      {"f64 data as i64", {{"d", TensorView(d.data(), Shape({2}), DType::kF64), DType::kI64}}, {}},
      {"duplicate name", {{"v", fv, DType::kF32}, {"v", fv, DType::kF16}}, {}},
      {"reserved name", {{"__metadata__", fv, DType::kF32}}, {}},
      {"empty name", {{"", fv, DType::kF32}}, {}},
      {"cuda view",
       {{"v", TensorView(v.data(), Shape({4}), DType::kF32, Device::kCuda), DType::kF32}},
       {}},
      {"invalid utf-8", {{"v\xff", fv, DType::kF32}}, {}},
      {"invalid utf-8 metadata", {{"v", fv, DType::kF32}}, {{"k", "\xc3"}}},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.label);
    absl::Status s = WriteSafetensors(path, b.tensors, b.meta);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(path));
    EXPECT_EQ(ReadFileBytes(path), before);
    EXPECT_THAT(ListDir(), ElementsAre("model.safetensors"));
  }

  // An I/O failure: the parent of the target is a regular file.
  const std::string under_file = path + "/x.safetensors";
  absl::Status s = WriteSafetensors(under_file, {{"v", fv, DType::kF32}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(under_file));
  EXPECT_EQ(ReadFileBytes(path), before);

  // Renaming onto a directory fails after the temp file was written: the temp file is removed.
  const std::string target_dir = Path("is_a_dir");
  ASSERT_EQ(::mkdir(target_dir.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((target_dir + "/keep").c_str(), 0755), 0);  // non-empty: rename must fail
  s = WriteSafetensors(target_dir, {{"v", fv, DType::kF32}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(target_dir));
  EXPECT_THAT(ListDir(), ElementsAre("is_a_dir", "model.safetensors"));

  // A successful overwrite replaces the file.
  ASSERT_TRUE(WriteSafetensors(path, {{"v", fv, DType::kF16}}, {{"version", "2"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->metadata().at("version"), "2");
  EXPECT_THAT(*file->ReadAsFloat("v"), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(ListDir(), ElementsAre("is_a_dir", "model.safetensors"));
}

TEST_F(SafetensorsTest, RelativePathWorks) {
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  std::vector<float> v = {1, 2};
  absl::Status s = WriteSafetensors(
      "rel.safetensors", {{"v", TensorView(v.data(), Shape({2}), DType::kF32), DType::kF32}});
  auto file = SafetensorsFile::Open("rel.safetensors");
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(*file->ReadAsFloat("v"), ElementsAre(1, 2));
}

}  // namespace
}  // namespace moetrain::checkpoint

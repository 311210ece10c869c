// `data prepare` -> TokenShards::Open round trip, the split rule, atomic replacement, and errors.
#include "data/token_shards.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "data/sampler.h"
#include "data/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/data/data_test_util.h"

namespace moetrain::data {
namespace {

namespace fs = std::filesystem;
using ::moetrain::data::testing::AsFortunes;
using ::moetrain::data::testing::GeneratedDocuments;
using ::moetrain::data::testing::IsOk;
using ::moetrain::data::testing::ListDir;
using ::moetrain::data::testing::ReadFile;
using ::moetrain::data::testing::ScratchDir;
using ::moetrain::data::testing::StatusIs;
using ::moetrain::data::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// One tokenizer for the whole suite (vocab 300, trained on generated documents).
class TokenShardsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    WriteFile(*dir_ / "tok_corpus", AsFortunes(GeneratedDocuments(300, 11)));
    TokenizerTrainOptions o;
    o.inputs = {*dir_ / "tok_corpus"};
    o.vocab_size = 300;
    o.out_model = *dir_ / "tok.model";
    o.num_threads = 1;
    ASSERT_THAT(TrainTokenizer(o), IsOk());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Model() { return *dir_ / "tok.model"; }

  PrepareOptions Options(const std::string& input, const std::string& out) const {
    PrepareOptions o;
    o.inputs = {input};
    o.tokenizer_model = Model();
    o.out_dir = out;
    o.val_fraction = 0.2;
    o.split_seed = 5;
    o.num_threads = 2;
    return o;
  }

  ScratchDir work_;
  static ScratchDir* dir_;
};
ScratchDir* TokenShardsTest::dir_ = nullptr;

// Splits a token stream at eos into per-document id lists (each without its eos).
std::vector<std::vector<int32_t>> SplitAtEos(const int32_t* ids, int64_t n, int32_t eos) {
  std::vector<std::vector<int32_t>> docs;
  std::vector<int32_t> cur;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] == eos) {
      docs.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(ids[i]);
    }
  }
  EXPECT_TRUE(cur.empty()) << "stream does not end with eos";
  return docs;
}

TEST_F(TokenShardsTest, PrepareOpenRoundTrip) {
  const std::vector<std::string> docs = GeneratedDocuments(120, 3);
  WriteFile(work_ / "corpus", AsFortunes(docs));
  const std::string out = work_ / "shards";
  auto meta = PrepareTokenShards(Options(work_ / "corpus", out));
  ASSERT_THAT(meta, IsOk());
  EXPECT_THAT(ListDir(work_.path()), ElementsAre("corpus", "shards"));  // no .tmp / .old left
  EXPECT_THAT(ListDir(out), ElementsAre("meta.json", "train.bin", "val.bin"));

  auto tok = Tokenizer::Load(Model());
  ASSERT_THAT(tok, IsOk());
  auto shards = TokenShards::Open(out);
  ASSERT_THAT(shards, IsOk());
  EXPECT_THAT(shards->CheckTokenizer(*tok), IsOk());
  EXPECT_EQ(shards->vocab_size(), 300);
  EXPECT_EQ(shards->eos_id(), tok->eos_id());
  EXPECT_EQ(shards->tokenizer_checksum(), tok->checksum());
  EXPECT_THAT(shards->meta().source, ElementsAre(work_ / "corpus"));

  // Token count: every document's encoding plus one eos each.
  int64_t expected_tokens = 0;
  for (const std::string& d : docs)
    expected_tokens += static_cast<int64_t>(tok->Encode(d).size()) + 1;
  EXPECT_EQ(shards->num_tokens(Split::kTrain) + shards->num_tokens(Split::kVal), expected_tokens);
  EXPECT_EQ(shards->num_documents(Split::kTrain) + shards->num_documents(Split::kVal), 120);
  EXPECT_GT(shards->num_documents(Split::kVal), 0);
  EXPECT_GT(shards->num_documents(Split::kTrain), shards->num_documents(Split::kVal));

  // Disjoint and complete: each split holds exactly its documents, in corpus order, per SplitRule.
  auto rule = SplitRule::Create(120, 0.2, 5);
  ASSERT_THAT(rule, IsOk());
  std::vector<std::string> want[2];
  for (int64_t d = 0; d < 120; ++d) want[static_cast<int>(rule->Of(d))].push_back(docs[d]);
  for (Split s : kSplits) {
    std::vector<std::string> got;
    for (const auto& ids : SplitAtEos(shards->tokens(s), shards->num_tokens(s), shards->eos_id())) {
      got.push_back(tok->Decode(ids));
    }
    EXPECT_EQ(got, want[static_cast<int>(s)]) << SplitName(s);
    EXPECT_EQ(static_cast<int64_t>(got.size()), shards->num_documents(s));
  }

  // meta.json carries the format fields of docs/data_format.md.
  const nlohmann::json j = nlohmann::json::parse(ReadFile(out + "/meta.json"));
  EXPECT_EQ(j["format"], "moetrain.token_shards");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["dtype"], "int32");
  EXPECT_EQ(j["created_by"], "moetrain");
  EXPECT_EQ(j["splits"]["train"]["file"], "train.bin");
  EXPECT_EQ(j["splits"]["val"]["num_tokens"], shards->num_tokens(Split::kVal));
  EXPECT_EQ(fs::file_size(out + "/train.bin"), 4u * shards->num_tokens(Split::kTrain));
}

TEST_F(TokenShardsTest, PrepareReplacesExistingShardsAtomically) {
  WriteFile(work_ / "a.jsonl", "{\"text\": \"the cat sat\"}\n{\"text\": \"on the mat\"}\n");
  WriteFile(work_ / "b.jsonl",
            "{\"text\": \"a fox\"}\n{\"text\": \"a dog\"}\n{\"text\": \"rain\"}\n");
  const std::string out = work_ / "shards/";  // a trailing slash is fine
  ASSERT_THAT(PrepareTokenShards(Options(work_ / "a.jsonl", out)), IsOk());
  ASSERT_THAT(PrepareTokenShards(Options(work_ / "b.jsonl", out)), IsOk());
  auto shards = TokenShards::Open(out);
  ASSERT_THAT(shards, IsOk());
  EXPECT_EQ(shards->num_documents(Split::kTrain) + shards->num_documents(Split::kVal), 3);
  EXPECT_THAT(ListDir(work_.path()), ElementsAre("a.jsonl", "b.jsonl", "shards"));
}

TEST_F(TokenShardsTest, BadInputsLeaveNoOutputAndKeepExistingOutput) {
  const std::string out = work_ / "shards";
  WriteFile(work_ / "good", AsFortunes(GeneratedDocuments(20, 1)));
  ASSERT_THAT(PrepareTokenShards(Options(work_ / "good", out)), IsOk());
  const std::string meta_before = ReadFile(out + "/meta.json");
  const std::string train_before = ReadFile(out + "/train.bin");

  WriteFile(work_ / "bad_utf8.txt", "ok\n%\nbad \xc0\xaf here\n");
  WriteFile(work_ / "bad.jsonl", "{\"text\": \"x\"}\n{\"text\": oops}\n");
  WriteFile(work_ / "bad.csv", "id,body\n1,x\n");
  WriteFile(work_ / "empty.txt", "%\n\n%\n");
  WriteFile(work_ / "one.txt", "just one document\n");
  struct Case {
    std::string input;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {work_ / "missing.txt", absl::StatusCode::kNotFound, work_ / "missing.txt"},
      {work_ / "bad_utf8.txt", absl::StatusCode::kInvalidArgument,
       work_ / "bad_utf8.txt:3: invalid UTF-8 byte 0xc0 at byte offset 9"},
      {work_ / "bad.jsonl", absl::StatusCode::kInvalidArgument,
       work_ / "bad.jsonl:2: malformed JSON"},
      {work_ / "bad.csv", absl::StatusCode::kInvalidArgument,
       work_ / "bad.csv:1: no column \"text\""},
      {work_ / "empty.txt", absl::StatusCode::kFailedPrecondition, "empty corpus"},
      {work_ / "one.txt", absl::StatusCode::kFailedPrecondition, "at least 2"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    EXPECT_THAT(PrepareTokenShards(Options(c.input, out)), StatusIs(c.code, HasSubstr(c.message)));
    EXPECT_THAT(PrepareTokenShards(Options(c.input, work_ / "fresh")),
                StatusIs(c.code, HasSubstr(c.message)));
    EXPECT_FALSE(fs::exists(work_ / "fresh"));
  }
  PrepareOptions bad_tok = Options(work_ / "good", out);
  bad_tok.tokenizer_model = work_ / "nope.model";
  EXPECT_THAT(PrepareTokenShards(bad_tok),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(work_ / "nope.model")));
  PrepareOptions bad_fraction = Options(work_ / "good", out);
  bad_fraction.val_fraction = 1.0;
  EXPECT_THAT(PrepareTokenShards(bad_fraction),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("val_fraction")));

  EXPECT_EQ(ReadFile(out + "/meta.json"), meta_before);
  EXPECT_EQ(ReadFile(out + "/train.bin"), train_before);
  EXPECT_THAT(ListDir(work_.path()), ElementsAre("bad.csv", "bad.jsonl", "bad_utf8.txt",
                                                 "empty.txt", "good", "one.txt", "shards"));
}

TEST_F(TokenShardsTest, RefusesToReplaceADirectoryThatIsNotShards) {
  WriteFile(work_ / "corpus", AsFortunes(GeneratedDocuments(10, 2)));
  WriteFile(work_ / "precious/notes.txt", "keep me");
  EXPECT_THAT(PrepareTokenShards(Options(work_ / "corpus", work_ / "precious")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("refusing to replace"), HasSubstr(work_ / "precious"))));
  EXPECT_EQ(ReadFile(work_ / "precious/notes.txt"), "keep me");
  WriteFile(work_ / "afile", "x");
  EXPECT_THAT(PrepareTokenShards(Options(work_ / "corpus", work_ / "afile")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a directory")));
  EXPECT_THAT(PrepareTokenShards(Options(work_ / "corpus", work_ / "no/such/parent/out")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
  EXPECT_THAT(ListDir(work_.path()), ElementsAre("afile", "corpus", "precious"));
}

TEST_F(TokenShardsTest, OpenValidatesFormatSizesAndIds) {
  WriteFile(work_ / "corpus", AsFortunes(GeneratedDocuments(30, 4)));
  const std::string out = work_ / "shards";
  ASSERT_THAT(PrepareTokenShards(Options(work_ / "corpus", out)), IsOk());
  const std::string meta = ReadFile(out + "/meta.json");
  const std::string train = ReadFile(out + "/train.bin");

  EXPECT_THAT(TokenShards::Open(work_ / "nothing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(work_ / "nothing")));

  // A truncated token file.
  WriteFile(out + "/train.bin", train.substr(0, train.size() - 2));
  EXPECT_THAT(TokenShards::Open(out),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(out + "/train.bin"), HasSubstr("expected"))));
  // An out-of-range id: the message names the file and the first bad index.
  std::string corrupt = train;
  const int32_t bad = 300;
  std::memcpy(&corrupt[4 * 7], &bad, 4);
  WriteFile(out + "/train.bin", corrupt);
  EXPECT_THAT(
      TokenShards::Open(out),
      StatusIs(absl::StatusCode::kDataLoss,
               HasSubstr(out + "/train.bin: token 7 has id 300, outside [0, vocab_size 300)")));
  WriteFile(out + "/train.bin", train);
  ASSERT_THAT(TokenShards::Open(out), IsOk());

  nlohmann::json j = nlohmann::json::parse(meta);
  j["version"] = 2;
  WriteFile(out + "/meta.json", j.dump());
  EXPECT_THAT(TokenShards::Open(out),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version 2")));
  j = nlohmann::json::parse(meta);
  j["format"] = "something.else";
  WriteFile(out + "/meta.json", j.dump());
  EXPECT_THAT(TokenShards::Open(out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("something.else")));
  j = nlohmann::json::parse(meta);
  j["splits"]["val"].erase("num_tokens");
  WriteFile(out + "/meta.json", j.dump());
  EXPECT_THAT(TokenShards::Open(out),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(out + "/meta.json"), HasSubstr("splits.val.num_tokens"))));
  j = nlohmann::json::parse(meta);
  j["splits"]["val"]["file"] = "../escape.bin";
  WriteFile(out + "/meta.json", j.dump());
  EXPECT_THAT(TokenShards::Open(out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a plain file name")));
  WriteFile(out + "/meta.json", "{not json");
  EXPECT_THAT(TokenShards::Open(out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("malformed JSON")));
}

TEST_F(TokenShardsTest, SamplerOnShardsTooSmallForOneSequence) {
  WriteFile(work_ / "corpus", AsFortunes(GeneratedDocuments(6, 8)));
  const std::string out = work_ / "shards";
  ASSERT_THAT(PrepareTokenShards(Options(work_ / "corpus", out)), IsOk());
  auto shards = TokenShards::Open(out);
  ASSERT_THAT(shards, IsOk());
  SamplerOptions so;
  so.seq_len = 1024;
  const int64_t n = shards->num_tokens(Split::kTrain);
  EXPECT_THAT(
      Sampler::Create(shards->tokens(Split::kTrain), n, so, shards->file_path(Split::kTrain)),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr(absl::StrCat(out,
                                      "/train.bin: corpus too small for one sequence of "
                                      "1024 tokens: has ",
                                      n))));
  so.seq_len = 4;
  auto sampler =
      Sampler::Create(shards->tokens(Split::kTrain), n, so, shards->file_path(Split::kTrain));
  ASSERT_THAT(sampler, IsOk());
  std::vector<int32_t> tokens(4), targets(4);
  sampler->Fill(0, 0, 0, tokens.data(), targets.data());
  for (int j = 0; j < 3; ++j) EXPECT_EQ(targets[j], tokens[j + 1]);
}

TEST(SplitRuleTest, DeterministicFractionAndNonEmptySplits) {
  auto a = SplitRule::Create(10000, 0.05, 1);
  auto b = SplitRule::Create(10000, 0.05, 1);
  auto c = SplitRule::Create(10000, 0.05, 2);
  ASSERT_THAT(a, IsOk());
  int64_t val = 0, differ = 0;
  for (int64_t d = 0; d < 10000; ++d) {
    EXPECT_EQ(a->Of(d), b->Of(d));
    val += a->Of(d) == Split::kVal;
    differ += a->Of(d) != c->Of(d);
  }
  EXPECT_GT(val, 400);
  EXPECT_LT(val, 600);
  EXPECT_GT(differ, 0);
  // Two documents and a tiny or a huge fraction: still one in each split.
  for (double f : {1e-9, 1 - 1e-9}) {
    auto r = SplitRule::Create(2, f, 3);
    ASSERT_THAT(r, IsOk());
    EXPECT_NE(r->Of(0), r->Of(1)) << f;
  }
  EXPECT_THAT(SplitRule::Create(1, 0.5, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("at least 2")));
  EXPECT_THAT(SplitRule::Create(10, 0.0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("val_fraction")));
}

// Manual end-to-end run on the Debian fortunes corpus (a few seconds):
//   data_token_shards_test --gtest_also_run_disabled_tests --gtest_filter=*Fortunes*
TEST(FortunesEndToEnd, DISABLED_TrainTokenizerAndPrepare) {
  const std::string fortunes = "/usr/share/games/fortunes";
  if (!fs::is_directory(fortunes)) GTEST_SKIP() << fortunes << " not installed";
  ScratchDir dir;
  TokenizerTrainOptions t;
  t.inputs = {fortunes};
  t.vocab_size = 2000;
  t.out_model = dir / "fortunes.model";
  t.progress_interval_s = 0.5;
  ASSERT_THAT(TrainTokenizer(t), IsOk());
  PrepareOptions p;
  p.inputs = {fortunes};
  p.tokenizer_model = t.out_model;
  p.out_dir = dir / "shards";
  p.progress_interval_s = 0.5;
  auto meta = PrepareTokenShards(p);
  ASSERT_THAT(meta, IsOk());
  auto shards = TokenShards::Open(p.out_dir);
  ASSERT_THAT(shards, IsOk());
  std::cout << ReadFile(p.out_dir + "/meta.json");
}

}  // namespace
}  // namespace moetrain::data

// SFT data (data/sft_dataset.h): rows built from a real SentencePiece tokenizer against a direct
// construction of [eos] prompt response [eos] with the prompt targets masked; truncation and drop
// counts; errors naming file:line and the field; the deterministic order (a pure function of
// (seed, step, micro, rank), every example once per epoch, ranks disjoint); the held-out split.
#include "data/sft_dataset.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data_test_util.h"

namespace moetrain::data {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::ScratchDir;
using testing::StatusIs;
using testing::WriteFile;

const Tokenizer& SharedTokenizer() {
  static ScratchDir* dir = new ScratchDir();
  static Tokenizer* tok = [] {
    WriteFile(*dir / "corpus", testing::AsFortunes(testing::GeneratedDocuments(300, 1)));
    TokenizerTrainOptions o;
    o.inputs = {*dir / "corpus"};
    o.vocab_size = 300;
    o.out_model = *dir / "tok.model";
    o.num_threads = 1;
    EXPECT_THAT(TrainTokenizer(o), IsOk());
    auto t = Tokenizer::Load(*dir / "tok.model");
    EXPECT_THAT(t, IsOk());
    return new Tokenizer(std::move(*t));
  }();
  return *tok;
}

std::string Line(const std::string& p, const std::string& r) {
  return absl::StrCat("{\"prompt\": \"", p, "\", \"response\": \"", r, "\", \"id\": 7}\n");
}

TEST(SftDataset, RowsMaskThePromptAndPad) {
  const Tokenizer& tok = SharedTokenizer();
  ScratchDir dir;
  WriteFile(dir / "sft.jsonl", Line("the quick fox", "jumps over the lazy dog") + "\n" +
                                   Line("a cat sat", "on the mat"));
  SftOptions o;
  o.seq_len = 64;
  auto d = SftDataset::Load(dir / "sft.jsonl", tok, o);
  ASSERT_THAT(d, IsOk());
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(d->stats().blank_lines, 1);
  EXPECT_EQ(d->example(1).line, 3);
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"the quick fox", "jumps over the lazy dog"}, {"a cat sat", "on the mat"}};
  for (int i = 0; i < 2; ++i) {
    // Reference: the sequence written out, then shifted; prompt targets and padding are -100.
    const std::vector<int32_t> p = tok.Encode(pairs[i].first), r = tok.Encode(pairs[i].second);
    std::vector<int32_t> x = {tok.eos_id()};
    x.insert(x.end(), p.begin(), p.end());
    std::vector<bool> loss(x.size(), false);
    x.insert(x.end(), r.begin(), r.end());
    x.push_back(tok.eos_id());
    loss.resize(x.size(), true);
    std::vector<int32_t> tokens(64), targets(64);
    d->FillRow(i, tokens.data(), targets.data());
    int64_t counted = 0;
    ASSERT_LT(x.size(), 64u);  // no truncation in this test
    for (size_t t = 0; t < 64; ++t) {
      EXPECT_EQ(tokens[t], t < x.size() ? x[t] : tok.eos_id()) << i << ":" << t;
      const int32_t want = t + 1 < x.size() && loss[t + 1] ? x[t + 1] : kSftIgnoreIndex;
      EXPECT_EQ(targets[t], want) << i << ":" << t;
      counted += targets[t] != kSftIgnoreIndex;
    }
    EXPECT_EQ(counted, static_cast<int64_t>(r.size()) + 1);  // the response and its eos
  }
}

TEST(SftDataset, TruncatesLongAndDropsPromptOnlyExamples) {
  SftOptions o;
  o.seq_len = 6;
  std::vector<SftExample> ex = {
      {{10, 11}, {20, 21}, 1},              // 6 tokens: fits (x has 6 <= 7)
      {{10, 11}, {20, 21, 22, 23, 24}, 2},  // 9 tokens: truncated to 7
      {{10, 11, 12, 13, 14, 15}, {20}, 3},  // prompt fills the row: dropped
  };
  auto d = SftDataset::FromExamples(ex, 2, o, "mem");
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->size(), 2);
  EXPECT_EQ(d->stats().truncated, 1);
  EXPECT_EQ(d->stats().dropped, 1);
  std::vector<int32_t> tokens(6), targets(6);
  d->FillRow(1, tokens.data(), targets.data());
  EXPECT_EQ(tokens, (std::vector<int32_t>{2, 10, 11, 20, 21, 22}));
  EXPECT_EQ(targets, (std::vector<int32_t>{-100, -100, 20, 21, 22, 23}));
  d->FillRow(0, tokens.data(), targets.data());
  EXPECT_EQ(tokens, (std::vector<int32_t>{2, 10, 11, 20, 21, 2}));
  EXPECT_EQ(targets, (std::vector<int32_t>{-100, -100, 20, 21, 2, -100}));
  EXPECT_THAT(
      SftDataset::FromExamples({ex[2]}, 2, o, "mem"),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mem: no usable examples")));
}

TEST(SftDataset, ErrorsNameFileLineAndField) {
  const Tokenizer& tok = SharedTokenizer();
  ScratchDir dir;
  SftOptions o;
  o.seq_len = 16;
  const std::string good = Line("a", "b");
  WriteFile(dir / "bad_json.jsonl", good + good + "{\"prompt\": \"x\",\n");
  EXPECT_THAT(SftDataset::Load(dir / "bad_json.jsonl", tok, o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir / "bad_json.jsonl:3: malformed JSON")));
  WriteFile(dir / "missing.jsonl", good + "{\"prompt\": \"x\", \"answer\": \"y\"}\n");
  EXPECT_THAT(
      SftDataset::Load(dir / "missing.jsonl", tok, o),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(dir / "missing.jsonl:2: no field \"response\" (keys: answer, prompt)")));
  WriteFile(dir / "type.jsonl", "{\"prompt\": 3, \"response\": \"y\"}\n");
  EXPECT_THAT(
      SftDataset::Load(dir / "type.jsonl", tok, o),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(dir / "type.jsonl:1: field \"prompt\" is a number, expected a string")));
  WriteFile(dir / "array.jsonl", "[1, 2]\n");
  EXPECT_THAT(SftDataset::Load(dir / "array.jsonl", tok, o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("array.jsonl:1: expected a JSON object")));
  EXPECT_THAT(SftDataset::Load(dir / "nope.jsonl", tok, o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope.jsonl")));
  // Configured field names are the ones read.
  o.prompt_field = "question";
  o.response_field = "answer";
  WriteFile(dir / "qa.jsonl", "{\"question\": \"the fox\", \"answer\": \"the dog\"}\n");
  auto qa = SftDataset::Load(dir / "qa.jsonl", tok, o);
  ASSERT_THAT(qa, IsOk());
  EXPECT_EQ(qa->example(0).response, tok.Encode("the dog"));
}

SftDataset Numbered(int n, int64_t seq_len) {
  std::vector<SftExample> ex;
  for (int i = 0; i < n; ++i) ex.push_back({{100 + i}, {1000 + i}, i + 1});
  SftOptions o;
  o.seq_len = seq_len;
  return *SftDataset::FromExamples(ex, 2, o, "numbered");
}

TEST(SftSampler, DeterministicEveryExampleOncePerEpochRanksDisjoint) {
  const int N = 37;
  const SftDataset d = Numbered(N, 4);
  SamplerOptions so;
  so.seq_len = 4;
  so.micro_batch = 3;
  so.grad_accum = 2;
  so.world = 2;
  so.seed = 9;
  auto s = SftSampler::Create(&d, so);
  ASSERT_THAT(s, IsOk());
  auto again = SftSampler::Create(&d, so);
  so.seed = 10;
  auto other_seed = SftSampler::Create(&d, so);
  std::vector<int32_t> tok(12), tgt(12), tok2(12), tgt2(12);
  // Global samples 0 .. 2N-1 over (step, micro, rank): the example ids read (prompt token - 100).
  std::map<int64_t, int> seen_epoch0, seen_epoch1;
  bool order_differs = false;
  for (int64_t step = 0; step < 7; ++step)
    for (int micro = 0; micro < 2; ++micro)
      for (int rank = 0; rank < 2; ++rank) {
        s->Fill(step, micro, rank, tok.data(), tgt.data());
        again->Fill(step, micro, rank, tok2.data(), tgt2.data());
        EXPECT_EQ(tok, tok2);
        EXPECT_EQ(tgt, tgt2);
        other_seed->Fill(step, micro, rank, tok2.data(), tgt2.data());
        order_differs = order_differs || tok != tok2;
        for (int i = 0; i < 3; ++i) {
          const int64_t g = s->GlobalIndex(step, micro, rank, i);
          const int example = tok[i * 4 + 1] - 100;
          EXPECT_EQ(example, s->ExampleOf(g));
          EXPECT_EQ(tgt[i * 4 + 1],
                    1000 + example);  // the response token is the target after the prompt
          if (g < N)
            ++seen_epoch0[example];
          else if (g < 2 * N)
            ++seen_epoch1[example];
        }
      }
  EXPECT_TRUE(order_differs);
  ASSERT_EQ(seen_epoch0.size(), static_cast<size_t>(N));
  for (const auto& [e, c] : seen_epoch0) EXPECT_EQ(c, 1) << e;
  EXPECT_EQ(seen_epoch1.size(), static_cast<size_t>(N));  // 84 samples cover epoch 1 too
  so.seq_len = 5;
  EXPECT_THAT(SftSampler::Create(&d, so),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("seq_len")));
}

TEST(SftDataset, HeldOutSplitIsDisjointSeededAndComplete) {
  const SftDataset d = Numbered(50, 4);
  auto split = d.SplitHeldOut(0.2, 3);
  ASSERT_THAT(split, IsOk());
  const auto& [train, val] = *split;
  EXPECT_EQ(val.size(), 10);
  EXPECT_EQ(train.size(), 40);
  std::set<int32_t> ids;
  for (const SftDataset* s : {&train, &val})
    for (int64_t i = 0; i < s->size(); ++i) ids.insert(s->example(i).prompt[0]);
  EXPECT_EQ(ids.size(), 50u);  // disjoint and complete
  auto same = d.SplitHeldOut(0.2, 3);
  auto other = d.SplitHeldOut(0.2, 4);
  std::vector<int32_t> a, b, c;
  for (int64_t i = 0; i < val.size(); ++i) {
    a.push_back(val.example(i).prompt[0]);
    b.push_back(same->second.example(i).prompt[0]);
    c.push_back(other->second.example(i).prompt[0]);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_THAT(d.SplitHeldOut(1.0, 3),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(0, 1)")));
  EXPECT_THAT(Numbered(1, 4).SplitHeldOut(0.5, 3),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("too few")));
}

}  // namespace
}  // namespace moetrain::data

// Tokenizer training (SentencePiece BPE) and encode/decode on a small generated corpus.
#include "data/tokenizer.h"

#include <filesystem>
#include <string>
#include <vector>

#include "tests/data/data_test_util.h"

namespace moetrain::data {
namespace {

using ::moetrain::data::testing::IsOk;
using ::moetrain::data::testing::ListDir;
using ::moetrain::data::testing::ReadFile;
using ::moetrain::data::testing::ScratchDir;
using ::moetrain::data::testing::StatusIs;
using ::moetrain::data::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string GeneratedCorpus(int num_docs, uint64_t seed) {
  return testing::AsFortunes(testing::GeneratedDocuments(num_docs, seed));
}

TokenizerTrainOptions SmallOptions(const std::string& corpus, const std::string& model) {
  TokenizerTrainOptions o;
  o.inputs = {corpus};
  o.vocab_size = 300;
  o.out_model = model;
  o.num_threads = 1;
  return o;
}

TEST(TokenizerTest, TrainLoadEncodeDecode) {
  ScratchDir dir;
  WriteFile(dir / "corpus", GeneratedCorpus(300, 1));
  TokenizerTrainOptions o = SmallOptions(dir / "corpus", dir / "tok.model");
  o.vocab_size = 400;  // room for ~110 merges after 256 bytes, 3 specials and ~30 characters
  ASSERT_THAT(TrainTokenizer(o), IsOk());
  // Only the corpus and the two outputs remain: no temporaries.
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("corpus", "tok.model", "tok.vocab"));

  auto tok = Tokenizer::Load(dir / "tok.model");
  ASSERT_THAT(tok, IsOk());
  EXPECT_EQ(tok->vocab_size(), 400);
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), -1);
  EXPECT_EQ(tok->IdToPiece(tok->eos_id()), "</s>");
  EXPECT_EQ(tok->IdToPiece(3), "<0x00>");  // byte fallback pieces follow the specials

  for (const std::string text :
       {"the quick brown fox", "  two leading spaces and a tab\tin between",
        "multi\nline\n\ntext\n", "unseen: CAF\xc3\x89 \xe2\x9c\x93 42 \xf0\x9f\x98\x80", ""}) {
    const std::vector<int32_t> ids = tok->Encode(text);
    for (int32_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 400);
      EXPECT_NE(id, tok->unk_id()) << "byte fallback means no <unk> for \"" << text << "\"";
      EXPECT_NE(id, tok->eos_id());
    }
    EXPECT_EQ(tok->Decode(ids), text);
  }
  // Frequent words become single pieces.
  EXPECT_EQ(tok->Encode("the").size(), 1u);
  EXPECT_LT(tok->Encode("the quick brown fox").size(), 8u);
  // A newline never occurs in training lines: it is the byte piece <0x0A> (after the "▁" prefix).
  const std::vector<int32_t> newline = tok->Encode("\n");
  ASSERT_EQ(newline.size(), 2u);
  EXPECT_EQ(tok->IdToPiece(newline[1]), "<0x0A>");
  EXPECT_EQ(tok->Decode({tok->bos_id(), tok->eos_id()}), "");
  EXPECT_EQ(tok->Decode({tok->unk_id()}), " \xE2\x81\x87 ");  // SentencePiece's unk surface " ⁇ "

  // The checksum identifies the model bytes.
  EXPECT_EQ(tok->checksum().rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(tok->checksum().size(), 8u + 16u);
  EXPECT_EQ(tok->model_path(), dir / "tok.model");
}

TEST(TokenizerTest, TrainingIsDeterministicAndReplacesAtomically) {
  ScratchDir dir;
  WriteFile(dir / "corpus.txt", GeneratedCorpus(200, 7));
  TokenizerTrainOptions o = SmallOptions(dir / "corpus.txt", dir / "m.model");
  o.corpus.txt_separator = "%";
  ASSERT_THAT(TrainTokenizer(o), IsOk());
  const std::string first = ReadFile(dir / "m.model");
  ASSERT_THAT(TrainTokenizer(o), IsOk());
  EXPECT_EQ(ReadFile(dir / "m.model"), first);
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("corpus.txt", "m.model", "m.vocab"));
}

TEST(TokenizerTest, ErrorsLeaveNothingBehindAndKeepExistingModel) {
  ScratchDir dir;
  WriteFile(dir / "out.model", "previous model bytes");
  WriteFile(dir / "out.vocab", "previous vocab");
  WriteFile(dir / "empty.txt", "%\n%\n");
  WriteFile(dir / "bad.txt", "fine\n%\nbad \xfe byte\n");
  WriteFile(dir / "tiny.txt", "ab ab\n%\nba\n");

  EXPECT_THAT(TrainTokenizer(SmallOptions(dir / "missing.txt", dir / "out.model")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir / "missing.txt")));
  EXPECT_THAT(TrainTokenizer(SmallOptions(dir / "empty.txt", dir / "out.model")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("empty corpus")));
  EXPECT_THAT(TrainTokenizer(SmallOptions(dir / "bad.txt", dir / "out.model")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(dir / "bad.txt:3:")));
  TokenizerTrainOptions big = SmallOptions(dir / "tiny.txt", dir / "out.model");
  big.vocab_size = 5000;
  EXPECT_THAT(TrainTokenizer(big),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir / "out.model"), HasSubstr(dir / "tiny.txt"),
                             HasSubstr("vocab_size 5000"), HasSubstr("too high"))));
  EXPECT_THAT(TrainTokenizer(SmallOptions(dir / "tiny.txt", dir / "out.bin")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(".model")));
  EXPECT_THAT(TrainTokenizer(SmallOptions(dir / "tiny.txt", dir / "no/such/dir/x.model")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));

  EXPECT_EQ(ReadFile(dir / "out.model"), "previous model bytes");
  EXPECT_EQ(ReadFile(dir / "out.vocab"), "previous vocab");
  EXPECT_THAT(ListDir(dir.path()),
              ElementsAre("bad.txt", "empty.txt", "out.model", "out.vocab", "tiny.txt"));
}

TEST(TokenizerTest, LoadErrorsNameTheFile) {
  ScratchDir dir;
  EXPECT_THAT(Tokenizer::Load(dir / "none.model"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir / "none.model")));
  WriteFile(dir / "junk.model", "this is not a protobuf \x01\x02\x03");
  EXPECT_THAT(Tokenizer::Load(dir / "junk.model"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir / "junk.model")));
}

}  // namespace
}  // namespace moetrain::data

// Corpus readers: each format, directory expansion, and every validation error naming file:line.
#include "data/corpus.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "data/utf8.h"
#include "tests/data/data_test_util.h"

namespace moetrain::data {
namespace {

using ::moetrain::data::testing::IsOk;
using ::moetrain::data::testing::ScratchDir;
using ::moetrain::data::testing::StatusIs;
using ::moetrain::data::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<std::vector<std::string>> ReadAll(const std::vector<std::string>& inputs,
                                                 const CorpusOptions& options = {}) {
  std::vector<std::string> docs;
  RETURN_IF_ERROR(ForEachDocument(inputs, options, [&](std::string_view d) {
    docs.emplace_back(d);
    return absl::OkStatus();
  }));
  return docs;
}

TEST(CorpusTest, TextWithSeparatorLikeFortunes) {
  ScratchDir dir;
  WriteFile(dir / "f", "first line\nsecond line\n%\nanother\n%\n  \n%\nlast\tone\n");
  auto docs = ReadAll({dir / "f"});
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("first line\nsecond line", "another", "last\tone"));
}

TEST(CorpusTest, TextCustomSeparatorCrlfAndBom) {
  ScratchDir dir;
  WriteFile(dir / "a.txt", "\xEF\xBB\xBFone\r\ntwo\r\n===\r\nthree\r\n");
  CorpusOptions opt;
  opt.txt_separator = "===";
  auto docs = ReadAll({dir / "a.txt"}, opt);
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("one\ntwo", "three"));
}

TEST(CorpusTest, TextParagraphMode) {
  ScratchDir dir;
  WriteFile(dir / "p.txt", "\n\npara one\nstill one\n\n \t\npara two\n\n\n% not a separator\n");
  CorpusOptions opt;
  opt.txt_separator = "";
  auto docs = ReadAll({dir / "p.txt"}, opt);
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("para one\nstill one", "para two", "% not a separator"));
}

TEST(CorpusTest, Jsonl) {
  ScratchDir dir;
  WriteFile(dir / "d.jsonl",
            "{\"text\": \"hello\\nworld\", \"id\": 1}\n"
            "\n"
            "{\"id\": 2, \"text\": \"caf\\u00e9 \xe2\x9c\x93\"}\n"
            "{\"text\": \"   \"}\n");
  auto docs = ReadAll({dir / "d.jsonl"});
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("hello\nworld", "caf\xc3\xa9 \xe2\x9c\x93"));

  CorpusOptions opt;
  opt.jsonl_field = "body";
  WriteFile(dir / "e.jsonl", "{\"body\": \"b1\"}\n{\"body\": \"b2\", \"text\": \"t\"}\n");
  docs = ReadAll({dir / "e.jsonl"}, opt);
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("b1", "b2"));
}

TEST(CorpusTest, CsvQuotingRfc4180) {
  ScratchDir dir;
  WriteFile(dir / "c.csv",
            "id,text,label\r\n"
            "1,plain,x\r\n"
            "2,\"with, comma\",y\n"
            "3,\"she said \"\"hi\"\"\",z\n"
            "\n"
            "4,\"two\nlines, and \"\"quotes\"\"\n\",w\n"
            "5,5\" floppy,v\n"
            "6,,empty\n");
  auto docs = ReadAll({dir / "c.csv"});
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("plain", "with, comma", "she said \"hi\"",
                                 "two\nlines, and \"quotes\"\n", "5\" floppy"));
  CorpusOptions opt;
  opt.csv_column = "label";
  docs = ReadAll({dir / "c.csv"}, opt);
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("x", "y", "z", "w", "v", "empty"));
}

TEST(CorpusTest, DirectoryInputSortedSkipsDatHiddenAndDuplicates) {
  ScratchDir dir;
  const std::string root = dir / "corpus";
  WriteFile(root + "/b", "b1\n%\nb2\n");
  WriteFile(root + "/b.dat", "\xff\xfe binary index");
  WriteFile(root + "/a.jsonl", "{\"text\": \"a1\"}\n");
  WriteFile(root + "/.hidden", "hidden\n");
  WriteFile(root + "/.git/config", "hidden dir\n");
  WriteFile(root + "/sub/c.csv", "text\nc1\n");
  std::filesystem::create_symlink("b", root + "/b.u8");  // fortunes-style alias, read once
  auto files = ExpandCorpusInputs({root});
  ASSERT_THAT(files, IsOk());
  EXPECT_THAT(*files, ElementsAre(root + "/a.jsonl", root + "/b", root + "/sub/c.csv"));
  auto docs = ReadAll({root});
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("a1", "b1", "b2", "c1"));

  auto stats = CountDocuments({root}, {});
  ASSERT_THAT(stats, IsOk());
  EXPECT_EQ(stats->num_files, 3);
  EXPECT_EQ(stats->num_documents, 4);
  EXPECT_EQ(stats->num_bytes, 8);
}

TEST(CorpusTest, FormatNamesAndForcedFormat) {
  EXPECT_EQ(*ParseCorpusFormat("jsonl"), CorpusFormat::kJsonl);
  EXPECT_EQ(*ParseCorpusFormat("TXT"), CorpusFormat::kText);
  EXPECT_THAT(ParseCorpusFormat("parquet"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parquet")));
  EXPECT_EQ(ResolveCorpusFormat("x/y.CSV", CorpusFormat::kAuto), CorpusFormat::kCsv);
  EXPECT_EQ(ResolveCorpusFormat("x/fortunes", CorpusFormat::kAuto), CorpusFormat::kText);
  EXPECT_EQ(ResolveCorpusFormat("x/y.csv", CorpusFormat::kJsonl), CorpusFormat::kJsonl);

  ScratchDir dir;
  WriteFile(dir / "data.log", "{\"text\": \"forced\"}\n");
  CorpusOptions opt;
  opt.format = CorpusFormat::kJsonl;
  auto docs = ReadAll({dir / "data.log"}, opt);
  ASSERT_THAT(docs, IsOk());
  EXPECT_THAT(*docs, ElementsAre("forced"));
}

TEST(CorpusErrorsTest, MissingPath) {
  ScratchDir dir;
  EXPECT_THAT(ReadAll({dir / "nope.txt"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir / "nope.txt")));
  EXPECT_THAT(ReadAll({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no corpus")));
}

TEST(CorpusErrorsTest, UnreadableOrSpecialFile) {
  ScratchDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_THAT(ReadAll({dir / "fifo"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(dir / "fifo: not a regular file or directory")));
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files without read permission";
  WriteFile(dir / "secret.txt", "text\n");
  std::filesystem::permissions(dir / "secret.txt", std::filesystem::perms::none);
  EXPECT_THAT(ReadAll({dir / "secret.txt"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(dir / "secret.txt: cannot open for reading")));
}

TEST(CorpusErrorsTest, EmptyCorpus) {
  ScratchDir dir;
  WriteFile(dir / "e.txt", "%\n   \n%\n\n");
  EXPECT_THAT(ReadAll({dir / "e.txt"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("empty corpus"), HasSubstr(dir / "e.txt"))));
  std::filesystem::create_directory(dir / "only_dat");
  WriteFile(dir / "only_dat/x.dat", "idx");
  EXPECT_THAT(ReadAll({dir / "only_dat"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no corpus files")));
}

TEST(CorpusErrorsTest, InvalidUtf8NamesFileLineAndOffset) {
  ScratchDir dir;
  // Line 3 starts at byte 10 ("ok line\n" is 8 bytes, "%\n" 2); the bad byte is its 4th.
  const std::string text = "ok line\n%\nabc\xc3\x28zz\n";
  WriteFile(dir / "bad.txt", text);
  const std::string want = absl::StrCat(
      dir / "bad.txt", ":3: invalid UTF-8 byte 0xc3 at byte offset ", 8 + 2 + 3, " (column 4)");
  EXPECT_THAT(ReadAll({dir / "bad.txt"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(want)));
  WriteFile(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"\xff\"}\n");
  EXPECT_THAT(ReadAll({dir / "bad.jsonl"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir / "bad.jsonl:2: invalid UTF-8 byte 0xff")));
}

TEST(CorpusErrorsTest, MalformedJsonLine) {
  ScratchDir dir;
  WriteFile(dir / "m.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\",}\n");
  EXPECT_THAT(ReadAll({dir / "m.jsonl"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr(dir / "m.jsonl:3: malformed JSON")));
  WriteFile(dir / "arr.jsonl", "[1, 2]\n");
  EXPECT_THAT(ReadAll({dir / "arr.jsonl"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir / "arr.jsonl:1: expected a JSON object")));
}

TEST(CorpusErrorsTest, MissingOrMistypedJsonField) {
  ScratchDir dir;
  WriteFile(dir / "f.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\", \"id\": 3}\n");
  EXPECT_THAT(
      ReadAll({dir / "f.jsonl"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(dir / "f.jsonl:2: no field \"text\""), HasSubstr("body, id"))));
  WriteFile(dir / "t.jsonl", "{\"text\": 12}\n");
  EXPECT_THAT(ReadAll({dir / "t.jsonl"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir / "t.jsonl:1: field \"text\" is a number")));
}

TEST(CorpusErrorsTest, CsvMissingColumnRaggedRowUnterminatedQuote) {
  ScratchDir dir;
  WriteFile(dir / "m.csv", "id,body\n1,hello\n");
  EXPECT_THAT(ReadAll({dir / "m.csv"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(dir / "m.csv:1: no column \"text\""),
                             HasSubstr("columns: id, body"))));
  WriteFile(dir / "r.csv", "id,text\n1,a\n2,b,extra\n");
  EXPECT_THAT(ReadAll({dir / "r.csv"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir / "r.csv:3: record has 3 fields, the header has 2")));
  WriteFile(dir / "u.csv", "id,text\n1,a\n2,\"never\nclosed\n");
  EXPECT_THAT(ReadAll({dir / "u.csv"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir / "u.csv:3: unterminated quoted field")));
  WriteFile(dir / "q.csv", "id,text\n1,\"a\"b\n");
  EXPECT_THAT(
      ReadAll({dir / "q.csv"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(dir / "q.csv:2: unexpected character 'b' after the closing quote")));
  WriteFile(dir / "empty.csv", "");
  EXPECT_THAT(ReadAll({dir / "empty.csv"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no header row")));
}

TEST(CorpusErrorsTest, CallbackErrorStopsIteration) {
  ScratchDir dir;
  WriteFile(dir / "f", "a\n%\nb\n%\nc\n");
  int calls = 0;
  const absl::Status s = ForEachDocument({dir / "f"}, {}, [&](std::string_view) {
    return ++calls == 2 ? absl::CancelledError("stop") : absl::OkStatus();
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kCancelled, HasSubstr("stop")));
  EXPECT_EQ(calls, 2);
}

TEST(Utf8Test, AcceptsValidRejectsMalformed) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), -1);
  EXPECT_EQ(FindInvalidUtf8("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"), -1);
  EXPECT_EQ(FindInvalidUtf8("a\x80"), 1);                  // lone continuation
  EXPECT_EQ(FindInvalidUtf8("ab\xc0\xaf"), 2);             // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("\xed\xa0\x80"), 0);           // surrogate D800
  EXPECT_EQ(FindInvalidUtf8("x\xf4\x90\x80\x80"), 1);      // > U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("xy\xe2\x9c"), 2);             // truncated
  EXPECT_EQ(FindInvalidUtf8(std::string("a\0b", 3)), -1);  // NUL is valid UTF-8
}

// The Debian fortunes corpus, when installed: every file reads (the .dat index files are skipped).
TEST(CorpusTest, DebianFortunesDirectoryReads) {
  const std::string fortunes = "/usr/share/games/fortunes";
  if (!std::filesystem::is_directory(fortunes)) GTEST_SKIP() << fortunes << " not installed";
  auto stats = CountDocuments({fortunes}, {});
  ASSERT_THAT(stats, IsOk());
  EXPECT_GT(stats->num_documents, 1000);
  auto files = ExpandCorpusInputs({fortunes});
  ASSERT_THAT(files, IsOk());
  for (const std::string& f : *files) EXPECT_FALSE(absl::EndsWith(f, ".dat")) << f;
}

}  // namespace
}  // namespace moetrain::data

// TrainTokenizer (declared in data/tokenizer.h).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "core/logging.h"
#include "data/corpus.h"
#include "data/corpus_readers.h"
#include "data/file_util.h"
#include "data/progress.h"
#include "data/sentencepiece_include.h"
#include "data/tokenizer.h"

namespace moetrain::data {
namespace {
namespace fs = std::filesystem;

constexpr int kMaxSentenceBytes = 1 << 20;  // longer lines are dropped by SentencePiece

absl::Status ValidateOptions(const TokenizerTrainOptions& o) {
  if (o.vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer vocab_size must be > 0, got ", o.vocab_size));
  }
  if (!absl::EndsWith(o.out_model, ".model") || o.out_model.size() <= 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer output \"", o.out_model, "\" must be a path ending in \".model\""));
  }
  if (o.out_model.find(',') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer output \"", o.out_model, "\": SentencePiece cannot read paths with commas"));
  }
  const std::string dir = ParentDir(o.out_model);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("tokenizer output \"", o.out_model, "\": directory ", dir, " does not exist"));
  }
  if (!(o.character_coverage > 0 && o.character_coverage <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("character_coverage must be in (0, 1], got ", o.character_coverage));
  }
  if (o.input_sentence_size < 0) {
    return absl::InvalidArgumentError("input_sentence_size must be >= 0");
  }
  return absl::OkStatus();
}

// Writes every non-blank line of every document to `path`, one per line.
absl::Status ExtractSentences(const TokenizerTrainOptions& o, int64_t total_documents,
                              const std::string& path, int64_t* num_sentences) {
  ASSIGN_OR_RETURN(FileWriter out, FileWriter::Create(path));
  Progress progress("tokenizer: extracting", total_documents, o.progress_interval_s);
  int64_t done = 0;
  RETURN_IF_ERROR(ForEachDocument(o.inputs, o.corpus, [&](std::string_view doc) -> absl::Status {
    size_t begin = 0;
    while (begin <= doc.size()) {
      size_t end = doc.find('\n', begin);
      if (end == std::string_view::npos) end = doc.size();
      const std::string_view line = doc.substr(begin, end - begin);
      if (HasNonSpace(line)) {
        RETURN_IF_ERROR(out.Write(line));
        RETURN_IF_ERROR(out.Write("\n"));
        ++*num_sentences;
      }
      begin = end + 1;
    }
    progress.Update(++done);
    return absl::OkStatus();
  }));
  progress.Finish(done);
  return out.Close();
}

}  // namespace

absl::Status TrainTokenizer(const TokenizerTrainOptions& o) {
  RETURN_IF_ERROR(ValidateOptions(o));
  const std::string where = absl::StrCat("training tokenizer ", o.out_model, " (vocab_size ",
                                         o.vocab_size, ") on ", absl::StrJoin(o.inputs, ", "));

  // 1. Validate and count (errors here name the corpus file and line; nothing is written yet).
  ASSIGN_OR_RETURN(const CorpusStats stats, CountDocuments(o.inputs, o.corpus));
  MT_LOG(INFO) << "tokenizer: " << stats.num_documents << " documents in " << stats.num_files
               << " files (" << HumanCount(static_cast<double>(stats.num_bytes)) << "B)";

  // 2. Sentences into a temporary text file beside the output.
  const std::string stem = o.out_model.substr(0, o.out_model.size() - 6);
  const std::string corpus_tmp = absl::StrCat(o.out_model, ".corpus.tmp.", ::getpid());
  ScopedRemover remove_corpus(corpus_tmp);
  int64_t num_sentences = 0;
  RETURN_IF_ERROR(ExtractSentences(o, stats.num_documents, corpus_tmp, &num_sentences));

  // 3. SentencePiece training into temporary model/vocab files.
  const std::string prefix_tmp = TempSiblingPath(stem);
  const std::string model_tmp = prefix_tmp + ".model";
  const std::string vocab_tmp = prefix_tmp + ".vocab";
  ScopedRemover remove_model(model_tmp);
  ScopedRemover remove_vocab(vocab_tmp);
  const int threads = o.num_threads > 0
                          ? o.num_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::unordered_map<std::string, std::string> args = {
      {"input", corpus_tmp},
      {"input_format", "text"},
      {"model_prefix", prefix_tmp},
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", absl::StrCat(o.character_coverage)},
      {"input_sentence_size", std::to_string(o.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes)},
      {"num_threads", std::to_string(threads)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"minloglevel", "2"},  // SentencePiece errors only; it logs every step otherwise
  };
  MT_LOG(INFO) << "tokenizer: training BPE (vocab_size " << o.vocab_size << ") on " << num_sentences
               << " lines with " << threads << " threads";
  sentencepiece::SetRandomGeneratorSeed(o.seed);
  const auto st = sentencepiece::SentencePieceTrainer::Train(args);
  if (!st.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": SentencePiece failed: ", st.error_message()));
  }

  // 4. Check the result loads, then make it durable and move it into place (.vocab first, so a
  // crash between the renames leaves the old .model with a newer .vocab, never a torn model).
  ASSIGN_OR_RETURN(const Tokenizer check, Tokenizer::Load(model_tmp));
  if (check.vocab_size() != o.vocab_size) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": SentencePiece produced ", check.vocab_size(), " pieces"));
  }
  RETURN_IF_ERROR(FsyncPath(model_tmp));
  RETURN_IF_ERROR(FsyncPath(vocab_tmp));
  RETURN_IF_ERROR(RenameReplacing(vocab_tmp, stem + ".vocab"));
  remove_vocab.Release();
  RETURN_IF_ERROR(RenameReplacing(model_tmp, o.out_model));
  remove_model.Release();
  MT_LOG(INFO) << "tokenizer: wrote " << o.out_model << " (" << check.checksum() << ")";
  return absl::OkStatus();
}

}  // namespace moetrain::data

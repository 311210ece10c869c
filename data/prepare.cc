#include "data/prepare.h"

#include <omp.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_join.h"
#include "core/logging.h"
#include "data/file_util.h"
#include "data/hash.h"
#include "data/progress.h"
#include "data/tokenizer.h"
#include "nlohmann/json.hpp"

namespace moetrain::data {
namespace {
namespace fs = std::filesystem;

constexpr size_t kBatchDocuments = 4096;  // documents encoded in parallel per batch
constexpr size_t kBatchBytes = 64 << 20;  // ... or fewer, once they hold this many bytes

double DocumentUnit(uint64_t seed, int64_t d) {
  return HashToUnit(HashPair(seed, static_cast<uint64_t>(d)));
}

// OK if `out` may be replaced: absent, an empty directory, or a token-shard directory.
absl::Status CheckReplaceable(const std::string& out) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out, ec);
  if (!fs::exists(st)) return absl::OkStatus();
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to replace ", out, ": it exists and is not a directory"));
  }
  if (fs::is_empty(out, ec)) return absl::OkStatus();
  const std::string meta = (fs::path(out) / kTokenShardsMetaFile).string();
  const auto text = ReadFileToString(meta);
  if (text.ok()) {
    const auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("format", "") == kTokenShardsFormat) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to replace ", out, ": it is not a token-shard directory (no ", kTokenShardsMetaFile,
      " with format \"", kTokenShardsFormat, "\"); remove it or choose another output"));
}

// Moves the finished `tmp` directory to `out`, replacing a previous `out` (see prepare.h).
absl::Status InstallDirectory(const std::string& tmp, const std::string& out) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(out, ec))) return RenameReplacing(tmp, out);
  const std::string old = absl::StrCat(out, ".old.", ::getpid());
  fs::remove_all(old, ec);
  RETURN_IF_ERROR(RenameReplacing(out, old));
  const absl::Status moved = RenameReplacing(tmp, out);
  if (!moved.ok()) {
    const absl::Status restored = RenameReplacing(old, out);
    if (!restored.ok()) {
      return absl::DataLossError(absl::StrCat(moved.message(), "; and restoring the previous ", out,
                                              " failed: ", restored.message(), " (it is at ", old,
                                              ")"));
    }
    return moved;
  }
  fs::remove_all(old, ec);
  if (ec)
    MT_LOG(WARNING) << "prepare: could not delete the previous output " << old << ": "
                    << ec.message();
  return absl::OkStatus();
}

// Encodes batches of documents in parallel and appends them, in order, to the split files.
class ShardWriter {
 public:
  ShardWriter(const Tokenizer& tok, const SplitRule& rule, int num_threads, FileWriter* train,
              FileWriter* val)
      : tok_(tok), rule_(rule), num_threads_(num_threads), out_{train, val} {}

  absl::Status Add(std::string_view doc) {
    batch_.emplace_back(doc);
    batch_bytes_ += doc.size();
    if (batch_.size() >= kBatchDocuments || batch_bytes_ >= kBatchBytes) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    const int64_t n = static_cast<int64_t>(batch_.size());
    encoded_.resize(batch_.size());
#pragma omp parallel for schedule(dynamic, 16) num_threads(num_threads_)
    for (int64_t i = 0; i < n; ++i) encoded_[i] = tok_.Encode(batch_[i]);
    const int32_t eos = tok_.eos_id();
    for (int64_t i = 0; i < n; ++i) {
      const int s = static_cast<int>(rule_.Of(documents_));
      const std::vector<int32_t>& ids = encoded_[i];
      RETURN_IF_ERROR(out_[s]->Write(ids.data(), ids.size() * sizeof(int32_t)));
      RETURN_IF_ERROR(out_[s]->Write(&eos, sizeof(eos)));
      info_[s].num_tokens += static_cast<int64_t>(ids.size()) + 1;
      info_[s].num_documents += 1;
      ++documents_;
    }
    batch_.clear();
    batch_bytes_ = 0;
    return absl::OkStatus();
  }

  int64_t documents() const { return documents_ + static_cast<int64_t>(batch_.size()); }
  int64_t written_documents() const { return documents_; }
  int64_t tokens() const { return info_[0].num_tokens + info_[1].num_tokens; }
  const SplitInfo& info(Split s) const { return info_[static_cast<int>(s)]; }

 private:
  const Tokenizer& tok_;
  const SplitRule& rule_;
  int num_threads_;
  FileWriter* out_[2];
  SplitInfo info_[2];
  std::vector<std::string> batch_;
  size_t batch_bytes_ = 0;
  std::vector<std::vector<int32_t>> encoded_;
  int64_t documents_ = 0;  // documents written so far
};

}  // namespace

absl::StatusOr<SplitRule> SplitRule::Create(int64_t num_documents, double val_fraction,
                                            uint64_t seed) {
  if (!(val_fraction > 0 && val_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_fraction must be in (0, 1), got ", val_fraction));
  }
  if (num_documents < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("the corpus has ", num_documents,
                     " document(s); a train/val split needs at least 2 (one per split)"));
  }
  SplitRule r;
  r.num_documents_ = num_documents;
  r.val_fraction_ = val_fraction;
  r.seed_ = seed;
  int64_t num_val = 0, argmin = 0, argmax = 0;
  double min_u = 2, max_u = -1;
  for (int64_t d = 0; d < num_documents; ++d) {
    const double u = DocumentUnit(seed, d);
    num_val += u < val_fraction;
    if (u < min_u) min_u = u, argmin = d;
    if (u > max_u) max_u = u, argmax = d;
  }
  if (num_val == 0) r.forced_val_ = argmin;
  if (num_val == num_documents) r.forced_train_ = argmax;
  return r;
}

Split SplitRule::Of(int64_t d) const {
  MT_CHECK_MSG(d >= 0 && d < num_documents_, "document ", d, " outside [0, ", num_documents_, ")");
  if (d == forced_val_) return Split::kVal;
  if (d == forced_train_) return Split::kTrain;
  return DocumentUnit(seed_, d) < val_fraction_ ? Split::kVal : Split::kTrain;
}

absl::StatusOr<TokenShardsMeta> PrepareTokenShards(const PrepareOptions& o) {
  std::string out = o.out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (out.empty()) return absl::InvalidArgumentError("prepare: no output directory given");
  std::error_code ec;
  const std::string parent = ParentDir(out);
  if (!fs::is_directory(parent, ec)) {
    return absl::NotFoundError(
        absl::StrCat("prepare output ", out, ": parent directory ", parent, " does not exist"));
  }
  RETURN_IF_ERROR(CheckReplaceable(out));
  ASSIGN_OR_RETURN(const Tokenizer tok, Tokenizer::Load(o.tokenizer_model));

  // Validating count pass: corpus errors surface before anything is written.
  ASSIGN_OR_RETURN(const CorpusStats stats, CountDocuments(o.inputs, o.corpus));
  auto rule_or = SplitRule::Create(stats.num_documents, o.val_fraction, o.split_seed);
  if (!rule_or.ok()) {
    return absl::Status(rule_or.status().code(), absl::StrCat(absl::StrJoin(o.inputs, ", "), ": ",
                                                              rule_or.status().message()));
  }
  const SplitRule rule = *std::move(rule_or);
  MT_LOG(INFO) << "prepare: " << stats.num_documents << " documents in " << stats.num_files
               << " files (" << HumanCount(static_cast<double>(stats.num_bytes)) << "B), tokenizer "
               << o.tokenizer_model << " (vocab " << tok.vocab_size() << ")";

  const std::string tmp = TempSiblingPath(out);
  fs::remove_all(tmp, ec);  // a stale temporary of an earlier process with our pid
  if (!fs::create_directory(tmp, ec) || ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(tmp, ": cannot create directory: ", ec.message()));
  }
  ScopedRemover remove_tmp(tmp);

  TokenShardsMeta meta;
  meta.tokenizer_model = o.tokenizer_model;
  meta.tokenizer_checksum = tok.checksum();
  meta.vocab_size = tok.vocab_size();
  meta.eos_id = tok.eos_id();
  meta.val_fraction = o.val_fraction;
  meta.split_seed = o.split_seed;
  meta.source = o.inputs;
  meta.corpus_format = CorpusFormatName(o.corpus.format);
  meta.split(Split::kTrain).file = "train.bin";
  meta.split(Split::kVal).file = "val.bin";

  const std::string tmp_dir = tmp + "/";
  ASSIGN_OR_RETURN(FileWriter train, FileWriter::Create(tmp_dir + meta.split(Split::kTrain).file));
  ASSIGN_OR_RETURN(FileWriter val, FileWriter::Create(tmp_dir + meta.split(Split::kVal).file));
  const int threads = o.num_threads > 0 ? o.num_threads : omp_get_max_threads();
  ShardWriter writer(tok, rule, threads, &train, &val);
  Progress progress("prepare", stats.num_documents, o.progress_interval_s);
  RETURN_IF_ERROR(ForEachDocument(o.inputs, o.corpus, [&](std::string_view doc) -> absl::Status {
    if (writer.documents() >= stats.num_documents) {
      return absl::AbortedError(
          absl::StrCat(absl::StrJoin(o.inputs, ", "), ": corpus changed while being prepared"));
    }
    RETURN_IF_ERROR(writer.Add(doc));
    progress.Update(writer.written_documents(), writer.tokens());
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(writer.Flush());
  progress.Finish(writer.written_documents(), writer.tokens());
  if (writer.written_documents() != stats.num_documents) {
    return absl::AbortedError(
        absl::StrCat(absl::StrJoin(o.inputs, ", "), ": corpus changed while being prepared"));
  }
  RETURN_IF_ERROR(train.Close());
  RETURN_IF_ERROR(val.Close());
  for (Split s : kSplits) {
    SplitInfo& info = meta.split(s);
    info.num_tokens = writer.info(s).num_tokens;
    info.num_documents = writer.info(s).num_documents;
  }

  ASSIGN_OR_RETURN(FileWriter meta_file, FileWriter::Create(tmp_dir + kTokenShardsMetaFile));
  RETURN_IF_ERROR(meta_file.Write(TokenShardsMetaToJson(meta)));
  RETURN_IF_ERROR(meta_file.Close());
  RETURN_IF_ERROR(FsyncPath(tmp));
  RETURN_IF_ERROR(InstallDirectory(tmp, out));
  remove_tmp.Release();
  MT_LOG(INFO) << "prepare: wrote " << out << ": train " << meta.split(Split::kTrain).num_tokens
               << " tokens / " << meta.split(Split::kTrain).num_documents << " documents, val "
               << meta.split(Split::kVal).num_tokens << " tokens / "
               << meta.split(Split::kVal).num_documents << " documents";
  return meta;
}

}  // namespace moetrain::data

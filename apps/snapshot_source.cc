#include "apps/snapshot_source.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "checkpoint/snapshot_dir.h"
#include "checkpoint/snapshot_param_source.h"
#include "core/status.h"

namespace moetrain::apps {
namespace {

namespace fs = std::filesystem;

// SnapshotParamSource borrows its reader; this one owns it so a ModelSource can carry it.
class OwningSnapshotParamSource : public model::ParamSource {
 public:
  explicit OwningSnapshotParamSource(checkpoint::SnapshotReader reader)
      : reader_(std::move(reader)), source_(reader_) {}
  absl::Status ReadFull(const model::ParamSpec& spec, float* out) override {
    return source_.ReadFull(spec, out);
  }
  bool Has(const std::string& name) const override { return source_.Has(name); }

 private:
  checkpoint::SnapshotReader reader_;
  checkpoint::SnapshotParamSource source_;
};

}  // namespace

absl::StatusOr<std::string> ResolveSnapshotDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(absl::StrCat(dir, ": no such snapshot directory"));
  if (fs::exists(fs::path(dir) / checkpoint::kMetaFile, ec)) return dir;
  if (!fs::exists(fs::path(dir) / checkpoint::kLatestFile, ec))
    return absl::NotFoundError(absl::StrCat(dir, ": not a snapshot (no ", checkpoint::kMetaFile,
                                            ") nor a checkpoint root (no ", checkpoint::kLatestFile,
                                            ")"));
  ASSIGN_OR_RETURN(std::string name, checkpoint::ReadLatest(dir));
  const std::string target = (fs::path(dir) / name).string();
  if (!fs::exists(fs::path(target) / checkpoint::kMetaFile, ec))
    return absl::NotFoundError(absl::StrCat(dir, "/", checkpoint::kLatestFile, " points at ", name,
                                            ", which is not a snapshot (", target, "/",
                                            checkpoint::kMetaFile, " is missing)"));
  return target;
}

absl::StatusOr<SnapshotModel> OpenSnapshotModel(const std::string& dir) {
  SnapshotModel m;
  ASSIGN_OR_RETURN(m.dir, ResolveSnapshotDir(dir));
  ASSIGN_OR_RETURN(checkpoint::SnapshotReader reader, checkpoint::SnapshotReader::Open(m.dir));
  const nlohmann::json& meta = reader.meta();
  const std::string meta_path = absl::StrCat(m.dir, "/", checkpoint::kMetaFile);
  if (!meta.contains("state") || !meta["state"].is_object() || !meta["state"].contains("recipe") ||
      !meta["state"]["recipe"].is_string())
    return absl::DataLossError(
        absl::StrCat(meta_path, ": state.recipe is missing (not a moetrain training snapshot)"));
  const nlohmann::json& state = meta["state"];
  auto recipe = trainer::ParseRecipe(state["recipe"].get<std::string>(),
                                     absl::StrCat(meta_path, " state.recipe"));
  if (!recipe.ok())
    return absl::DataLossError(
        absl::StrCat(meta_path, ": state.recipe does not parse: ", recipe.status().message()));
  m.recipe = std::move(*recipe);
  if (m.recipe.vocab_size_auto)
    return absl::DataLossError(
        absl::StrCat(meta_path, ": state.recipe has model.vocab_size auto (not resolved)"));
  if (!reader.fields().count("param"))
    return absl::DataLossError(absl::StrCat(m.dir, ": the snapshot has no \"param\" field"));
  m.tokenizer.snapshot_dir = m.dir;
  m.tokenizer.recorded_path = m.recipe.data.tokenizer;
  if (state.contains("tokenizer_checksum") && state["tokenizer_checksum"].is_string())
    m.tokenizer.checksum = state["tokenizer_checksum"].get<std::string>();
  m.params = std::make_unique<OwningSnapshotParamSource>(std::move(reader));
  return m;
}

absl::StatusOr<data::Tokenizer> ResolveSnapshotTokenizer(const SnapshotTokenizer& snapshot,
                                                         const std::string& flag_path,
                                                         std::string* used_path) {
  std::string path = flag_path;
  if (path.empty()) {
    // Training snapshots record the checksum; an import of a folder without tokenizer.model does
    // not, and its recipe's data.tokenizer is only a placeholder: never guess then.
    if (snapshot.checksum.empty())
      return absl::FailedPreconditionError(absl::StrCat(
          snapshot.snapshot_dir, " records no tokenizer checksum; pass --tokenizer PATH"));
    path = snapshot.recorded_path;
    std::error_code ec;
    if (path.empty() || !fs::exists(path, ec))
      return absl::NotFoundError(absl::StrCat("the tokenizer recorded in ", snapshot.snapshot_dir,
                                              " (data.tokenizer: '", path,
                                              "') does not exist; pass --tokenizer PATH"));
  }
  auto tok = data::Tokenizer::Load(path);  // its errors name the path
  if (!tok.ok()) return tok.status();
  if (!snapshot.checksum.empty() && tok->checksum() != snapshot.checksum)
    return absl::FailedPreconditionError(absl::StrCat(
        "tokenizer ", path, " (checksum ", tok->checksum(), ") is not the one ",
        snapshot.snapshot_dir, " was trained with (checksum ", snapshot.checksum, ")"));
  if (used_path != nullptr) *used_path = path;
  return std::move(*tok);
}

}  // namespace moetrain::apps

#include "data/token_shards.h"

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <type_traits>

#include "data/file_util.h"
#include "data/tokenizer.h"
#include "nlohmann/json.hpp"

namespace moetrain::data {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "token files are little-endian int32 and are mapped directly");

// A field of `obj` of the wanted type, or DataLoss naming the file and the field.
template <typename T>
absl::StatusOr<T> Field(const json& obj, const std::string& key, const std::string& path,
                        const std::string& parent = "") {
  const std::string name = parent.empty() ? key : parent + "." + key;
  const auto it = obj.find(key);
  if (it == obj.end()) {
    return absl::DataLossError(absl::StrCat(path, ": missing field \"", name, "\""));
  }
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw std::invalid_argument("not a string");
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) throw std::invalid_argument("not an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!it->is_number()) throw std::invalid_argument("not a number");
    }
    return it->get<T>();
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": field \"", name, "\" has the wrong type (",
                                            it->type_name(), "): ", e.what()));
  }
}

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

}  // namespace

const char* SplitName(Split split) { return split == Split::kTrain ? "train" : "val"; }

std::string TokenShardsMetaToJson(const TokenShardsMeta& m) {
  json splits = json::object();
  for (Split s : kSplits) {
    const SplitInfo& info = m.split(s);
    splits[SplitName(s)] = {{"file", info.file},
                            {"num_tokens", info.num_tokens},
                            {"num_documents", info.num_documents}};
  }
  const json j = {
      {"format", kTokenShardsFormat},
      {"version", m.version},
      {"tokenizer_model", m.tokenizer_model},
      {"tokenizer_checksum", m.tokenizer_checksum},
      {"vocab_size", m.vocab_size},
      {"eos_id", m.eos_id},
      {"dtype", m.dtype},
      {"byte_order", "little"},
      {"split_rule",
       {{"name", "splitmix64"}, {"val_fraction", m.val_fraction}, {"seed", m.split_seed}}},
      {"splits", splits},
      {"source", m.source},
      {"corpus_format", m.corpus_format},
      {"created_by", m.created_by},
  };
  return j.dump(2) + "\n";
}

absl::StatusOr<TokenShardsMeta> ParseTokenShardsMeta(const std::string& json_text,
                                                     const std::string& path) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": malformed JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::DataLossError(absl::StrCat(path, ": not a JSON object"));
  ASSIGN_OR_RETURN(const std::string format, Field<std::string>(j, "format", path));
  if (format != kTokenShardsFormat) {
    return absl::DataLossError(
        absl::StrCat(path, ": format is \"", format, "\", expected \"", kTokenShardsFormat, "\""));
  }
  TokenShardsMeta m;
  ASSIGN_OR_RETURN(m.version, Field<int>(j, "version", path));
  if (m.version < 1 || m.version > kTokenShardsVersion) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": version ", m.version,
                                                      " is not readable by this build (reads 1..",
                                                      kTokenShardsVersion, ")"));
  }
  ASSIGN_OR_RETURN(m.dtype, Field<std::string>(j, "dtype", path));
  if (m.dtype != "int32") {
    return absl::UnimplementedError(
        absl::StrCat(path, ": dtype \"", m.dtype, "\" is not supported (expected \"int32\")"));
  }
  if (j.contains("byte_order") && j["byte_order"] != "little") {
    return absl::UnimplementedError(absl::StrCat(path, ": byte_order must be \"little\""));
  }
  ASSIGN_OR_RETURN(m.tokenizer_checksum, Field<std::string>(j, "tokenizer_checksum", path));
  ASSIGN_OR_RETURN(m.vocab_size, Field<int32_t>(j, "vocab_size", path));
  ASSIGN_OR_RETURN(m.eos_id, Field<int32_t>(j, "eos_id", path));
  if (m.vocab_size <= 0 || m.eos_id < 0 || m.eos_id >= m.vocab_size) {
    return absl::DataLossError(
        absl::StrCat(path, ": eos_id ", m.eos_id, " outside [0, vocab_size ", m.vocab_size, ")"));
  }
  if (j.contains("tokenizer_model")) {
    ASSIGN_OR_RETURN(m.tokenizer_model, Field<std::string>(j, "tokenizer_model", path));
  }
  if (j.contains("corpus_format")) {
    ASSIGN_OR_RETURN(m.corpus_format, Field<std::string>(j, "corpus_format", path));
  }
  if (j.contains("created_by")) {
    ASSIGN_OR_RETURN(m.created_by, Field<std::string>(j, "created_by", path));
  }
  if (j.contains("split_rule") && j["split_rule"].is_object()) {
    const json& r = j["split_rule"];
    ASSIGN_OR_RETURN(m.val_fraction, Field<double>(r, "val_fraction", path, "split_rule"));
    ASSIGN_OR_RETURN(m.split_seed, Field<uint64_t>(r, "seed", path, "split_rule"));
  }
  if (j.contains("source")) {
    if (!j["source"].is_array()) {
      return absl::DataLossError(absl::StrCat(path, ": field \"source\" is not an array"));
    }
    for (const json& s : j["source"]) {
      if (!s.is_string()) {
        return absl::DataLossError(absl::StrCat(path, ": \"source\" holds a non-string"));
      }
      m.source.push_back(s.get<std::string>());
    }
  }
  ASSIGN_OR_RETURN(const json splits, Field<json>(j, "splits", path));
  if (!splits.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": field \"splits\" is not an object"));
  }
  for (Split s : kSplits) {
    const std::string name = SplitName(s);
    ASSIGN_OR_RETURN(const json sj, Field<json>(splits, name, path, "splits"));
    if (!sj.is_object()) {
      return absl::DataLossError(
          absl::StrCat(path, ": field \"splits.", name, "\" is not an object"));
    }
    SplitInfo& info = m.split(s);
    const std::string parent = "splits." + name;
    ASSIGN_OR_RETURN(info.file, Field<std::string>(sj, "file", path, parent));
    ASSIGN_OR_RETURN(info.num_tokens, Field<int64_t>(sj, "num_tokens", path, parent));
    ASSIGN_OR_RETURN(info.num_documents, Field<int64_t>(sj, "num_documents", path, parent));
    if (!IsPlainFileName(info.file)) {
      return absl::DataLossError(absl::StrCat(path, ": splits.", name, ".file \"", info.file,
                                              "\" is not a plain file name"));
    }
    if (info.num_tokens < info.num_documents || info.num_documents < 0) {
      return absl::DataLossError(absl::StrCat(path, ": splits.", name, " has ", info.num_tokens,
                                              " tokens for ", info.num_documents,
                                              " documents (each ends with an eos)"));
    }
  }
  if (m.split(Split::kTrain).file == m.split(Split::kVal).file) {
    return absl::DataLossError(absl::StrCat(path, ": train and val name the same file"));
  }
  return m;
}

absl::StatusOr<TokenShards> TokenShards::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no such token-shard directory"));
  }
  const std::string meta_path = (fs::path(dir) / kTokenShardsMetaFile).string();
  if (!fs::exists(meta_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(meta_path, ": missing (is ", dir, " a token-shard directory?)"));
  }
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(meta_path));
  TokenShards shards;
  shards.dir_ = dir;
  ASSIGN_OR_RETURN(shards.meta_, ParseTokenShardsMeta(text, meta_path));
  for (Split s : kSplits) {
    const SplitInfo& info = shards.meta_.split(s);
    const std::string path = shards.file_path(s);
    ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
    const uint64_t want = static_cast<uint64_t>(info.num_tokens) * sizeof(int32_t);
    if (file.size() != want) {
      return absl::DataLossError(absl::StrCat(path, ": ", file.size(), " bytes, expected ", want,
                                              " (", info.num_tokens, " int32 tokens per ",
                                              meta_path, ")"));
    }
    const auto* ids = static_cast<const int32_t*>(file.data());
    const int32_t vocab = shards.meta_.vocab_size;
    for (int64_t i = 0; i < info.num_tokens; ++i) {
      if (ids[i] < 0 || ids[i] >= vocab) {
        return absl::DataLossError(absl::StrCat(path, ": token ", i, " has id ", ids[i],
                                                ", outside [0, vocab_size ", vocab, ")"));
      }
    }
    shards.files_[static_cast<int>(s)] = std::move(file);
  }
  return shards;
}

const int32_t* TokenShards::tokens(Split split) const {
  return static_cast<const int32_t*>(files_[static_cast<int>(split)].data());
}

std::string TokenShards::file_path(Split split) const {
  return (fs::path(dir_) / meta_.split(split).file).string();
}

absl::Status TokenShards::CheckTokenizer(const Tokenizer& tokenizer) const {
  if (tokenizer.checksum() != meta_.tokenizer_checksum ||
      tokenizer.vocab_size() != meta_.vocab_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("tokenizer ", tokenizer.model_path(), " (", tokenizer.checksum(), ", vocab ",
                     tokenizer.vocab_size(), ") is not the one ", dir_, " was prepared with (",
                     meta_.tokenizer_checksum, ", vocab ", meta_.vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace moetrain::data

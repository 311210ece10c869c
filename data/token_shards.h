// Token shards: a tokenised corpus split into train and validation token streams on disk.
//
// Layout (docs/data_format.md is the reference):
//   <dir>/meta.json   {"format": "moetrain.token_shards", "version": 1, "tokenizer_checksum",
//                      "vocab_size", "eos_id", "dtype": "int32", "splits": {"train": {"file",
//                      "num_tokens", "num_documents"}, "val": {...}}, "source": [...], ...}
//   <dir>/train.bin   num_tokens little-endian int32 ids: every train document's tokens, each
//   <dir>/val.bin     followed by eos_id, in corpus order.
// Written by PrepareTokenShards (data/prepare.h); read here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/mapped_file.h"

namespace moetrain::data {

class Tokenizer;

inline constexpr char kTokenShardsFormat[] = "moetrain.token_shards";
inline constexpr int kTokenShardsVersion = 1;
inline constexpr char kTokenShardsMetaFile[] = "meta.json";

enum class Split { kTrain = 0, kVal = 1 };
inline constexpr std::array<Split, 2> kSplits = {Split::kTrain, Split::kVal};
// "train", "val".
const char* SplitName(Split split);

struct SplitInfo {
  std::string file;        // plain file name inside the directory ("train.bin")
  int64_t num_tokens = 0;  // including one eos per document
  int64_t num_documents = 0;
};

// Everything meta.json holds.
struct TokenShardsMeta {
  int version = kTokenShardsVersion;
  std::string tokenizer_model;     // the .model path given to prepare (informational)
  std::string tokenizer_checksum;  // Tokenizer::checksum() of that model
  int32_t vocab_size = 0;
  int32_t eos_id = -1;
  std::string dtype = "int32";
  double val_fraction = 0;  // the split rule's parameters (data/prepare.h)
  uint64_t split_seed = 0;
  std::array<SplitInfo, 2> splits;  // indexed by Split
  std::vector<std::string> source;  // corpus inputs as given to prepare
  std::string corpus_format;        // CorpusFormatName of the forced format, or "auto"
  std::string created_by = "moetrain";

  const SplitInfo& split(Split s) const { return splits[static_cast<int>(s)]; }
  SplitInfo& split(Split s) { return splits[static_cast<int>(s)]; }
};

// meta.json text (pretty-printed, keys sorted).
std::string TokenShardsMetaToJson(const TokenShardsMeta& meta);
// Parses and checks meta.json text; `path` names the file in errors.
// Errors: DataLoss (malformed JSON, wrong "format", a missing or mistyped field, a file name that
// is not a plain name, inconsistent numbers), FailedPrecondition (a version newer than
// kTokenShardsVersion), Unimplemented (a dtype other than "int32").
absl::StatusOr<TokenShardsMeta> ParseTokenShardsMeta(const std::string& json_text,
                                                     const std::string& path);

// A validated, read-only, memory-mapped token-shard directory. Move-only.
// Lifetime: tokens() pointers live as long as this object.
// Thread-safety: const methods may be called concurrently.
class TokenShards {
 public:
  // Reads meta.json, maps both token files and validates them: each file's size is 4 * num_tokens
  // and every token id lies in [0, vocab_size) (a full scan). Errors name the file: NotFound (no
  // directory / meta.json / token file), DataLoss (size mismatch, "train.bin: token 17 has id 999,
  // outside [0, 300)"), plus those of ParseTokenShardsMeta.
  static absl::StatusOr<TokenShards> Open(const std::string& dir);

  TokenShards(TokenShards&&) noexcept = default;
  TokenShards& operator=(TokenShards&&) noexcept = default;
  TokenShards(const TokenShards&) = delete;
  TokenShards& operator=(const TokenShards&) = delete;

  // (num_tokens(split),) ids; nullptr only when num_tokens(split) == 0.
  const int32_t* tokens(Split split) const;
  int64_t num_tokens(Split split) const { return meta_.split(split).num_tokens; }
  int64_t num_documents(Split split) const { return meta_.split(split).num_documents; }
  std::string file_path(Split split) const;
  // Bytes of both mapped token files (what reading every token makes resident).
  size_t MappedBytes() const {
    return 4 * static_cast<size_t>(num_tokens(Split::kTrain) + num_tokens(Split::kVal));
  }

  const TokenShardsMeta& meta() const { return meta_; }
  int32_t vocab_size() const { return meta_.vocab_size; }
  int32_t eos_id() const { return meta_.eos_id; }
  const std::string& tokenizer_checksum() const { return meta_.tokenizer_checksum; }
  const std::string& dir() const { return dir_; }

  // FailedPrecondition naming both checksums if `tokenizer` is not the model these shards were
  // prepared with.
  absl::Status CheckTokenizer(const Tokenizer& tokenizer) const;

 private:
  TokenShards() = default;
  std::string dir_;
  TokenShardsMeta meta_;
  std::array<MappedFile, 2> files_;
};

}  // namespace moetrain::data

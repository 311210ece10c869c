// `moetrain data prepare`: corpus -> tokenizer -> token-shard directory (data/token_shards.h).
//
// Every non-empty document (data/corpus.h) is encoded with the tokenizer and followed by one eos
// id; whole documents go to train or val by SplitRule. Output is written into "<out>.tmp.<pid>"
// (files fsynced, meta.json last) and renamed to <out> only when complete. An existing <out> is
// replaced only if it is a token-shard directory (or empty): it is renamed to "<out>.old.<pid>",
// the new directory renamed in, then the old one deleted (restored if the second rename fails).
// On any error the temporary directory is removed and an existing <out> is untouched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/corpus.h"
#include "data/token_shards.h"

namespace moetrain::data {

// Which split each document goes to: document d (0-based, corpus order) is a validation document
// iff HashToUnit(HashPair(seed, d)) < val_fraction (data/hash.h). If that leaves a split empty,
// the document with the smallest hash value moves to val (or the one with the largest to train),
// so with >= 2 documents both splits are non-empty. A pure function of (num_documents,
// val_fraction, seed); thread-safe.
class SplitRule {
 public:
  // Errors: InvalidArgument unless 0 < val_fraction < 1; FailedPrecondition if
  // num_documents < 2 ("needs at least 2 documents"). O(num_documents) time, O(1) memory.
  static absl::StatusOr<SplitRule> Create(int64_t num_documents, double val_fraction,
                                          uint64_t seed);
  // REQUIRES 0 <= d < num_documents.
  Split Of(int64_t d) const;

 private:
  SplitRule() = default;
  int64_t num_documents_ = 0;
  double val_fraction_ = 0;
  uint64_t seed_ = 0;
  int64_t forced_val_ = -1;    // document moved to val, or -1
  int64_t forced_train_ = -1;  // document moved to train, or -1
};

struct PrepareOptions {
  std::vector<std::string> inputs;   // corpus files or directories
  CorpusOptions corpus;              // how to read them
  std::string tokenizer_model;       // a .model written by TrainTokenizer (or any SentencePiece)
  std::string out_dir;               // the token-shard directory to create or replace
  double val_fraction = 0.05;        // expected share of documents in val; 0 < f < 1
  uint64_t split_seed = 0;           // SplitRule seed
  int num_threads = 0;               // encoding threads (OpenMP); 0 = OpenMP's default
  double progress_interval_s = 5.0;  // seconds between progress lines
};

// Prepares the shard directory and returns its metadata (as written to meta.json).
// Errors: those of Tokenizer::Load and data/corpus.h (naming the file and line), SplitRule's,
// NotFound if the parent of out_dir does not exist, FailedPrecondition if out_dir exists and is
// not a token-shard directory, file-system errors naming the path.
// Thread-safety: safe to call concurrently for different out_dir values.
absl::StatusOr<TokenShardsMeta> PrepareTokenShards(const PrepareOptions& options);

}  // namespace moetrain::data

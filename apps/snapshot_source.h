// Opening a snapshot as a model for the CLI (`--ckpt DIR` of generate / eval / export).
//
// ResolveSnapshotDir turns DIR into a snapshot directory: DIR itself when it holds meta.json, the
// target of DIR/latest when DIR is a checkpoint root. OpenSnapshotModel then opens it (full index
// validation, no data read), parses the recipe recorded in meta.json "state"."recipe" (its model
// section is the ModelConfig) and returns a ParamSource over the "param" field (any layout).
// Tokenizers: ResolveSnapshotTokenizer picks --tokenizer or the recipe's data.tokenizer and refuses
// one whose checksum differs from the snapshot's "tokenizer_checksum". Every error names the
// directory or file and what is wrong.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "checkpoint/snapshot_reader.h"
#include "data/tokenizer.h"
#include "model/config.h"
#include "model/param_source.h"
#include "trainer/recipe.h"

namespace moetrain::apps {

// `dir` itself if it holds meta.json, else DIR/<name in DIR/latest>. NotFound naming `dir` (or
// DIR/latest's target) otherwise.
absl::StatusOr<std::string> ResolveSnapshotDir(const std::string& dir);

// What a snapshot says about its tokenizer.
struct SnapshotTokenizer {
  std::string snapshot_dir;
  std::string recorded_path;  // the recipe's data.tokenizer
  std::string checksum;       // state.tokenizer_checksum ("" when not recorded)
};

struct SnapshotModel {
  std::string dir;         // the resolved snapshot directory
  trainer::Recipe recipe;  // from meta.json state.recipe
  SnapshotTokenizer tokenizer;
  std::unique_ptr<model::ParamSource> params;  // owns the reader; "param" field
};

// `dir`: a snapshot or a checkpoint root. Does not verify checksums (reads do, per chunk).
absl::StatusOr<SnapshotModel> OpenSnapshotModel(const std::string& dir);

// The tokenizer for a snapshot: `flag_path` (--tokenizer) if set, else the recipe's data.tokenizer
// (an error naming it and suggesting --tokenizer when that file is gone, or when the snapshot
// records no checksum, e.g. an import without tokenizer.model). FailedPrecondition when its
// checksum differs from the snapshot's.
// Also returns the path it used in *used_path (may be null).
absl::StatusOr<data::Tokenizer> ResolveSnapshotTokenizer(const SnapshotTokenizer& snapshot,
                                                         const std::string& flag_path,
                                                         std::string* used_path = nullptr);

}  // namespace moetrain::apps

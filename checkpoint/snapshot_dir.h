// The snapshot root directory: names, the `latest` pointer, durable small files, retention.
//
// ROOT/step-00000100/          a complete snapshot (meta.json + shard-00000.h5 ...)
// ROOT/.tmp-step-00000100/     a snapshot being written (or left by a writer that died)
// ROOT/latest                  "step-00000100\n": the newest complete snapshot
// A step directory counts as complete when it has the step-* name (it was renamed from .tmp-* only
// after every shard and meta.json were fsync'd). Functions return errors naming the path.
// Thread-safety: plain file-system calls; no shared state.
#pragma once

#include "core/durable_file.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moetrain::checkpoint {

inline constexpr char kLatestFile[] = "latest";
inline constexpr char kMetaFile[] = "meta.json";

std::string StepDirName(int64_t step);  // "step-00000100"
std::string TmpDirName(int64_t step);   // ".tmp-step-00000100"
std::string ShardFileName(int rank);    // "shard-00003.h5"
// The step of a "step-NNNNNNNN" name (at least 8 digits); nullopt for any other name.
std::optional<int64_t> ParseStepDirName(const std::string& name);

// FsyncDir / WriteFileDurably / WriteFileAtomically: core/durable_file.h.
// Removes `path` recursively (no error when it does not exist).
absl::Status RemoveTree(const std::string& path);

// Atomically points ROOT/latest at `dir_name`: writes ROOT/latest.tmp, fsyncs it, renames it over
// ROOT/latest and fsyncs ROOT.
absl::Status WriteLatest(const std::string& root, const std::string& dir_name);
// The directory name in ROOT/latest (trailing whitespace removed). NotFound when there is none.
absl::StatusOr<std::string> ReadLatest(const std::string& root);

// Complete snapshots under root as (step, directory name), newest first.
std::vector<std::pair<int64_t, std::string>> ListCompleteSnapshots(const std::string& root);

// Keeps the newest `keep` complete snapshots (keep <= 0: all) and removes older ones, plus every
// .tmp-* directory (only call when no snapshot is being written). Never removes the target of
// ROOT/latest.
absl::Status ApplyRetention(const std::string& root, int keep);

}  // namespace moetrain::checkpoint

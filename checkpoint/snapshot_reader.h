// SnapshotReader: opens a snapshot directory, validates it completely, reads any hyperslab.
//
// Open reads meta.json and every shard's record index (HDF5 attributes only) and checks, BEFORE
// any tensor data is read or any buffer is sized from the files: the meta.json schema (format
// "moetrain-snapshot", version 1); every listed shard exists and opens; every record's field is
// listed and its tensor is in the table (and in the field's tensor list) with the same full
// shape; every hyperslab lies inside its tensor and its dataset holds product(count) values; each
// expected (field, tensor) is covered exactly once (no two pieces overlap and their volumes sum to
// numel); all pieces of a tensor carry the same step. Every problem found goes into ONE
// DataLoss error ("missing tensor X", "extra tensor Y", "shape mismatch Z in file F", ...).
// Data reads verify HDF5's fletcher32 checksums; a mismatch is DataLoss naming file and dataset.
//
// Resharding: ReadSlab(field, tensor, offset, count) serves any hyperslab whatever layout wrote
// the snapshot, reading only the pieces that overlap it (and within each, the contiguous value
// range that spans the overlap).
// Lifetime: owns the open shard files; move-only. Thread-safety: one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/shard_file.h"
#include "nlohmann/json.hpp"

namespace moetrain::checkpoint {

class SnapshotReader {
 public:
  static absl::StatusOr<SnapshotReader> Open(const std::string& snapshot_dir);

  SnapshotReader(SnapshotReader&&) = default;
  SnapshotReader& operator=(SnapshotReader&&) = default;

  const std::string& dir() const { return dir_; }
  const nlohmann::json& meta() const { return meta_; }
  int64_t step() const { return step_; }
  int world_size() const { return static_cast<int>(shards_.size()); }
  const std::map<std::string, std::vector<int64_t>>& tensors() const { return tensors_; }
  // field -> the tensors it covers (explicit names, never empty for a non-empty table).
  const std::map<std::string, std::vector<std::string>>& fields() const { return fields_; }
  bool Has(const std::string& field, const std::string& tensor) const;

  // out (product(count) floats, row-major over count) = the hyperslab [offset, offset + count) of
  // (field, tensor). NotFound for an unknown field/tensor; InvalidArgument for a slab outside the
  // tensor; DataLoss when a checksum or read fails.
  absl::Status ReadSlab(const std::string& field, const std::string& tensor,
                        const std::vector<int64_t>& offset, const std::vector<int64_t>& count,
                        float* out) const;
  // The tensor's optimizer step count. NotFound for an unknown tensor.
  absl::StatusOr<int64_t> StepCount(const std::string& tensor) const;
  // Blob `name` of rank `rank`'s shard. NotFound when absent.
  absl::StatusOr<std::string> ReadBlob(int rank, const std::string& name) const;
  // Reads every dataset and blob of every shard; one DataLoss error listing every failure.
  absl::Status Verify() const;
  // Number of datasets (records + blobs) over all shards.
  int64_t num_datasets() const;

 private:
  struct PieceRef {
    int shard;
    int piece;
  };
  SnapshotReader() = default;

  std::string dir_;
  nlohmann::json meta_;
  int64_t step_ = 0;
  std::map<std::string, std::vector<int64_t>> tensors_;
  std::map<std::string, std::vector<std::string>> fields_;
  std::vector<ShardFile> shards_;
  std::map<std::pair<std::string, std::string>, std::vector<PieceRef>> pieces_;
  std::map<std::string, int64_t> steps_;
};

// For `--resume auto`: the newest snapshot under `root` that opens and verifies. Tries the target
// of ROOT/latest first, then the other complete step-* directories, newest first. Each snapshot
// passed over is appended to `skipped` (may be null) as "DIR: reason". NotFound (listing every
// reason) when none verifies: callers asked to resume must then fail, never start from scratch.
absl::StatusOr<std::string> FindLatestValid(const std::string& root,
                                            std::vector<std::string>* skipped);

}  // namespace moetrain::checkpoint

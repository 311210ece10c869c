// SnapshotWriter: the commit protocol of a sharded snapshot (docs/checkpoint_format.md).
//
//   writer.Begin(root, step);                  // collective: rank 0 makes ROOT/.tmp-step-N/
//   writer.StartShardWrite(records, blobs);    // async: background thread writes shard-RRRRR.h5
//   ... keep training ...
//   writer.Commit(contents, state);            // collective: wait, agree, publish
//
// Commit waits for this rank's shard write, then every rank learns every rank's outcome (an
// AllGather of a short message per rank, so an error on one rank reaches all and nobody hangs).
// If all succeeded, rank 0 writes meta.json, fsyncs it and the tmp dir, renames the tmp dir to
// step-N (an older step-N is moved aside first), fsyncs ROOT, replaces ROOT/latest atomically and
// applies retention (keep the newest `keep`; remove stale .tmp-*), then broadcasts its outcome.
// Every rank returns the same status. On any failure nothing is renamed, `latest` is untouched and
// rank 0 removes the tmp dir (to free the space).
// REQUIRES: all ranks share ROOT's file system; every rank calls Begin and Commit in the same order
// (from the thread that owns the communicator). Not thread-safe; not copyable.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "checkpoint/async_shard_writer.h"
#include "checkpoint/shard_file.h"
#include "nlohmann/json.hpp"
#include "parallel/communicator.h"

namespace moetrain::checkpoint {

// What a complete snapshot must contain: the tensor table and the fields.
struct SnapshotContents {
  std::map<std::string, std::vector<int64_t>> tensors;  // name -> global shape
  // field -> the tensors it covers; an empty list means every tensor of `tensors`.
  std::map<std::string, std::vector<std::string>> fields;
};

class SnapshotWriter {
 public:
  // comm: the world (nullptr = a world of one); not owned, must outlive the writer. keep: number
  // of complete snapshots retention keeps (<= 0: all).
  SnapshotWriter(parallel::Communicator* comm, int keep);
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Collective. Rank 0 creates ROOT (if needed) and a fresh ROOT/.tmp-step-N/ (removing a stale
  // one); all ranks return rank 0's outcome. Waits for a previous shard write still in flight.
  absl::Status Begin(const std::string& root, int64_t step);
  // This rank's shard path inside the tmp dir (valid after Begin).
  const std::string& shard_path() const { return shard_path_; }
  // Writes this rank's shard now, on this thread.
  absl::Status WriteShard(const std::vector<ShardRecord>& records,
                          const std::map<std::string, std::string>& blobs);
  // Hands the shard to the background writer and returns at once; Commit collects the result.
  absl::Status StartShardWrite(std::vector<ShardRecord> records,
                               std::map<std::string, std::string> blobs);
  // True when this rank's shard write is not in flight.
  bool ShardWriteDone() const { return async_.Done(); }
  // Collective; see the header comment. `state` (a JSON object) goes to meta.json's "state".
  absl::Status Commit(const SnapshotContents& contents, const nlohmann::json& state);

  const std::string& final_dir() const { return final_dir_; }  // ROOT/step-N

 private:
  // Publishes the snapshot (rank 0 only).
  absl::Status Publish(const SnapshotContents& contents, const nlohmann::json& state);

  parallel::Communicator* comm_;
  int keep_;
  int rank_ = 0;
  int world_size_ = 1;
  std::string root_;
  int64_t step_ = -1;
  std::string tmp_dir_;
  std::string final_dir_;
  std::string shard_path_;
  absl::Status local_;  // this rank's first failure since Begin
  bool began_ = false;
  AsyncShardWriter async_;
};

// The meta.json document of a snapshot (exposed for tests and tools).
nlohmann::json MakeSnapshotMeta(int64_t step, int world_size, const SnapshotContents& contents,
                                const nlohmann::json& state);

}  // namespace moetrain::checkpoint

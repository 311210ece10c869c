// The training state <-> sharded snapshot (checkpoint/): which records each rank writes, and how any
// rank of any layout reads back exactly the slices it needs (resharding).
//
// Fields: "param" (fp32 master weights, plus the replicated router-bias buffers), "exp_avg",
// "exp_avg_sq" (AdamW moments; trained tensors only). Every element of every tensor is written by
// exactly one rank: ZeRO >= 1 chunks are disjoint; stage-0 replicas are written by dp (edp) rank 0;
// tensors replicated over tp by tp rank 0; buffers by world rank 0. A rank's chunk of a unit is a
// flat range of each tp-local tensor, cut into hyperslabs (checkpoint/hyperslab.h) shifted to the
// global tensor along the tp split dimension.
#pragma once

#include <vector>

#include "checkpoint/shard_file.h"
#include "checkpoint/snapshot_reader.h"
#include "checkpoint/snapshot_writer.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"

namespace moetrain::trainer {

struct SnapshotRanks {  // this rank's position in the groups that decide who writes what
  int world = 0, dp = 0, edp = 0, tp = 0;
};

// Host copies of this rank's share of the state (safe to hand to a background writer).
std::vector<checkpoint::ShardRecord> CollectShardRecords(const model::Model<float>& model,
                                                         optim::ZeroOptimizer<float>& zero,
                                                         const SnapshotRanks& ranks);
// OK when the snapshot's tensor table matches `table` (names and global shapes; buffers may be
// absent). Otherwise FailedPrecondition listing every mismatch, naming the snapshot and `what`.
absl::Status CheckSnapshotTable(const checkpoint::SnapshotReader& reader,
                                const model::ParamTable& table, const std::string& what);
// The table and fields a complete snapshot of this model must contain.
checkpoint::SnapshotContents ContentsOf(const model::ParamTable& table);

// Loads master weights, moments, step counts and buffers for this rank's layout from a snapshot of
// any layout. First checks the snapshot's tensor table against the model's (every mismatch listed,
// nothing read). with_optimizer = false (or a snapshot without moments, e.g. an import): moments
// and step counts start at zero. Rewrites the model's compute copies.
absl::Status LoadTrainState(const checkpoint::SnapshotReader& reader, model::Model<float>& model,
                            optim::ZeroOptimizer<float>& zero, bool with_optimizer);

}  // namespace moetrain::trainer

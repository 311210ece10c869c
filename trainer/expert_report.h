// Expert utilisation reports (`moetrain experts`): from a metrics file's per-step expert loads, or
// from a snapshot's router biases (a snapshot holds no loads).
//
// Metrics file: the step events of the LAST run in the file (the lines after its last "start"
// event) that carry "expert_load"; the loads of the last `last_steps` of them are summed. Per MoE
// layer: each expert's share of the layer's routed tokens (shares sum to 1), the imbalance max/mean
// (1 = perfectly balanced; top-k routing sends k rows per token, so mean = k * tokens / experts),
// and the dead experts: 0 tokens over the whole window. Note that logged steps are every
// logging.every_steps, so the window is `last_steps` LOGGED steps, not consecutive ones.
//
// Snapshot: per MoE layer the aux-loss-free selection bias b_e of every expert
// (block_sparse_moe.gate.e_score_correction_bias; a strongly positive b_e means the balancer has
// been pushing tokens TO an under-loaded expert). With aux-loss balancing there is no bias: the
// report says so and points at the run's metrics file (from the snapshot's recipe).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/metrics.h"

namespace moetrain::trainer {

struct ExpertLoadWindow {
  std::string source;               // the metrics file
  std::vector<int64_t> moe_layers;  // model layer of each row (from the start event; else 0..L-1)
  int64_t first_step = 0, last_step = 0;  // steps of the first and last event summed
  int64_t num_steps = 0;            // step events summed
  ExpertLoad tokens;                // summed loads: [MoE layer][expert]
};

// Reads the window of the last `last_steps` (>= 1) logged steps of the last run in `path`.
// Errors: NotFound (cannot open); InvalidArgument "PATH:LINE: ..." for a line that is not a JSON
// object, or an expert_load that is not a list of integer lists or changes shape; NotFound when
// the last run has no step event with expert_load.
absl::StatusOr<ExpertLoadWindow> ReadExpertLoads(const std::string& path, int64_t last_steps);

struct LayerUtilisation {
  int64_t moe_index = 0;         // row in the window
  int64_t layer = 0;             // model layer index
  int64_t total_tokens = 0;      // routed rows over the window
  std::vector<double> share;     // per expert: tokens / total_tokens (0 when total is 0)
  double imbalance = 0;          // max / mean tokens per expert; 0 when total is 0
  std::vector<int64_t> dead;     // experts with 0 tokens over the window
};

std::vector<LayerUtilisation> SummarizeExpertLoads(const ExpertLoadWindow& window);

// The report as text: a header naming the source and window, a table with one row per MoE layer
// (layer, tokens, max/mean, min and max share, dead experts), then each layer's shares in percent.
std::string FormatExpertReport(const ExpertLoadWindow& window,
                               const std::vector<LayerUtilisation>& layers);

// The router-bias report of a snapshot directory (text), or the note that it has none.
// Errors: those of checkpoint::SnapshotReader::Open / ReadSlab (naming the snapshot).
absl::StatusOr<std::string> SnapshotExpertReport(const std::string& snapshot_dir);

}  // namespace moetrain::trainer

// Run metrics: the JSON-lines metrics file (logging.metrics_file) and the Prometheus textfile
// (logging.prometheus_file) for node_exporter's textfile collector. docs/metrics.md has the format.
//
// JSON lines: one object per line, appended (earlier runs stay; each run starts with an
// {"event": "start", ...} line). Events: start, step, skipped_step, eval, interrupted, final, memory,
// sample. A step event carries "expert_load": [[tokens per expert] per MoE layer], the global
// (summed over dp) tokens routed to each expert over the step's micro-batches.
//
// Prometheus: the whole file is rewritten atomically (a temp file in the same directory, fsync,
// rename) on every step event and after every eval, so the collector never reads half a file.
// A failed Prometheus write after Open is logged once as a warning and training goes on: a
// monitoring file must not end a run.
//
// Rank 0 speaks for the run: other ranks never Open, and every call is then a no-op.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace moetrain::trainer {

// Per MoE layer, tokens per expert (a model's expert_counts() layout).
using ExpertLoad = std::vector<std::vector<int64_t>>;

// sum += add, element-wise; an empty `sum` takes add's shape.
// REQUIRES: same shape when sum is not empty.
void AccumulateExpertLoad(const ExpertLoad& add, ExpertLoad* sum);

// Max over MoE layers of (max tokens per expert / mean tokens per expert); 1 = perfectly balanced,
// 0 when no layer saw a token.
double LoadImbalance(const ExpertLoad& load);

// What one logged step reports (the "step" event's keys).
struct StepMetrics {
  int64_t step = 0;          // optimizer steps done (1-based)
  double loss = 0;           // cross-entropy, mean over the step's micro-batches
  double aux_loss = 0;
  double lr = 0;
  double grad_norm = 0;      // global L2 norm before clipping
  double tokens_per_s = 0;   // global tokens per second since the previous log line
  double mfu = 0;            // model FLOPs utilisation, 0..1
  double eta_s = 0;
  double batch_hash = 0;     // global batch fingerprint (layout-independence tests)
  double elapsed_s = 0;
  double loss_scale = 1;
  int64_t experts_skipped = 0;
  ExpertLoad expert_load;    // tokens per expert per MoE layer over the step
};

// The step event as JSON: {"event": "step", "step", "loss", ..., "load_imbalance", "expert_load"}.
nlohmann::json StepEventJson(const StepMetrics& m);

// The Prometheus gauges at one moment. NaN values (no eval yet) leave their metric out.
struct PrometheusSnapshot {
  StepMetrics step;
  int64_t total_steps = 0;
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  int64_t skipped_steps_total = 0;
};

// The text exposition format (version 0.0.4): "# HELP" and "# TYPE" lines then one sample line per
// series, e.g. moetrain_expert_load{layer="0",expert="3"} 517. `layer` is the MoE layer index
// (0 = the first MoE layer), as in "expert_load".
std::string RenderPrometheusText(const PrometheusSnapshot& s);

// Writes `contents` to `path` atomically: `path`.tmp.<pid> in the same directory, fsync, rename,
// then fsync of the directory. On error nothing at `path` changes and the temp file is removed.


class MetricsWriter {
 public:
  MetricsWriter() = default;
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  // Opens the JSON-lines file for appending and checks the Prometheus file can be written (it
  // writes the first version: step, total steps, skipped steps). "" turns either off.
  // Errors: FailedPreconditionError naming the file.
  absl::Status Open(const std::string& jsonl_path, const std::string& prometheus_path = "",
                    int64_t start_step = 0, int64_t total_steps = 0);

  // Appends one event line (flushed). No-op when no JSON-lines file is open.
  void Write(const nlohmann::json& event);

  // The step event, and the Prometheus file.
  void WriteStep(const StepMetrics& m);
  // The eval event ({"event": "eval", "step", "val_loss", "unigram_val_loss"}) and the Prometheus
  // file with the new val loss.
  void WriteEval(int64_t step, double val_loss, double unigram_val_loss);
  // The final event ({"event": "final", "step", "val_loss", "unigram_val_loss"}) and the
  // Prometheus file with the final val loss.
  void WriteFinal(int64_t step, double val_loss, double unigram_val_loss);
  // The skipped_step event; counts it for moetrain_skipped_steps_total.
  void WriteSkippedStep(int64_t step, double loss_scale, double new_loss_scale);

 private:
  void WritePrometheus();

  std::ofstream jsonl_;
  std::string prometheus_path_;
  PrometheusSnapshot prom_;
  bool prometheus_warned_ = false;
};

}  // namespace moetrain::trainer

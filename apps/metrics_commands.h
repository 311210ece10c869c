// `moetrain plot` and `moetrain experts`: flags and the code behind them (docs/metrics.md).
//
//   moetrain plot METRICS.jsonl --out DIR [--run N]
//     runs the embedded scripts/plot_metrics.py with $MOETRAIN_PYTHON, else the first of python3
//     on PATH and /usr/bin/python3 that imports matplotlib:
//     loss / val loss, LR, grad norm, tokens/s and an expert-load heatmap as PNGs in DIR.
//   moetrain experts METRICS.jsonl|SNAPSHOT_DIR [--last N]
//     per-layer expert utilisation, imbalance and dead experts over the last N logged steps of a
//     metrics file; for a snapshot, the router bias per expert (a snapshot holds no loads).
// Errors name the file or flag at fault; a missing matplotlib says `pip install matplotlib`.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace moetrain::apps {

struct PlotFlags {
  std::string metrics;  // JSON-lines metrics file
  std::string out_dir;  // where the PNGs go (created)
  int run = -1;         // which run in the file: 0 = first, -1 = last
  void Add(CLI::App* app);
};

// Runs the plot script and waits for it. Errors: FailedPrecondition when python3 or matplotlib is
// missing (with the install hint); InvalidArgument with the script's message on bad input.
absl::Status RunPlot(const PlotFlags& flags);

struct ExpertsFlags {
  std::string path;        // metrics file, or a snapshot directory
  int64_t last_steps = 10;  // window: the last N logged steps
  void Add(CLI::App* app);
};

// Prints the report to stdout.
absl::Status RunExperts(const ExpertsFlags& flags);

}  // namespace moetrain::apps

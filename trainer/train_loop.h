// The training loop of `moetrain train` (single process; distributed layouts come with parallel/).
//
// RunTraining: loads the tokenizer and token shards named by the recipe (checking they belong
// together), plans the model, optimizer and batch buffers up front (and logs the plan), then for each
// step: grad_accum micro-batches of forward + backward (gradients averaged), global-norm clipping,
// AdamW at the scheduled LR, aux-loss-free bias update, one log line (and a JSON line in
// logging.metrics_file) every logging.every_steps; evaluation on the validation split every
// eval.every_steps and at the end, reported next to the unigram baseline; finally samples
// continuations of sample.prompts. `stop` (set by a SIGINT handler) ends the run cleanly at the next
// step boundary. Nothing inside the step loop allocates tensor memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/process_groups.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {

struct TrainOptions {
  const std::atomic<bool>* stop = nullptr;  // checked after every step
  // Preemption (SIGUSR1 / SIGTERM under SLURM): like `stop`, and a snapshot is written to
  // checkpoint.dir even when checkpoint.every_steps is 0; result.preempted tells the caller to exit
  // with the requeue code (slurm/README.md).
  const std::atomic<bool>* preempt = nullptr;
  bool dry_run = false;                     // plan and report memory, do not train
  // The process groups of a multi-rank run (built from trainer::ResolveLayout); nullptr = a world
  // of one. Every rank of the world calls RunTraining with the same recipe.
  parallel::ProcessGroups* groups = nullptr;
  // If set, each rank writes the parameters it holds at the end to DIR/rank<R>.safetensors (fp32,
  // HF names): a test and debugging aid until checkpoints land.
  std::string dump_params_dir;
  // "" or "none": start from the seeded init; "auto": the newest snapshot under checkpoint.dir that
  // verifies (a fresh start when there is none at all; an error when none of several verifies); or
  // a snapshot directory. Resuming restores weights, optimizer state, step and loss scaler.
  std::string resume;
  // A snapshot (any layout; e.g. from `moetrain import`) to take the weights from, with a fresh
  // optimizer and step 0 (fine-tuning).
  std::string init_from;
};

struct TrainResult {
  int64_t steps_done = 0;
  bool interrupted = false;
  bool preempted = false;  // interrupted by `preempt` on some rank (same on every rank)
  bool preempt_saved = false;  // ... and the snapshot of the last step is complete
  double final_train_loss = 0;
  double final_val_loss = 0;
  double unigram_val_loss = 0;
  int64_t start_step = 0;        // > 0 when resumed
  int64_t skipped_steps = 0;     // non-finite gradients (loss scaler)
  size_t planned_bytes = 0;      // this rank's memory plan (the --dry-run figure)
  size_t peak_rss_bytes = 0;     // measured peak resident memory of this rank
  std::vector<std::string> samples;  // prompt + continuation, one per prompt
};

absl::StatusOr<TrainResult> RunTraining(const Recipe& recipe, const TrainOptions& options);

}  // namespace moetrain::trainer

// Training recipes: the YAML file that fully describes one training run, as plain structs.
//
// A recipe has these top-level keys (docs/recipes.md lists every key with its type, default and
// range):
//
//   mode:       pretrain | finetune | distill           (distill: refused in this build)
//   model:      every model::ModelConfig field under its HF name; vocab_size may be `auto`
//   data:       tokenizer, shards                       (both required; shards not in finetune mode)
//   optim:      lr, betas, eps, weight_decay, grad_clip
//   schedule:   warmup_steps, decay, min_lr, total_steps (trainer/lr_schedule.h)
//   batch:      micro_batch, grad_accum, seq_len
//   parallel:   tp, ep, ep_dispatch, ranks_per_node, zero_stage
//   precision:  fp32 | bf16 | fp16
//   loss_scale: initial, growth_factor, backoff_factor, growth_interval, hysteresis, min  (fp16)
//   activation_checkpointing: none | full | selective, or {mode: ..., every: n}
//   logging:    every_steps, metrics_file, prometheus_file
//   eval:       every_steps, batches
//   checkpoint: dir, every_steps, keep, async
//   sample:     prompts, max_new_tokens, temperature, top_p, seed
//   mode:       pretrain | finetune | distill
//   distill:    teacher, alpha, temperature                 (mode distill; docs/distill.md)
//   finetune:   train_file, val_file, val_fraction, prompt_field, response_field, init_from,
//               freeze_router, freeze_non_expert, lr_multipliers {experts, shared_experts, router,
//               attention, embeddings, norms, dense_mlp}       (docs/finetune.md; mode: finetune)
//   seed, threads
//
// Every field has a default (below), except data.tokenizer and data.shards, which are required.
//
// Loading is strict and happens before any work: unknown keys (with a "did you mean" suggestion),
// duplicate keys, wrong types (a string, float, list or mapping where an integer is expected,
// quoted numbers, ...), out-of-range values, inconsistent values (heads % kv_heads, top-k >
// experts, warmup_steps > total_steps, seq_len > max_position_embeddings, ...), features that are
// not implemented yet, and YAML syntax errors all give absl::InvalidArgumentError. Its message has
// one line per problem found, each of the form
//
//   FILE:LINE:COL: key.path: what is wrong
//
// with 1-based LINE and COL of the offending value (or key), or `--set key.path` in place of
// FILE:LINE:COL when the value came from an override. Type errors are all reported together; range
// and consistency checks run only when there are none, after the overrides are applied.
//
// Overrides are strings "key.path=value" (the CLI's `--set key.path=value`). The value is parsed as
// a YAML flow value, so `optim.betas=[0.9,0.99]`, `sample.prompts=["Q: Why", "A: "]` and
// `model.vocab_size=auto` work; an empty value is YAML null (allowed for strings: ""). A path may
// name a whole section when the value is a flow mapping (`optim={lr: 1e-3, eps: 1e-6}`). Overrides
// apply in order, after the file, so a later one wins.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/model_options.h"
#include "optim/loss_scaler.h"
#include "trainer/lr_schedule.h"

namespace moetrain::trainer {

// Numeric precision of the training step (docs/precision.md): fp32, or bf16 / fp16 compute copies
// with fp32 master weights; fp16 uses the dynamic loss scaler.
enum class Precision { kFp32, kBf16, kFp16 };

// "fp32", "bf16" or "fp16": the spelling used in recipes.
std::string_view PrecisionName(Precision precision);
// kF32, kBF16 or kF16.
DType ComputeDType(Precision precision);

// Dynamic loss scaling (optim/loss_scaler.h). Allowed with any precision; used with fp16 (bf16 and
// fp32 run a static scale of 1).
struct LossScaleConfig {
  double initial = 65536.0;        // 2^16; finite, > 0 and >= min
  double growth_factor = 2.0;      // > 1
  double backoff_factor = 0.5;     // in (0, 1)
  int64_t growth_interval = 1000;  // consecutive good steps before growing; >= 1
  int64_t hysteresis = 2;          // overflows tolerated before backing off; >= 1
  double min = 1.0;                // > 0: the scale never backs off below it
};

// Activation checkpointing (model/model_options.h). In YAML either a scalar (the mode) or a mapping
// {mode: none | full | selective, every: n}.
struct ActivationCheckpointingConfig {
  model::ActivationCheckpointing mode = model::ActivationCheckpointing::kNone;
  int every = 1;  // checkpoint layers l with l % every == 0; >= 1
};

// "none", "full" or "selective".
std::string_view ActivationCheckpointingName(model::ActivationCheckpointing mode);

struct DataConfig {
  std::string tokenizer;  // REQUIRED, non-empty: path to a SentencePiece .model file
  std::string shards;     // REQUIRED, non-empty: path to a prepared token-shard directory
};

// What a run trains for: pretraining on token shards, or supervised fine-tuning on JSONL prompt /
// response pairs (docs/finetune.md), or distillation from a frozen teacher on token shards
// (docs/distill.md).
enum class TrainMode { kPretrain, kFinetune, kDistill };
std::string_view TrainModeName(TrainMode mode);  // "pretrain", "finetune", "distill"

// Learning-rate multipliers per parameter role (model/param_role.h); each finite and >= 0, 0 = frozen.
struct LrMultipliers {
  double experts = 1.0;
  double shared_experts = 1.0;
  double router = 1.0;
  double attention = 1.0;
  double embeddings = 1.0;
  double norms = 1.0;
  double dense_mlp = 1.0;
};

// `finetune:` (used when mode is finetune; docs/finetune.md).
struct FinetuneConfig {
  std::string train_file;                  // REQUIRED in finetune mode: JSONL prompt / response pairs
  std::string val_file;                    // "" = hold out val_fraction of train_file
  double val_fraction = 0.05;              // in (0, 1) when val_file is ""
  std::string prompt_field = "prompt";     // non-empty JSON field names
  std::string response_field = "response";
  std::string init_from;                   // snapshot to take weights from ("" = seeded init);
                                           // `moetrain train --init-from DIR` wins over it
  bool freeze_router = false;              // router multiplier 0 and no aux-loss-free bias updates
  bool freeze_non_expert = false;          // every role but experts and shared_experts frozen
  LrMultipliers lr_multipliers;
};

struct OptimConfig {
  double lr = 3e-4;                           // peak learning rate; > 0
  std::array<double, 2> betas = {0.9, 0.95};  // AdamW beta1, beta2; each in [0, 1)
  double eps = 1e-8;                          // > 0
  double weight_decay = 0.1;                  // >= 0 (decoupled, AdamW)
  double grad_clip = 1.0;                     // max global gradient L2 norm; >= 0, 0 = off
  // Abort the run after this many consecutive steps skipped for a non-finite gradient (bf16/fp32;
  // fp16 only once the loss scale sits at loss_scale.min); >= 0, 0 = never (docs/faults.md).
  int64_t max_consecutive_skips = 5;
};

struct BatchConfig {
  int64_t micro_batch = 8;  // sequences per micro-step over ALL data-parallel ranks (the global
                            // micro-batch, so the global batch does not depend on the layout);
                            // > 0 and divisible by dp at launch
  int64_t grad_accum = 1;   // micro-batches per optimizer step; > 0
  int64_t seq_len = 256;    // tokens per sequence; > 0 and <= model.max_position_embeddings
};

struct LoggingConfig {
  int64_t every_steps = 10;  // log training metrics every N optimizer steps; >= 1
  std::string metrics_file;  // JSON-lines metrics path; "" = no metrics file
  std::string prometheus_file;  // Prometheus textfile (node_exporter's textfile collector), rewritten
                                // atomically every every_steps; "" = off (docs/metrics.md)
};

struct EvalConfig {
  int64_t every_steps = 0;  // evaluate every N steps; >= 0, 0 = only at the end of the run
  int64_t batches = 8;      // validation micro-batches per evaluation; > 0
};

// Sharded snapshots (docs/checkpoint_format.md): every every_steps steps, at the end of the run and
// when stopped; `moetrain train --resume auto` continues from the newest one that verifies.
struct CheckpointConfig {
  std::string dir = "checkpoints";  // where snapshots go
  int64_t every_steps = 0;          // >= 0; 0 = off
  int64_t keep = 3;                 // snapshots kept; >= 0, 0 = keep all
  bool async = true;                // write snapshots in the background
};

struct SampleConfig {
  std::vector<std::string> prompts;  // texts to continue after training; empty = no sampling
  int64_t max_new_tokens = 64;       // >= 0 and <= model.max_position_embeddings
  double temperature = 0.8;          // > 0
  double top_p = 0.95;               // nucleus sampling mass; in (0, 1]
  uint64_t seed = 0;                 // sampling RNG seed
};

enum class EpDispatch { kFlat, kHierarchical };
std::string_view EpDispatchName(EpDispatch mode);

// Parallel layout. dp is derived at launch: dp = world / tp (ep divides dp; edp = dp / ep).
struct ParallelConfig {
  int64_t tp = 1;                          // tensor parallel size; >= 1 (only 1 is implemented)
  int64_t ep = 1;                          // expert parallel size; >= 1, divides num_local_experts
  EpDispatch ep_dispatch = EpDispatch::kFlat;  // flat | hierarchical (node-aware two-stage exchange)
  int64_t ranks_per_node = 0;              // 0 = from hostnames; > 0 forms "nodes" of that many ranks
  int64_t zero_stage = 0;                  // ZeRO: 0 off, 1 optimizer state, 2 + gradients,
                                           // 3 + parameters sharded over dp (experts over edp)
  // A collective that blocks longer than this ends the job (parallel/collective_watchdog.h);
  // >= 0, 0 = off.
  double collective_timeout_s = 600;
};

// Knowledge distillation from a frozen teacher (mode: distill; docs/distill.md). Loss =
// alpha * temperature^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE.
struct DistillConfig {
  std::string teacher;       // snapshot directory of the teacher (any layout); required in distill
  double alpha = 0.7;        // weight of the KL term; in [0, 1]
  double temperature = 2.0;  // softmax temperature T; > 0
};

// The model section's default: model::ModelConfig's defaults, with vocab_size taken from the
// tokenizer.
model::ModelConfig DefaultRecipeModel();

struct Recipe {
  TrainMode mode = TrainMode::kPretrain;
  model::ModelConfig model = DefaultRecipeModel();
  // true when the recipe says `vocab_size: auto` (the default): model.vocab_size is then 0 until
  // ResolveVocabSize fills it in from the tokenizer.
  bool vocab_size_auto = true;
  DataConfig data;
  OptimConfig optim;
  ScheduleConfig schedule;
  BatchConfig batch;
  ParallelConfig parallel;
  Precision precision = Precision::kFp32;
  LossScaleConfig loss_scale;
  ActivationCheckpointingConfig activation_checkpointing;
  LoggingConfig logging;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  SampleConfig sample;
  DistillConfig distill;
  FinetuneConfig finetune;
  uint64_t seed = 1234;  // seeds init and data order
  int threads = 0;       // CPU threads; >= 0, 0 = all cores
};

// Reads the file at `path` and parses it as ParseRecipe(text, path, overrides) does.
// Errors: NotFoundError when the file cannot be read; otherwise as ParseRecipe.
absl::StatusOr<Recipe> LoadRecipe(const std::string& path,
                                  const std::vector<std::string>& overrides = {});

// Parses and validates `yaml_text`, naming it `display_name` in error messages, then applies
// `overrides` ("key.path=value" each). Returns a Recipe that passed ValidateRecipe, or
// InvalidArgumentError listing the problems as described at the top of this file.
absl::StatusOr<Recipe> ParseRecipe(const std::string& yaml_text, const std::string& display_name,
                                   const std::vector<std::string>& overrides = {});

// The range, consistency and not-implemented checks of ParseRecipe, for a Recipe built in code.
// Returns OK or InvalidArgumentError with one "key.path: what is wrong" line per problem.
absl::Status ValidateRecipe(const Recipe& recipe);

// The full resolved recipe as YAML: every key, defaults included, in the order of docs/recipes.md.
// ParseRecipe(RecipeToYaml(r), ...) gives back r exactly (doubles are written in shortest
// round-trip form). REQUIRES: nothing; a recipe that fails validation is written as is.
std::string RecipeToYaml(const Recipe& recipe);

// The model's per-run options: compute dtype from precision, activation checkpointing mode / every.
model::ModelOptions ModelOptionsFromRecipe(const Recipe& recipe);

// The loss scaler for the recipe: the loss_scale section's values (LossScaler::Dynamic for fp16;
// bf16 / fp32 use LossScaler::Static()).
optim::LossScalerConfig LossScalerConfigFromRecipe(const Recipe& recipe);

// Fills in model.vocab_size from the tokenizer when the recipe says `auto` (and clears
// vocab_size_auto). With an explicit vocab_size, checks that it covers every tokenizer id.
// Errors: InvalidArgumentError if tokenizer_vocab_size <= 0 or the explicit vocab_size is smaller.
absl::Status ResolveVocabSize(int64_t tokenizer_vocab_size, Recipe* recipe);

}  // namespace moetrain::trainer

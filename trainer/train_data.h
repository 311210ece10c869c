// Where the training loop's rows come from, for every mode: the pretraining token shards (packed
// windows, data/sampler.h) or fine-tuning JSONL (one prompt-masked example per row,
// data/sft_dataset.h). Both give a deterministic, resumable order: a pure function of
// (seed, step, micro, dp rank); and a fixed validation order.
// Thread-safety: immutable after OpenTrainData.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "core/status.h"
#include "data/sampler.h"
#include "data/tokenizer.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {

class TrainData {
 public:
  virtual ~TrainData() = default;
  // Micro-batch `micro` of optimizer step `step` for data-parallel rank `rank`: tokens and targets
  // (micro_batch, seq_len) each, targets model::kIgnoreIndex where no loss is taken.
  virtual void Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const = 0;
  // The global sample index of row i of (step, micro, rank) (data::Sampler's formula).
  virtual int64_t GlobalIndex(int64_t step, int micro, int rank, int64_t i) const = 0;
  // Validation rows in a fixed order: num_eval_rows() of them (capped at the `max_eval_rows` given
  // to OpenTrainData); FillEval writes rows [first, first + count).
  virtual int64_t num_eval_rows() const = 0;
  virtual void FillEval(int64_t first, int64_t count, int32_t* tokens, int32_t* targets) const = 0;
  // The unigram baseline (trainer/unigram.h) fitted to the validation split and scored on
  // `eval_targets` (ignored targets skipped).
  virtual double UnigramValLoss(const int32_t* eval_targets, int64_t n, int64_t vocab) const = 0;
  // Names the validation source in errors; one log line describing both splits; host bytes for
  // the memory plan (label, bytes).
  virtual std::string val_source() const = 0;
  virtual std::string Summary() const = 0;
  virtual std::pair<std::string, size_t> HostMemory() const = 0;
};

// Opens the data the recipe's mode names: pretrain -> data.shards (checked against the
// tokenizer); finetune -> finetune.train_file / val_file (or the held-out fraction). `sampler`
// carries seq_len, per-rank micro_batch, grad_accum, dp world and seed.
// Errors: those of TokenShards::Open / Sampler::Create / SftDataset::Load, each naming the file.
absl::StatusOr<std::unique_ptr<TrainData>> OpenTrainData(const Recipe& recipe,
                                                         const data::Tokenizer& tokenizer,
                                                         const data::SamplerOptions& sampler,
                                                         int64_t max_eval_rows);

// The fine-tuning implementation (trainer/finetune_data.cc).
absl::StatusOr<std::unique_ptr<TrainData>> OpenFinetuneData(const FinetuneConfig& config,
                                                            const data::Tokenizer& tokenizer,
                                                            const data::SamplerOptions& sampler,
                                                            int64_t max_eval_rows);

}  // namespace moetrain::trainer

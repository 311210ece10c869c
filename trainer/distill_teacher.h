// The frozen teacher of `mode: distill` (docs/distill.md).
//
// Load opens a snapshot of any layout, takes the teacher's model config from the recipe stored in
// its meta.json (state.recipe), checks it shares the student's tokenizer (state.tokenizer_checksum
// and vocab_size), creates a model::Model<float> with the student's batch, sequence length and
// process groups (dp / ep as the student; ZeRO stage 0, so every rank holds its full share; tp must
// be 1), and reads its weights straight from the snapshot's "param" field into the model's
// parameters: no optimizer, no gradients are ever applied, nothing writes them after Load.
// Forward runs the teacher on a micro-batch (collective over dp / ep like the student's Forward);
// logits() then holds (batch * seq, vocab) for Model::SetDistillationTarget.
// Errors name the snapshot directory and what is wrong. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/model.h"

namespace moetrain::trainer {

class DistillTeacher {
 public:
  // student_vocab and tokenizer_checksum: the student's; parallel: the student's groups (its
  // zero_stage is ignored). num_threads as Model::Create.
  static absl::StatusOr<std::unique_ptr<DistillTeacher>> Load(const std::string& snapshot_dir,
                                                              const std::string& tokenizer_checksum,
                                                              int64_t student_vocab, int64_t batch,
                                                              int64_t seq, int num_threads,
                                                              const model::ModelParallel& parallel);

  // The teacher's own loss on the batch (its CE is the floor the student's KL pulls toward).
  model::LossBreakdown Forward(const int32_t* tokens, const int32_t* targets) {
    return model_->Forward(tokens, targets);
  }
  const float* logits() const { return model_->logits(); }
  const model::Model<float>& model() const { return *model_; }
  const std::string& dir() const { return dir_; }
  // FNV-1a over the bytes of every parameter and buffer this rank holds: equal before and after
  // training iff the teacher was never written to.
  uint64_t WeightsFingerprint() const;

 private:
  DistillTeacher() = default;
  std::string dir_;
  std::unique_ptr<model::Model<float>> model_;
};

}  // namespace moetrain::trainer

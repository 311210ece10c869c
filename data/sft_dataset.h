// Supervised fine-tuning (SFT) data: JSONL prompt / response pairs as fixed-length training rows
// with the loss masked on the prompt.
//
// File: one JSON object per line, {"prompt": "...", "response": "..."} (field names configurable;
// other fields are ignored; blank lines are skipped). Each example becomes the token sequence
//   x = [eos] prompt response [eos]
// (the leading eos marks a document start, as in the pretraining stream). Row tokens are x[0:T] and
// targets x[1:T+1] (T = seq_len): position t predicts x[t+1]. Every target that is a prompt token
// (t < |prompt|) is model::kIgnoreIndex (-100), so only the response and its closing eos carry
// loss.
//   - Shorter rows are padded: input eos, target -100 (one example per row; no packing, so no
//     example attends to another).
//   - Longer sequences are truncated at the end to T + 1 tokens (counted in SftStats::truncated);
//     an example whose prompt alone fills the row (|prompt| >= T: no response target would remain)
//     is dropped (SftStats::dropped) rather than trained on with zero targets.
//
// Order (SftSampler): exactly data::Sampler's with examples in place of windows: global sample g is
// example IndexPermutation(N, HashPair(seed, g / N))(g % N), with
//   g = (step * grad_accum + micro) * (world * micro_batch) + rank * micro_batch + i,
// so a batch is a pure function of (seed, step, micro, rank): resumable from the step alone.
//
// Validation: a second file, or a held-out fraction of the examples chosen by a seeded permutation
// (SplitHeldOut), disjoint from the training examples.
// Thread-safety: immutable after Load; Fill may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "data/sampler.h"
#include "data/tokenizer.h"

namespace moetrain::data {

inline constexpr int32_t kSftIgnoreIndex =
    -100;  // == model::kIgnoreIndex (data/ does not see model/)

struct SftOptions {
  std::string prompt_field = "prompt";
  std::string response_field = "response";
  int64_t seq_len = 0;  // T > 0
};

struct SftExample {
  std::vector<int32_t> prompt, response;  // token ids, without eos
  int64_t line = 0;                       // 1-based line in the source file (0 = built in code)
};

struct SftStats {
  int64_t examples = 0;         // kept
  int64_t truncated = 0;        // kept, but cut at seq_len + 1 tokens
  int64_t dropped = 0;          // prompt >= seq_len tokens: no response target would remain
  int64_t prompt_tokens = 0;    // over kept examples, before truncation
  int64_t response_tokens = 0;  // over kept examples, before truncation
  int64_t blank_lines = 0;
};

class SftDataset {
 public:
  // Reads and tokenizes `path`. Errors (each names "<path>:<line>: "): NotFound /
  // FailedPrecondition for the file; InvalidArgument for invalid UTF-8, a line that is not a JSON
  // object, a missing field ("no field \"prompt\""), a field that is not a string;
  // FailedPrecondition when no example is left ("<path>: no usable examples").
  static absl::StatusOr<SftDataset> Load(const std::string& path, const Tokenizer& tokenizer,
                                         const SftOptions& options);
  // From tokenized examples (`source` names it in messages). Same truncation / drop rules.
  // REQUIRES: eos_id >= 0.
  static absl::StatusOr<SftDataset> FromExamples(std::vector<SftExample> examples, int32_t eos_id,
                                                 const SftOptions& options,
                                                 const std::string& source);

  // Splits off round(fraction * size()) examples (at least 1) chosen by a seeded permutation as the
  // validation set; the rest stay in training. Errors: InvalidArgument unless 0 < fraction < 1 or
  // when either side would be empty.
  absl::StatusOr<std::pair<SftDataset, SftDataset>> SplitHeldOut(double fraction,
                                                                 uint64_t seed) const;

  // Row of example i: tokens (T), targets (T). REQUIRES: 0 <= i < size().
  void FillRow(int64_t i, int32_t* tokens, int32_t* targets) const;

  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  int64_t seq_len() const { return options_.seq_len; }
  const SftStats& stats() const { return stats_; }
  const std::string& source() const { return source_; }
  const SftExample& example(int64_t i) const { return examples_[i]; }
  int32_t eos_id() const { return eos_id_; }

 private:
  SftDataset() = default;
  std::vector<SftExample> examples_;
  SftOptions options_;
  SftStats stats_;
  std::string source_;
  int32_t eos_id_ = -1;
};

// The deterministic, resumable order over a dataset's examples (see the header comment).
// Lifetime: does not own the dataset. Thread-safety: immutable.
class SftSampler {
 public:
  // options.seq_len must equal dataset->seq_len(). Errors: InvalidArgument for non-positive
  // options or a seq_len mismatch.
  static absl::StatusOr<SftSampler> Create(const SftDataset* dataset,
                                           const SamplerOptions& options);
  // tokens, targets: (micro_batch, seq_len). REQUIRES as data::Sampler::Fill.
  void Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const;
  int64_t GlobalIndex(int64_t step, int micro, int rank, int64_t i) const;
  // The example read by global sample g >= 0.
  int64_t ExampleOf(int64_t g) const;

 private:
  SftSampler() = default;
  const SftDataset* dataset_ = nullptr;
  SamplerOptions options_;
};

}  // namespace moetrain::data

// Deterministic, resumable, distributed sampling of fixed-length training sequences.
//
// Windows: a token stream of N tokens is cut into W = (N - 1) / seq_len windows; window w is the
// seq_len + 1 tokens starting at w * seq_len, so neighbouring windows share one token and every
// token after the first is a target exactly once per epoch (the tail that does not fill a window is
// unused). A sequence's tokens are window[0:seq_len] and its targets window[1:seq_len+1]. Windows
// cross document boundaries; documents are separated by eos in the stream (packed sequences).
//
// Order: global sample g (counted from 0 over the whole run) is in epoch e = g / W at position
// p = g % W and reads window IndexPermutation(W, HashPair(seed, e))(p) (data/permutation.h): each
// epoch visits every window exactly once, in a seeded order of its own. The sample for
// (step, micro, rank, i) is
//   g = (step * grad_accum + micro) * (world * micro_batch) + rank * micro_batch + i,
// so a batch is a pure function of (seed, step, micro, rank): no state, resume needs only the step,
// and within an epoch different ranks and micro-steps never share a window. `rank`/`world` are the
// data-parallel rank and size (ranks of one tensor/pipeline group pass the same data rank).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace moetrain::data {

struct SamplerOptions {
  int64_t seq_len = 0;      // T: tokens per sequence; > 0
  int64_t micro_batch = 1;  // B: sequences per rank per micro-step; > 0
  int grad_accum = 1;       // micro-steps per optimizer step; > 0
  int world = 1;            // data-parallel ranks; > 0
  uint64_t seed = 0;        // data-order seed
};

// Lifetime: does not own the tokens; they must outlive the Sampler (e.g. a TokenShards).
// Thread-safety: immutable; Fill may be called concurrently.
class Sampler {
 public:
  // `source` names the stream in errors (e.g. "shards/train.bin").
  // Errors: InvalidArgument for a non-positive option; FailedPrecondition
  // "<source>: corpus too small for one sequence of T tokens: has N (needs T + 1)".
  static absl::StatusOr<Sampler> Create(const int32_t* tokens, int64_t num_tokens,
                                        const SamplerOptions& options,
                                        const std::string& source = "token stream");

  // Writes micro-batch `micro` of optimizer step `step` for data-parallel rank `rank`:
  // tokens (micro_batch, seq_len) and targets (micro_batch, seq_len), row-major.
  // REQUIRES: step >= 0, 0 <= micro < grad_accum, 0 <= rank < world, buffers of
  // micro_batch * seq_len int32 each.
  void Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const;

  // The global sample index of sequence i of (step, micro, rank) (see header comment).
  int64_t GlobalIndex(int64_t step, int micro, int rank, int64_t i) const;
  // The window read by global sample g >= 0.
  int64_t WindowOf(int64_t g) const;

  int64_t num_windows() const { return num_windows_; }
  // world * micro_batch * grad_accum.
  int64_t sequences_per_step() const;
  // Epochs completed before `step` starts (fractional).
  double EpochAt(int64_t step) const;
  const SamplerOptions& options() const { return options_; }

 private:
  Sampler() = default;
  const int32_t* tokens_ = nullptr;
  int64_t num_tokens_ = 0;
  int64_t num_windows_ = 0;
  SamplerOptions options_;
};

// Evaluation sequences: the first windows of a (validation) stream in order, no shuffling, with
// the same window definition as Sampler. Lifetime and thread-safety as for Sampler.
class EvalSampler {
 public:
  // max_windows <= 0 means every window. Errors as for Sampler::Create.
  static absl::StatusOr<EvalSampler> Create(const int32_t* tokens, int64_t num_tokens,
                                            int64_t seq_len, int64_t max_windows,
                                            const std::string& source = "token stream");
  // Writes windows [first, first + count): tokens and targets (count, seq_len) each.
  // REQUIRES: 0 <= first, count >= 0, first + count <= num_windows().
  void Fill(int64_t first, int64_t count, int32_t* tokens, int32_t* targets) const;
  int64_t num_windows() const { return num_windows_; }
  int64_t seq_len() const { return seq_len_; }

 private:
  EvalSampler() = default;
  const int32_t* tokens_ = nullptr;
  int64_t seq_len_ = 0;
  int64_t num_windows_ = 0;
};

}  // namespace moetrain::data

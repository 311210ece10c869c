#include "data/sampler.h"

#include <algorithm>
#include <cstring>

#include "data/hash.h"
#include "data/permutation.h"

namespace moetrain::data {
namespace {

absl::Status CheckLength(const int32_t* tokens, int64_t num_tokens, int64_t seq_len,
                         const std::string& source) {
  if (seq_len <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("seq_len must be > 0, got ", seq_len));
  }
  if (num_tokens < seq_len + 1 || tokens == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(source, ": corpus too small for one sequence of ", seq_len, " tokens: has ",
                     num_tokens, " (needs ", seq_len + 1, ")"));
  }
  return absl::OkStatus();
}

// Copies window w into one row of tokens and targets.
void CopyWindow(const int32_t* stream, int64_t seq_len, int64_t w, int32_t* tokens,
                int32_t* targets) {
  const int32_t* src = stream + w * seq_len;
  std::memcpy(tokens, src, static_cast<size_t>(seq_len) * sizeof(int32_t));
  std::memcpy(targets, src + 1, static_cast<size_t>(seq_len) * sizeof(int32_t));
}

}  // namespace

absl::StatusOr<Sampler> Sampler::Create(const int32_t* tokens, int64_t num_tokens,
                                        const SamplerOptions& options, const std::string& source) {
  if (options.micro_batch <= 0 || options.grad_accum <= 0 || options.world <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("sampler options must be positive: micro_batch ",
                                                   options.micro_batch, ", grad_accum ",
                                                   options.grad_accum, ", world ", options.world));
  }
  RETURN_IF_ERROR(CheckLength(tokens, num_tokens, options.seq_len, source));
  Sampler s;
  s.tokens_ = tokens;
  s.num_tokens_ = num_tokens;
  s.num_windows_ = (num_tokens - 1) / options.seq_len;
  s.options_ = options;
  return s;
}

int64_t Sampler::sequences_per_step() const {
  return static_cast<int64_t>(options_.world) * options_.micro_batch * options_.grad_accum;
}

double Sampler::EpochAt(int64_t step) const {
  return static_cast<double>(step) * static_cast<double>(sequences_per_step()) /
         static_cast<double>(num_windows_);
}

int64_t Sampler::GlobalIndex(int64_t step, int micro, int rank, int64_t i) const {
  const int64_t global_micro = static_cast<int64_t>(options_.world) * options_.micro_batch;
  return (step * options_.grad_accum + micro) * global_micro + rank * options_.micro_batch + i;
}

int64_t Sampler::WindowOf(int64_t g) const {
  MT_CHECK_MSG(g >= 0, "global sample index ", g, " < 0");
  const int64_t epoch = g / num_windows_;
  const IndexPermutation perm(num_windows_, HashPair(options_.seed, static_cast<uint64_t>(epoch)));
  return perm(g % num_windows_);
}

void Sampler::Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const {
  MT_CHECK_MSG(step >= 0, "step ", step, " < 0");
  MT_CHECK_MSG(micro >= 0 && micro < options_.grad_accum, "micro ", micro, " outside [0, ",
               options_.grad_accum, ")");
  MT_CHECK_MSG(rank >= 0 && rank < options_.world, "rank ", rank, " outside [0, ", options_.world,
               ")");
  const int64_t T = options_.seq_len;
  const int64_t g0 = GlobalIndex(step, micro, rank, 0);
  // One permutation object per epoch touched (a micro-batch spans at most a few).
  int64_t cached_epoch = -1;
  IndexPermutation perm(1, 0);
  for (int64_t i = 0; i < options_.micro_batch; ++i) {
    const int64_t g = g0 + i;
    const int64_t epoch = g / num_windows_;
    if (epoch != cached_epoch) {
      perm = IndexPermutation(num_windows_, HashPair(options_.seed, static_cast<uint64_t>(epoch)));
      cached_epoch = epoch;
    }
    CopyWindow(tokens_, T, perm(g % num_windows_), tokens + i * T, targets + i * T);
  }
}

absl::StatusOr<EvalSampler> EvalSampler::Create(const int32_t* tokens, int64_t num_tokens,
                                                int64_t seq_len, int64_t max_windows,
                                                const std::string& source) {
  RETURN_IF_ERROR(CheckLength(tokens, num_tokens, seq_len, source));
  EvalSampler e;
  e.tokens_ = tokens;
  e.seq_len_ = seq_len;
  e.num_windows_ = (num_tokens - 1) / seq_len;
  if (max_windows > 0) e.num_windows_ = std::min(e.num_windows_, max_windows);
  return e;
}

void EvalSampler::Fill(int64_t first, int64_t count, int32_t* tokens, int32_t* targets) const {
  MT_CHECK_MSG(first >= 0 && count >= 0 && first + count <= num_windows_, "windows [", first, ", ",
               first + count, ") outside [0, ", num_windows_, ")");
  for (int64_t i = 0; i < count; ++i) {
    CopyWindow(tokens_, seq_len_, first + i, tokens + i * seq_len_, targets + i * seq_len_);
  }
}

}  // namespace moetrain::data

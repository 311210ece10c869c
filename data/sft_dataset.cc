#include "data/sft_dataset.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "data/hash.h"
#include "data/line_reader.h"
#include "data/permutation.h"

namespace moetrain::data {
namespace {

bool HasNonSpace(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c != ' ' && c != '\t' && c != '\r'; });
}

std::string JsonTypeName(const nlohmann::json& j) { return j.type_name(); }

// The string field `name` of object `j` on the reader's current line.
absl::StatusOr<std::string> StringField(const nlohmann::json& j, const std::string& name,
                                        const LineReader& reader) {
  const auto it = j.find(name);
  if (it == j.end()) {
    std::vector<std::string> keys;
    for (const auto& kv : j.items()) keys.push_back(kv.key());
    return absl::InvalidArgumentError(absl::StrCat(reader.Where(), "no field \"", name,
                                                   "\" (keys: ", absl::StrJoin(keys, ", "), ")"));
  }
  if (!it->is_string())
    return absl::InvalidArgumentError(absl::StrCat(reader.Where(), "field \"", name, "\" is a ",
                                                   JsonTypeName(*it), ", expected a string"));
  return it->get<std::string>();
}

// Key of the held-out permutation: distinct from the training order's HashPair(seed, epoch).
constexpr uint64_t kHeldOutKey = 0x5f7ad1e5ull;

}  // namespace

absl::StatusOr<SftDataset> SftDataset::Load(const std::string& path, const Tokenizer& tokenizer,
                                            const SftOptions& options) {
  ASSIGN_OR_RETURN(LineReader reader, LineReader::Open(path));
  std::vector<SftExample> examples;
  int64_t blank = 0;
  std::string_view line;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader.Next(&line));
    if (!more) break;
    if (!HasNonSpace(line)) {
      ++blank;
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line.begin(), line.end());
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(reader.Where(), "malformed JSON: ", e.what()));
    }
    if (!j.is_object())
      return absl::InvalidArgumentError(
          absl::StrCat(reader.Where(), "expected a JSON object per line, got a ", JsonTypeName(j)));
    ASSIGN_OR_RETURN(const std::string prompt, StringField(j, options.prompt_field, reader));
    ASSIGN_OR_RETURN(const std::string response, StringField(j, options.response_field, reader));
    examples.push_back(
        {tokenizer.Encode(prompt), tokenizer.Encode(response), reader.line_number()});
  }
  ASSIGN_OR_RETURN(SftDataset d,
                   FromExamples(std::move(examples), tokenizer.eos_id(), options, path));
  d.stats_.blank_lines = blank;
  return d;
}

absl::StatusOr<SftDataset> SftDataset::FromExamples(std::vector<SftExample> examples,
                                                    int32_t eos_id, const SftOptions& options,
                                                    const std::string& source) {
  if (options.seq_len <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": seq_len must be > 0, got ", options.seq_len));
  MT_CHECK_MSG(eos_id >= 0, "sft dataset: eos id ", eos_id, " < 0");
  SftDataset d;
  d.options_ = options;
  d.source_ = source;
  d.eos_id_ = eos_id;
  const int64_t T = options.seq_len;
  for (SftExample& e : examples) {
    const int64_t P = static_cast<int64_t>(e.prompt.size()),
                  R = static_cast<int64_t>(e.response.size());
    if (P >= T) {  // targets 0..P-1 are prompt tokens: nothing of the response would fit
      ++d.stats_.dropped;
      continue;
    }
    if (2 + P + R > T + 1) ++d.stats_.truncated;
    d.stats_.prompt_tokens += P;
    d.stats_.response_tokens += R;
    d.examples_.push_back(std::move(e));
  }
  d.stats_.examples = d.size();
  if (d.examples_.empty())
    return absl::FailedPreconditionError(
        absl::StrCat(source, ": no usable examples (", d.stats_.dropped,
                     " dropped: prompt of >= seq_len ", T, " tokens)"));
  return d;
}

absl::StatusOr<std::pair<SftDataset, SftDataset>> SftDataset::SplitHeldOut(double fraction,
                                                                           uint64_t seed) const {
  if (!(fraction > 0 && fraction < 1))
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": validation fraction must be in (0, 1), got ", fraction));
  const int64_t n = size();
  const int64_t n_val = std::max<int64_t>(1, std::llround(fraction * n));
  if (n_val >= n)
    return absl::FailedPreconditionError(absl::StrCat(
        source_, ": ", n, " examples are too few to hold out ", n_val, " for validation"));
  // Example perm(k) goes to validation for k < n_val; both sides keep file order.
  const IndexPermutation perm(n, HashPair(seed, kHeldOutKey));
  std::vector<bool> is_val(n, false);
  for (int64_t k = 0; k < n_val; ++k) is_val[perm(k)] = true;
  SftDataset train, val;
  for (SftDataset* d : {&train, &val}) {
    d->options_ = options_;
    d->eos_id_ = eos_id_;
  }
  train.source_ = absl::StrCat(source_, " (train)");
  val.source_ = absl::StrCat(source_, " (held-out validation)");
  for (int64_t i = 0; i < n; ++i) (is_val[i] ? val : train).examples_.push_back(examples_[i]);
  for (SftDataset* d : {&train, &val}) {
    d->stats_.examples = d->size();
    for (const SftExample& e : d->examples_) {
      d->stats_.prompt_tokens += e.prompt.size();
      d->stats_.response_tokens += e.response.size();
      if (static_cast<int64_t>(2 + e.prompt.size() + e.response.size()) > options_.seq_len + 1)
        ++d->stats_.truncated;
    }
  }
  train.stats_.dropped = stats_.dropped;  // the file's drops are reported once, with training
  return std::make_pair(std::move(train), std::move(val));
}

void SftDataset::FillRow(int64_t i, int32_t* tokens, int32_t* targets) const {
  MT_CHECK_MSG(i >= 0 && i < size(), "sft example ", i, " outside [0, ", size(), ")");
  const SftExample& e = examples_[i];
  const int64_t T = options_.seq_len, P = static_cast<int64_t>(e.prompt.size()),
                R = static_cast<int64_t>(e.response.size());
  // x = [eos] prompt response [eos], cut at T + 1; x[k] for k in [0, n).
  const int64_t n = std::min<int64_t>(2 + P + R, T + 1);
  auto x = [&](int64_t k) -> int32_t {
    if (k == 0 || k == 1 + P + R) return eos_id_;
    return k <= P ? e.prompt[k - 1] : e.response[k - 1 - P];
  };
  for (int64_t t = 0; t < T; ++t) {
    tokens[t] = t < n ? x(t) : eos_id_;  // padding input: eos (its target is ignored)
    // Target x[t+1] is a prompt token for t + 1 <= P; past the end it is padding.
    targets[t] = (t + 1 < n && t + 1 > P) ? x(t + 1) : kSftIgnoreIndex;
  }
}

absl::StatusOr<SftSampler> SftSampler::Create(const SftDataset* dataset,
                                              const SamplerOptions& options) {
  if (options.micro_batch <= 0 || options.grad_accum <= 0 || options.world <= 0)
    return absl::InvalidArgumentError(absl::StrCat(
        dataset->source(), ": sampler options must be positive: micro_batch ", options.micro_batch,
        ", grad_accum ", options.grad_accum, ", world ", options.world));
  if (options.seq_len != dataset->seq_len())
    return absl::InvalidArgumentError(absl::StrCat(dataset->source(), ": sampler seq_len ",
                                                   options.seq_len, " != dataset seq_len ",
                                                   dataset->seq_len()));
  SftSampler s;
  s.dataset_ = dataset;
  s.options_ = options;
  return s;
}

int64_t SftSampler::GlobalIndex(int64_t step, int micro, int rank, int64_t i) const {
  const int64_t global_micro = static_cast<int64_t>(options_.world) * options_.micro_batch;
  return (step * options_.grad_accum + micro) * global_micro + rank * options_.micro_batch + i;
}

int64_t SftSampler::ExampleOf(int64_t g) const {
  MT_CHECK_MSG(g >= 0, "global sample index ", g, " < 0");
  const int64_t n = dataset_->size();
  const IndexPermutation perm(n, HashPair(options_.seed, static_cast<uint64_t>(g / n)));
  return perm(g % n);
}

void SftSampler::Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const {
  MT_CHECK_MSG(
      step >= 0 && micro >= 0 && micro < options_.grad_accum && rank >= 0 && rank < options_.world,
      "sft sampler: (step ", step, ", micro ", micro, ", rank ", rank, ") out of range");
  const int64_t T = options_.seq_len;
  for (int64_t i = 0; i < options_.micro_batch; ++i)
    dataset_->FillRow(ExampleOf(GlobalIndex(step, micro, rank, i)), tokens + i * T,
                      targets + i * T);
}

}  // namespace moetrain::data

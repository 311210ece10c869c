// Fine-tuning rows for the training loop (trainer/train_data.h): JSONL prompt / response examples
// (data/sft_dataset.h), one per row, prompt targets masked; validation from finetune.val_file or a
// seeded held-out fraction of finetune.train_file.
#include <optional>

#include "core/logging.h"
#include "data/sft_dataset.h"
#include "trainer/train_data.h"
#include "trainer/unigram.h"

namespace moetrain::trainer {
namespace {

class SftTrainData : public TrainData {
 public:
  SftTrainData(data::SftDataset train, data::SftDataset val, int64_t max_eval_rows)
      : train_(std::move(train)), val_(std::move(val)) {
    eval_rows_ = max_eval_rows > 0 ? std::min(val_.size(), max_eval_rows) : val_.size();
  }
  absl::Status Init(const data::SamplerOptions& so) {
    ASSIGN_OR_RETURN(sampler_, data::SftSampler::Create(&train_, so));
    return absl::OkStatus();
  }
  void Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const override {
    sampler_->Fill(step, micro, rank, tokens, targets);
  }
  int64_t GlobalIndex(int64_t step, int micro, int rank, int64_t i) const override {
    return sampler_->GlobalIndex(step, micro, rank, i);
  }
  int64_t num_eval_rows() const override { return eval_rows_; }
  void FillEval(int64_t first, int64_t count, int32_t* tokens, int32_t* targets) const override {
    MT_CHECK_MSG(first >= 0 && count >= 0 && first + count <= eval_rows_, "eval rows [", first,
                 ", ", first + count, ") outside [0, ", eval_rows_, ")");
    const int64_t T = val_.seq_len();
    for (int64_t i = 0; i < count; ++i) val_.FillRow(first + i, tokens + i * T, targets + i * T);
  }
  // Fitted to the loss-carrying targets of every validation row, scored on the evaluated ones.
  double UnigramValLoss(const int32_t* eval_targets, int64_t n, int64_t vocab) const override {
    const int64_t T = val_.seq_len();
    std::vector<int32_t> fit, eval, tokens(T), targets(T);
    for (int64_t i = 0; i < val_.size(); ++i) {
      val_.FillRow(i, tokens.data(), targets.data());
      for (int32_t t : targets)
        if (t != data::kSftIgnoreIndex) fit.push_back(t);
    }
    for (int64_t i = 0; i < n; ++i)
      if (eval_targets[i] != data::kSftIgnoreIndex) eval.push_back(eval_targets[i]);
    return UnigramCrossEntropy(fit.data(), static_cast<int64_t>(fit.size()), eval.data(),
                               static_cast<int64_t>(eval.size()), vocab);
  }
  std::string val_source() const override { return val_.source(); }
  std::string Summary() const override {
    const data::SftStats& s = train_.stats();
    return absl::StrCat(s.examples, " fine-tuning examples from ", train_.source(), " (",
                        s.prompt_tokens, " prompt tokens masked, ", s.response_tokens,
                        " response tokens; ", s.truncated, " truncated to ", train_.seq_len() + 1,
                        " tokens, ", s.dropped, " dropped: prompt >= seq_len), ", val_.size(),
                        " validation examples from ", val_.source());
  }
  std::pair<std::string, size_t> HostMemory() const override {
    size_t bytes = 0;
    for (const data::SftDataset* d : {&train_, &val_})
      bytes += 4 * static_cast<size_t>(d->stats().prompt_tokens + d->stats().response_tokens) +
               2 * sizeof(std::vector<int32_t>) * d->size();
    return {"fine-tuning examples", bytes};
  }

 private:
  data::SftDataset train_, val_;
  std::optional<data::SftSampler> sampler_;
  int64_t eval_rows_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TrainData>> OpenFinetuneData(const FinetuneConfig& config,
                                                            const data::Tokenizer& tokenizer,
                                                            const data::SamplerOptions& sampler,
                                                            int64_t max_eval_rows) {
  data::SftOptions o;
  o.prompt_field = config.prompt_field;
  o.response_field = config.response_field;
  o.seq_len = sampler.seq_len;
  ASSIGN_OR_RETURN(data::SftDataset all, data::SftDataset::Load(config.train_file, tokenizer, o));
  std::unique_ptr<SftTrainData> d;
  if (!config.val_file.empty()) {
    ASSIGN_OR_RETURN(data::SftDataset val, data::SftDataset::Load(config.val_file, tokenizer, o));
    d = std::make_unique<SftTrainData>(std::move(all), std::move(val), max_eval_rows);
  } else {
    ASSIGN_OR_RETURN(auto split, all.SplitHeldOut(config.val_fraction, sampler.seed));
    d = std::make_unique<SftTrainData>(std::move(split.first), std::move(split.second),
                                       max_eval_rows);
  }
  RETURN_IF_ERROR(d->Init(sampler));
  return std::unique_ptr<TrainData>(std::move(d));
}

}  // namespace moetrain::trainer

#include "trainer/train_data.h"

#include <optional>

#include "data/token_shards.h"
#include "trainer/unigram.h"

namespace moetrain::trainer {
namespace {

// Pretraining: packed windows of the token shards.
class ShardTrainData : public TrainData {
 public:
  static absl::StatusOr<std::unique_ptr<TrainData>> Open(const std::string& dir,
                                                         const data::Tokenizer& tokenizer,
                                                         const data::SamplerOptions& so,
                                                         int64_t max_eval_rows) {
    std::unique_ptr<ShardTrainData> d(new ShardTrainData());
    ASSIGN_OR_RETURN(d->shards_, data::TokenShards::Open(dir));
    RETURN_IF_ERROR(d->shards_->CheckTokenizer(tokenizer));
    const data::TokenShards& s = *d->shards_;
    ASSIGN_OR_RETURN(d->sampler_, data::Sampler::Create(s.tokens(data::Split::kTrain),
                                                        s.num_tokens(data::Split::kTrain), so,
                                                        s.file_path(data::Split::kTrain)));
    ASSIGN_OR_RETURN(d->eval_, data::EvalSampler::Create(
                                   s.tokens(data::Split::kVal), s.num_tokens(data::Split::kVal),
                                   so.seq_len, max_eval_rows, s.file_path(data::Split::kVal)));
    return std::unique_ptr<TrainData>(std::move(d));
  }
  void Fill(int64_t step, int micro, int rank, int32_t* tokens, int32_t* targets) const override {
    sampler_->Fill(step, micro, rank, tokens, targets);
  }
  int64_t GlobalIndex(int64_t step, int micro, int rank, int64_t i) const override {
    return sampler_->GlobalIndex(step, micro, rank, i);
  }
  int64_t num_eval_rows() const override { return eval_->num_windows(); }
  void FillEval(int64_t first, int64_t count, int32_t* tokens, int32_t* targets) const override {
    eval_->Fill(first, count, tokens, targets);
  }
  double UnigramValLoss(const int32_t* eval_targets, int64_t n, int64_t vocab) const override {
    return UnigramCrossEntropy(shards_->tokens(data::Split::kVal),
                               shards_->num_tokens(data::Split::kVal), eval_targets, n, vocab);
  }
  std::string val_source() const override { return shards_->file_path(data::Split::kVal); }
  std::string Summary() const override {
    return absl::StrCat(shards_->num_tokens(data::Split::kTrain), " train tokens (",
                        sampler_->num_windows(), " windows of ", sampler_->options().seq_len, "), ",
                        shards_->num_tokens(data::Split::kVal), " val tokens");
  }
  std::pair<std::string, size_t> HostMemory() const override {
    return {"token shards (mapped)", shards_->MappedBytes()};
  }

 private:
  ShardTrainData() = default;
  std::optional<data::TokenShards> shards_;
  std::optional<data::Sampler> sampler_;
  std::optional<data::EvalSampler> eval_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TrainData>> OpenTrainData(const Recipe& recipe,
                                                         const data::Tokenizer& tokenizer,
                                                         const data::SamplerOptions& sampler,
                                                         int64_t max_eval_rows) {
  switch (recipe.mode) {
    case TrainMode::kPretrain:
    case TrainMode::kDistill:  // the student trains on the same token shards
      return ShardTrainData::Open(recipe.data.shards, tokenizer, sampler, max_eval_rows);
    case TrainMode::kFinetune:
      return OpenFinetuneData(recipe.finetune, tokenizer, sampler, max_eval_rows);
  }
  return absl::UnimplementedError(absl::StrCat("mode ", std::string(TrainModeName(recipe.mode)),
                                               ": not implemented in this build"));
}

}  // namespace moetrain::trainer

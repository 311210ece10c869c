#include "data/tokenizer.h"

#include "data/file_util.h"
#include "data/hash.h"
#include "data/sentencepiece_include.h"

namespace moetrain::data {

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::Tokenizer(Tokenizer&& other) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&& other) noexcept = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& model_path) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(model_path));
  Tokenizer t;
  const auto st = t.sp_->LoadFromSerializedProto(std::string_view(bytes));
  if (!st.ok()) {
    return absl::DataLossError(
        absl::StrCat(model_path, ": not a valid SentencePiece model: ", st.error_message()));
  }
  if (t.sp_->GetPieceSize() <= 0) {
    return absl::DataLossError(absl::StrCat(model_path, ": SentencePiece model has no pieces"));
  }
  t.checksum_ = absl::StrCat("fnv1a64:", Hex64(Fnv1a64(bytes)));
  t.model_path_ = model_path;
  return t;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  const auto st = sp_->Encode(text, &ids);
  MT_CHECK_MSG(st.ok(), "SentencePiece Encode failed: ", st.error_message());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  const int32_t n = vocab_size();
  for (int32_t id : ids) MT_CHECK_MSG(id >= 0 && id < n, "token id ", id, " outside [0, ", n, ")");
  std::string text;
  const auto st = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  MT_CHECK_MSG(st.ok(), "SentencePiece Decode failed: ", st.error_message());
  return text;
}

std::string Tokenizer::IdToPiece(int32_t id) const {
  MT_CHECK_MSG(id >= 0 && id < vocab_size(), "token id ", id, " outside [0, ", vocab_size(), ")");
  return sp_->IdToPiece(id);
}

int32_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }
int32_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int32_t Tokenizer::unk_id() const { return sp_->unk_id(); }
int32_t Tokenizer::pad_id() const { return sp_->pad_id(); }

}  // namespace moetrain::data

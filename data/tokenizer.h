// SentencePiece BPE tokenizer: training on a corpus and encoding/decoding with a trained model.
//
// Model settings (fixed by TrainTokenizer, see docs/data.md): BPE with byte fallback, so every
// UTF-8 string encodes without <unk> and Decode(Encode(s)) == s; identity normalisation (no NFKC,
// whitespace kept as is), digits split into single pieces. Special ids are SentencePiece's
// defaults: unk 0, bos 1, eos 2, no pad. Newlines never occur in training sentences (documents are
// fed line by line), so "\n" encodes as the byte piece <0x0A>, as in the LLaMA tokenizers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/corpus.h"

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace moetrain::data {

struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // corpus files or directories (data/corpus.h)
  CorpusOptions corpus;             // how to read them
  int vocab_size = 8000;            // total pieces, including 256 byte pieces and unk/bos/eos
  std::string out_model;            // "<name>.model"; "<name>.vocab" is written next to it
  int num_threads = 0;              // SentencePiece trainer threads; 0 = hardware concurrency
  // Training sentences (document lines) SentencePiece keeps; 0 = all of them (no sampling, fully
  // deterministic). With sampling, `seed` seeds SentencePiece's (process-global) generator.
  int64_t input_sentence_size = 0;
  uint32_t seed = 0;
  double character_coverage = 1.0;   // fraction of characters that get their own piece
  double progress_interval_s = 5.0;  // seconds between progress lines while extracting
};

// Trains a BPE model and writes `out_model` and its .vocab atomically.
//
// Steps: a validating count pass over the corpus; extraction of every non-blank document line
// into "<out_model>.corpus.tmp.<pid>" (one sentence per line; progress lines with ETA);
// SentencePiece training into "<stem>.tmp.<pid>.model/.vocab"; a test load; fsync; rename into
// place. Temporaries are removed on every path, and existing files at `out_model` and its .vocab
// are untouched unless training succeeded. SentencePiece's own logging is silenced.
// REQUIRES: out_model ends in ".model"; its directory exists.
// Errors: InvalidArgument (bad options), the corpus errors of data/corpus.h (naming file:line),
// FailedPrecondition wrapping SentencePiece's message with the inputs and out_model (e.g. a
// vocab_size too large for the corpus), and file-system errors naming the path.
// Thread-safety: not reentrant (SentencePiece's trainer uses process-global state).
absl::Status TrainTokenizer(const TokenizerTrainOptions& options);

// A loaded SentencePiece model. Move-only.
// Thread-safety: const methods may be called concurrently.
class Tokenizer {
 public:
  // Errors: NotFound (no file), FailedPrecondition (unreadable), DataLoss (not a SentencePiece
  // model), each naming `model_path`.
  static absl::StatusOr<Tokenizer> Load(const std::string& model_path);

  Tokenizer(Tokenizer&& other) noexcept;
  Tokenizer& operator=(Tokenizer&& other) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // Piece ids of `text` (UTF-8), without bos/eos. Never fails for valid UTF-8 (byte fallback).
  std::vector<int32_t> Encode(std::string_view text) const;
  // REQUIRES: every id in [0, vocab_size()). bos/eos decode to ""; unk to " \u2047 "
  // (SentencePiece's unk surface; byte fallback means Encode never produces unk).
  std::string Decode(const std::vector<int32_t>& ids) const;
  // The piece string of `id` (e.g. "▁the", "<0x0A>"). REQUIRES: 0 <= id < vocab_size().
  std::string IdToPiece(int32_t id) const;

  int32_t vocab_size() const;
  int32_t eos_id() const;
  int32_t bos_id() const;
  int32_t unk_id() const;
  int32_t pad_id() const;  // -1 when the model has no pad piece (the default)

  // "fnv1a64:<16 hex digits>" of the .model file's bytes: identifies the exact model that
  // produced a token file (recorded in token-shard metadata).
  const std::string& checksum() const { return checksum_; }
  const std::string& model_path() const { return model_path_; }

 private:
  Tokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string checksum_;
  std::string model_path_;
};

}  // namespace moetrain::data

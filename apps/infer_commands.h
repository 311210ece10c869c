// `moetrain generate` and `moetrain eval`: flags and the code behind them.
//
// Both load a model through ModelSourceFlags, the one place that turns flags into
// (ModelConfig, ParamSource): `--hf DIR` (a Mixtral / Qwen2-MoE folder) or `--ckpt DIR` (a snapshot
// or a checkpoint root, apps/snapshot_source.h). With --ckpt the tokenizer defaults to the one the
// snapshot's recipe names and must match the snapshot's tokenizer checksum. Every error names the
// flag or file at fault.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.h"
#include "apps/snapshot_source.h"
#include "model/param_source.h"

namespace moetrain::apps {

struct ModelSourceFlags {
  std::string hf_dir;    // --hf: a Hugging Face Mixtral folder (config.json + safetensors)
  std::string ckpt_dir;  // --ckpt: a snapshot directory or a checkpoint root (uses `latest`)
  void Add(CLI::App* app);
};

struct ModelSource {
  model::ModelConfig config;
  std::unique_ptr<model::ParamSource> params;
  std::string name;  // for messages: the folder or file it came from
  // Set for --ckpt: the default tokenizer and the checksum a tokenizer must have.
  std::optional<SnapshotTokenizer> snapshot_tokenizer;
};

// Exactly one source flag must be set. Errors name the flag or the file.
absl::StatusOr<ModelSource> OpenModelSource(const ModelSourceFlags& flags);

struct GenerateFlags {
  ModelSourceFlags source;
  std::string tokenizer;      // SentencePiece .model (required with --prompt unless --ckpt)
  std::string prompt;         // text
  std::string prompt_tokens;  // whitespace-separated ids (alternative to --prompt)
  int64_t max_new_tokens = 64;
  double temperature = 0.8;
  int64_t top_k = 0;
  double top_p = 0.9;
  uint64_t seed = 0;
  int threads = 0;
  void Add(CLI::App* app);
};

struct EvalFlags {
  ModelSourceFlags source;
  std::string input;  // text file (with a tokenizer) or token-id file (with --tokens)
  std::string tokenizer;
  bool tokens = false;
  int64_t window = 0;  // 0 = min(max_position_embeddings, 1024)
  std::string dump_logits;
  int threads = 0;
  void Add(CLI::App* app);
};

// Print to stdout; return a Status for main to turn into an exit code.
absl::Status RunGenerate(const GenerateFlags& flags);
absl::Status RunEval(const EvalFlags& flags);

}  // namespace moetrain::apps

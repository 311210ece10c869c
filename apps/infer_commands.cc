#include "apps/infer_commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "checkpoint/hf_config.h"
#include "checkpoint/hf_param_source.h"
#include "checkpoint/safetensors.h"
#include "core/status.h"
#include "core/threads.h"
#include "data/tokenizer.h"
#include "model/kv_decoder.h"
#include "trainer/evaluate.h"
#include "trainer/sampling.h"

namespace moetrain::apps {
namespace {

// Whitespace-separated token ids; `what` names their origin (a flag or a file) in errors.
absl::StatusOr<std::vector<int32_t>> ParseTokenIds(const std::string& text, const std::string& what,
                                                   int64_t vocab_size) {
  std::istringstream in(text);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long long v = std::strtoll(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0')
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": token ", ids.size(), " ('", word, "') is not an integer token id"));
    if (v < 0 || v >= vocab_size)
      return absl::InvalidArgumentError(absl::StrCat(what, ": token ", ids.size(), " (id ", v,
                                                     ") is outside the model's vocabulary [0, ",
                                                     vocab_size, ")"));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, " ", path, ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(flag, " ", path, ": read error"));
  return s.str();
}

// The tokenizer for `m`: `path` (--tokenizer), or for a snapshot its recorded one (checksum checked
// either way). It must not produce ids the model has no embedding for.
absl::StatusOr<data::Tokenizer> LoadTokenizerFor(const std::string& flag_path,
                                                 const ModelSource& m) {
  std::string path = flag_path;
  ASSIGN_OR_RETURN(data::Tokenizer tok,
                   m.snapshot_tokenizer.has_value()
                       ? ResolveSnapshotTokenizer(*m.snapshot_tokenizer, flag_path, &path)
                       : data::Tokenizer::Load(path));
  if (tok.vocab_size() > m.config.vocab_size)
    return absl::InvalidArgumentError(absl::StrCat("--tokenizer ", path, ": vocabulary of ",
                                                   tok.vocab_size(),
                                                   " pieces exceeds the model's "
                                                   "vocab_size ",
                                                   m.config.vocab_size, " (", m.name, ")"));
  return tok;
}

void ApplyThreads(int threads) {
  if (threads > 0) SetNumThreads(threads);
}

}  // namespace

void ModelSourceFlags::Add(CLI::App* app) {
  app->add_option("--hf", hf_dir,
                  "Hugging Face Mixtral / Qwen2-MoE folder (config.json + safetensors)");
  app->add_option("--ckpt", ckpt_dir,
                  "moetrain snapshot directory, or a checkpoint root (its `latest` snapshot)");
}

absl::StatusOr<ModelSource> OpenModelSource(const ModelSourceFlags& flags) {
  ModelSource m;
  if (!flags.hf_dir.empty() && !flags.ckpt_dir.empty())
    return absl::InvalidArgumentError("pass only one of --hf and --ckpt");
  if (!flags.hf_dir.empty()) {
    ASSIGN_OR_RETURN(m.config, checkpoint::ReadHfConfigAny(flags.hf_dir + "/config.json"));
    ASSIGN_OR_RETURN(m.params, checkpoint::HfParamSource::Open(flags.hf_dir));
    m.name = flags.hf_dir;
    return m;
  }
  if (!flags.ckpt_dir.empty()) {
    auto snapshot = OpenSnapshotModel(flags.ckpt_dir);
    if (!snapshot.ok())
      return absl::Status(snapshot.status().code(),
                          absl::StrCat("--ckpt: ", snapshot.status().message()));
    m.config = snapshot->recipe.model;
    m.params = std::move(snapshot->params);
    m.name = snapshot->dir;
    m.snapshot_tokenizer = snapshot->tokenizer;
    return m;
  }
  return absl::InvalidArgumentError("no model: pass --hf DIR or --ckpt DIR");
}

void GenerateFlags::Add(CLI::App* app) {
  source.Add(app);
  app->add_option("--tokenizer", tokenizer, "SentencePiece .model (needed for --prompt)");
  app->add_option("--prompt", prompt, "prompt text");
  app->add_option("--prompt-tokens", prompt_tokens,
                  "prompt as whitespace-separated token ids (prints the new ids)");
  app->add_option("--max-new-tokens", max_new_tokens, "tokens to generate")->capture_default_str();
  app->add_option("--temperature", temperature, "softmax temperature (0 = greedy)")
      ->capture_default_str();
  app->add_option("--top-k", top_k, "keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  app->add_option("--top-p", top_p, "nucleus mass")->capture_default_str();
  app->add_option("--seed", seed, "sampling seed")->capture_default_str();
  app->add_option("--threads", threads, "CPU threads (0 = all cores)");
}

void EvalFlags::Add(CLI::App* app) {
  source.Add(app);
  app->add_option("--input", input, "text file (with --tokenizer) or token ids (with --tokens)")
      ->required();
  app->add_option("--tokenizer", tokenizer, "SentencePiece .model to encode a text --input");
  app->add_flag("--tokens", tokens, "--input holds whitespace-separated token ids");
  app->add_option("--window", window,
                  "tokens per window, fresh cache each (0 = min(max_position_embeddings, 1024))");
  app->add_option("--dump-logits", dump_logits,
                  "write per-position fp32 logits and the tokens to this .safetensors file");
  app->add_option("--threads", threads, "CPU threads (0 = all cores)");
}

absl::Status RunGenerate(const GenerateFlags& f) {
  if (f.prompt.empty() == f.prompt_tokens.empty())
    return absl::InvalidArgumentError("generate: pass exactly one of --prompt and --prompt-tokens");
  if (!f.prompt.empty() && f.tokenizer.empty() && f.source.ckpt_dir.empty())
    return absl::InvalidArgumentError(
        "generate: --prompt needs --tokenizer (or use --prompt-tokens)");
  if (f.max_new_tokens < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("generate: --max-new-tokens must be >= 1, got ", f.max_new_tokens));
  if (!(f.top_p > 0 && f.top_p <= 1))
    return absl::InvalidArgumentError(
        absl::StrCat("generate: --top-p must be in (0, 1], got ", f.top_p));
  if (f.top_k < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("generate: --top-k must be >= 0, got ", f.top_k));
  ApplyThreads(f.threads);
  ASSIGN_OR_RETURN(ModelSource m, OpenModelSource(f.source));
  std::unique_ptr<data::Tokenizer> tok;
  // A snapshot brings its tokenizer for text prompts; with --prompt-tokens only an explicit one.
  if (!f.tokenizer.empty() || !f.prompt.empty()) {
    ASSIGN_OR_RETURN(data::Tokenizer t, LoadTokenizerFor(f.tokenizer, m));
    tok = std::make_unique<data::Tokenizer>(std::move(t));
  }
  std::vector<int32_t> prompt;
  if (!f.prompt_tokens.empty()) {
    ASSIGN_OR_RETURN(prompt,
                     ParseTokenIds(f.prompt_tokens, "--prompt-tokens", m.config.vocab_size));
    if (prompt.empty()) return absl::InvalidArgumentError("--prompt-tokens: no token ids");
  } else {
    // As in training's samples: a document starts after an eos in the token stream.
    if (tok->eos_id() >= 0) prompt.push_back(tok->eos_id());
    for (int32_t id : tok->Encode(f.prompt)) prompt.push_back(id);
  }
  const int64_t max_pos = m.config.max_position_embeddings;
  if (static_cast<int64_t>(prompt.size()) > max_pos)
    return absl::InvalidArgumentError(absl::StrCat("generate: the prompt has ", prompt.size(),
                                                   " tokens, more than max_position_embeddings ",
                                                   max_pos, " (", m.name, ")"));
  const int64_t context = std::min<int64_t>(max_pos, prompt.size() + f.max_new_tokens - 1);
  ASSIGN_OR_RETURN(auto decoder, model::KvDecoder::Create(m.config, context, *m.params, f.threads));
  trainer::SamplingOptions o;
  o.temperature = f.temperature;
  o.top_k = f.top_k;
  o.top_p = f.top_p;
  o.max_new_tokens = f.max_new_tokens;
  o.seed = f.seed;
  o.stop_token = tok != nullptr ? tok->eos_id() : -1;
  ASSIGN_OR_RETURN(std::vector<int32_t> out, trainer::GenerateWithCache(*decoder, prompt, o));
  if (!f.prompt_tokens.empty()) {
    for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? " " : "", out[i]);
    std::printf("\n");
  }
  if (tok != nullptr) {
    std::vector<int32_t> all(prompt.begin(), prompt.end());
    all.insert(all.end(), out.begin(), out.end());
    // A model vocabulary larger than the tokenizer's (padded embeddings) can sample ids the
    // tokenizer has no piece for: they print as unk.
    for (int32_t& id : all)
      if (id >= tok->vocab_size()) id = tok->unk_id();
    std::printf("%s\n", tok->Decode(all).c_str());
  }
  return absl::OkStatus();
}

absl::Status RunEval(const EvalFlags& f) {
  if (f.tokens && !f.tokenizer.empty())
    return absl::InvalidArgumentError("eval: pass only one of --tokenizer and --tokens");
  if (!f.tokens && f.tokenizer.empty() && f.source.ckpt_dir.empty())
    return absl::InvalidArgumentError(
        "eval: pass exactly one of --tokenizer and --tokens (with --ckpt the snapshot's tokenizer "
        "is the default)");
  ApplyThreads(f.threads);
  ASSIGN_OR_RETURN(ModelSource m, OpenModelSource(f.source));
  const int64_t max_pos = m.config.max_position_embeddings;
  const int64_t window = f.window > 0 ? f.window : std::min<int64_t>(max_pos, 1024);
  if (window < 2 || window > max_pos)
    return absl::InvalidArgumentError(absl::StrCat("eval: --window ", window, " must be in [2, ",
                                                   max_pos, "] (max_position_embeddings of ",
                                                   m.name, ")"));
  ASSIGN_OR_RETURN(std::string text, ReadFile(f.input, "--input"));
  std::vector<int32_t> tokens;
  if (f.tokens) {
    ASSIGN_OR_RETURN(tokens, ParseTokenIds(text, f.input, m.config.vocab_size));
  } else {
    ASSIGN_OR_RETURN(data::Tokenizer tok, LoadTokenizerFor(f.tokenizer, m));
    if (tok.eos_id() >= 0) tokens.push_back(tok.eos_id());  // a document starts after an eos
    for (int32_t id : tok.Encode(text)) tokens.push_back(id);
  }
  if (tokens.size() < 2)
    return absl::InvalidArgumentError(absl::StrCat(
        f.input, ": ", tokens.size(), " token(s); eval needs at least 2 (one prediction)"));
  const int64_t context = std::min<int64_t>(window, tokens.size());
  ASSIGN_OR_RETURN(auto decoder, model::KvDecoder::Create(m.config, context, *m.params, f.threads));
  std::vector<float> logits;
  auto result =
      trainer::EvaluateTokens(*decoder, tokens, context, f.dump_logits.empty() ? nullptr : &logits);
  if (!result.ok())
    return absl::Status(result.status().code(),
                        absl::StrCat(f.input, ": ", result.status().message()));
  if (!f.dump_logits.empty()) {
    const int64_t n = static_cast<int64_t>(tokens.size()), V = m.config.vocab_size;
    std::vector<checkpoint::NamedTensor> out = {
        {"logits", TensorView(logits.data(), Shape({n - 1, V}), DType::kF32), DType::kF32},
        {"tokens", TensorView(tokens.data(), Shape({n}), DType::kI32), DType::kI32}};
    RETURN_IF_ERROR(
        checkpoint::WriteSafetensors(f.dump_logits, out,
                                     {{"format", "moetrain-eval-logits"},
                                      {"version", "1"},
                                      {"window", std::to_string(window)},
                                      {"model", m.name},
                                      {"rows", "logits row r predicts tokens[r + 1]"}}));
  }
  std::printf("eval: %zu tokens, %lld targets, window %lld: loss %.6f, perplexity %.4f\n",
              tokens.size(), static_cast<long long>(result->num_targets),
              static_cast<long long>(window), result->loss, result->perplexity);
  return absl::OkStatus();
}

}  // namespace moetrain::apps

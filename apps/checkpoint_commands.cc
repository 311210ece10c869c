#include "apps/checkpoint_commands.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "apps/snapshot_source.h"
#include "checkpoint/hf_export.h"
#include "checkpoint/snapshot_inspect.h"
#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::apps {

void InspectFlags::Add(CLI::App* app) {
  app->add_option("dir", dir, "snapshot directory, or a checkpoint root (inspects its `latest`)")
      ->required();
}

void ExportFlags::Add(CLI::App* app) {
  app->add_option("--ckpt", ckpt_dir, "snapshot directory, or a checkpoint root (its `latest`)")
      ->required();
  app->add_option("--out", out_dir, "output Hugging Face folder")->required();
  app->add_option("--dtype", dtype, "stored weight dtype")
      ->check(CLI::IsMember({"f32", "fp32", "bf16", "f16", "fp16"}))
      ->capture_default_str();
  app->add_option("--quantize", quantize,
                  "int8: weight-only per-output-channel int8 (docs/checkpoint_format.md)")
      ->check(CLI::IsMember({"int8"}));
  app->add_option("--max-shard-size", max_shard_bytes,
                  "bytes per safetensors file; above it: model-0000i-of-0000n + index")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--tokenizer", tokenizer,
                  "SentencePiece .model to ship (default: the snapshot recipe's data.tokenizer)");
  app->add_flag("--no-tokenizer", no_tokenizer, "write no tokenizer files")
      ->excludes("--tokenizer");
  app->add_flag("--overwrite", overwrite, "replace a non-empty --out folder");
}

absl::Status RunInspect(const InspectFlags& f) {
  ASSIGN_OR_RETURN(std::string dir, ResolveSnapshotDir(f.dir));
  ASSIGN_OR_RETURN(std::string text, checkpoint::DescribeSnapshot(dir));
  std::fputs(text.c_str(), stdout);
  return absl::OkStatus();
}

absl::Status RunExport(const ExportFlags& f) {
  auto snapshot = OpenSnapshotModel(f.ckpt_dir);
  if (!snapshot.ok())
    return absl::Status(snapshot.status().code(),
                        absl::StrCat("--ckpt: ", snapshot.status().message()));
  checkpoint::ExportOptions o;
  o.out_dir = f.out_dir;
  ASSIGN_OR_RETURN(o.dtype, ParseDType(f.dtype));
  o.quantize_int8 = f.quantize == "int8";
  o.max_shard_bytes = f.max_shard_bytes;
  o.overwrite = f.overwrite;
  if (!f.no_tokenizer) {
    std::string path;
    ASSIGN_OR_RETURN(data::Tokenizer tok,
                     ResolveSnapshotTokenizer(snapshot->tokenizer, f.tokenizer, &path));
    if (tok.vocab_size() > snapshot->recipe.model.vocab_size)
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer ", path, ": vocabulary of ", tok.vocab_size(),
                       " pieces exceeds the model's vocab_size ", snapshot->recipe.model.vocab_size,
                       " (", snapshot->dir, ")"));
    o.tokenizer_model_path = path;
    o.unk_token_id = tok.unk_id();
    o.generation_config.bos_token_id = tok.bos_id();
    o.generation_config.eos_token_id = tok.eos_id();
  }
  ASSIGN_OR_RETURN(checkpoint::ExportSummary summary,
                   checkpoint::ExportHf(snapshot->recipe.model, *snapshot->params, o));
  std::printf("exported %s to %s: model_type %s, %lld tensor bytes, files: %s\n",
              snapshot->dir.c_str(), f.out_dir.c_str(), summary.model_type.c_str(),
              static_cast<long long>(summary.tensor_bytes),
              absl::StrJoin(summary.files, " ").c_str());
  return absl::OkStatus();
}

}  // namespace moetrain::apps

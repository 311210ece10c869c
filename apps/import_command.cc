// `moetrain import --hf DIR --out ROOT [--recipe R.yaml]`: a HF folder -> a weights-only snapshot.
//
// The snapshot is what a world of one would write (docs/checkpoint_format.md): one shard whose
// records are full tensors, field "param" only (no optimizer moments, so `train --init-from` starts
// a fresh optimizer), step 0. meta.json state.recipe is a complete recipe: the model section from
// config.json, the rest from --recipe or the embedded tiny recipe; the same text is written to
// ROOT/recipe.yaml for `moetrain train ROOT/recipe.yaml --init-from ROOT/step-00000000`.
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "apps/checkpoint_commands.h"
#include "checkpoint/hf_config.h"
#include "checkpoint/hf_param_source.h"
#include "checkpoint/snapshot_dir.h"
#include "checkpoint/snapshot_writer.h"
#include "core/logging.h"
#include "core/status.h"
#include "data/tokenizer.h"
#include "model/param_table.h"
#include "trainer/embedded_recipe.h"
#include "trainer/recipe.h"

namespace moetrain::apps {
namespace {

namespace fs = std::filesystem;

// The recipe recorded in the snapshot: `recipe_path`'s (or the embedded one's) sections around the
// imported model. Without --recipe the tokenizer is the folder's tokenizer.model (when it has one)
// and seq_len is capped at the model's context.
absl::StatusOr<trainer::Recipe> ImportRecipe(const ImportFlags& f, const model::ModelConfig& config,
                                             const std::string& hf_tokenizer) {
  ASSIGN_OR_RETURN(trainer::Recipe r,
                   f.recipe.empty()
                       ? trainer::ParseRecipe(std::string(trainer::EmbeddedTinyRecipe()),
                                              std::string(trainer::EmbeddedTinyRecipeName()))
                       : trainer::LoadRecipe(f.recipe));
  r.model = config;
  r.vocab_size_auto = false;
  if (f.recipe.empty()) {
    if (!hf_tokenizer.empty()) r.data.tokenizer = hf_tokenizer;
    r.batch.seq_len = std::min<int64_t>(r.batch.seq_len, config.max_position_embeddings);
    r.sample.max_new_tokens =
        std::min<int64_t>(r.sample.max_new_tokens, config.max_position_embeddings);
  }
  absl::Status valid = trainer::ValidateRecipe(r);
  if (!valid.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(f.recipe.empty() ? std::string("the default recipe") : "--recipe " + f.recipe,
                     " does not fit the model of ", f.hf_dir, ": ", valid.message()));
  return r;
}

}  // namespace

void ImportFlags::Add(CLI::App* app) {
  app->add_option("--hf", hf_dir, "Hugging Face Mixtral / Qwen2-MoE folder")->required();
  app->add_option("--out", out_root, "new checkpoint root (must not exist or be empty)")
      ->required();
  app->add_option("--recipe", recipe,
                  "recipe whose non-model sections go into the snapshot (default: the embedded "
                  "tiny recipe, with the folder's tokenizer.model)");
}

absl::Status RunImport(const ImportFlags& f) {
  std::error_code ec;
  if (fs::exists(f.out_root, ec) && !fs::is_empty(f.out_root, ec))
    return absl::AlreadyExistsError(
        absl::StrCat("--out ", f.out_root, ": exists and is not empty; import needs a new root"));
  ASSIGN_OR_RETURN(model::ModelConfig config,
                   checkpoint::ReadHfConfigAny((fs::path(f.hf_dir) / "config.json").string()));
  ASSIGN_OR_RETURN(auto source, checkpoint::HfParamSource::Open(f.hf_dir));
  const model::ParamTable table = model::ParamTable::Build(config);

  // A tensor the table does not know means the architectures differ: refuse, listing them all.
  std::vector<std::string> extra;
  for (const std::string& name : source->Names())
    if (table.Find(name) == nullptr) extra.push_back(name);
  if (!extra.empty())
    return absl::InvalidArgumentError(absl::StrCat(
        f.hf_dir,
        ": tensors that config.json's model does not have: ", absl::StrJoin(extra, ", ")));

  // The weights belong to the folder's tokenizer, if it ships one.
  std::string hf_tokenizer, checksum;
  const fs::path tok_path = fs::path(f.hf_dir) / "tokenizer.model";
  if (fs::exists(tok_path, ec)) {
    hf_tokenizer = fs::absolute(tok_path, ec).lexically_normal().string();
    ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::Load(hf_tokenizer));
    checksum = tok.checksum();
  }
  ASSIGN_OR_RETURN(trainer::Recipe recipe, ImportRecipe(f, config, hf_tokenizer));
  if (!checksum.empty() && recipe.data.tokenizer != hf_tokenizer &&
      fs::exists(recipe.data.tokenizer, ec)) {
    ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::Load(recipe.data.tokenizer));
    if (tok.checksum() != checksum)
      return absl::FailedPreconditionError(
          absl::StrCat("--recipe ", f.recipe, ": data.tokenizer ", recipe.data.tokenizer,
                       " is not the tokenizer of ", f.hf_dir, " (", tok_path.string(), ")"));
  }

  // Full tensors, one record each; absent buffers stay out of the table (they load as zeros).
  checkpoint::SnapshotContents contents;
  contents.fields["param"] = {};
  std::vector<checkpoint::ShardRecord> records;
  for (const model::ParamSpec& spec : table.specs()) {
    if (spec.kind == model::ParamKind::kBuffer && !source->Has(spec.name)) continue;
    checkpoint::ShardRecord r;
    r.field = "param";
    r.tensor = spec.name;
    r.full_shape = spec.shape;
    r.offset.assign(spec.shape.size(), 0);
    r.count = spec.shape;
    r.data.resize(spec.numel());
    RETURN_IF_ERROR(source->ReadFull(spec, r.data.data()));
    contents.tensors[spec.name] = spec.shape;
    records.push_back(std::move(r));
  }

  const std::string recipe_yaml = trainer::RecipeToYaml(recipe);
  nlohmann::json state = {
      {"step", 0},
      {"consumed_samples", 0},
      {"recipe", recipe_yaml},
      {"layout", {{"world", 1}, {"dp", 1}, {"tp", 1}, {"ep", 1}, {"zero_stage", 0}}},
      {"imported_from", fs::absolute(f.hf_dir, ec).lexically_normal().string()}};
  if (!checksum.empty()) state["tokenizer_checksum"] = checksum;
  checkpoint::SnapshotWriter writer(nullptr, /*keep=*/0);
  RETURN_IF_ERROR(writer.Begin(f.out_root, 0));
  RETURN_IF_ERROR(writer.WriteShard(records, {}));
  RETURN_IF_ERROR(writer.Commit(contents, state));
  const std::string recipe_file = (fs::path(f.out_root) / "recipe.yaml").string();
  RETURN_IF_ERROR(WriteFileDurably(recipe_file, recipe_yaml));
  std::printf(
      "imported %s (%zu tensors) into %s; fine-tune with: moetrain train %s --init-from %s\n",
      f.hf_dir.c_str(), records.size(), writer.final_dir().c_str(), recipe_file.c_str(),
      writer.final_dir().c_str());
  return absl::OkStatus();
}

}  // namespace moetrain::apps

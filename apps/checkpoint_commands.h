// `moetrain inspect`, `moetrain export` and `moetrain import`: flags and the code behind them.
//
//   inspect DIR                       DescribeSnapshot of DIR (a snapshot, or a root: its
//   `latest`);
//                                     every checksum verified, corruption is the error
//   export --ckpt DIR --out OUT ...   the snapshot's weights as a Hugging Face folder (ExportHf),
//                                     with the tokenizer (--tokenizer, default the recipe's;
//                                     checksum checked) and generation_config.json from its bos/eos
//                                     ids
//   import --hf DIR --out ROOT        a HF Mixtral / Qwen2-MoE folder as a weights-only snapshot
//                                     ROOT/step-00000000 (+ latest, + ROOT/recipe.yaml) to
//                                     fine-tune from with `moetrain train ROOT/recipe.yaml
//                                     --init-from ...`
// Every error names the flag, directory or file at fault.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace moetrain::apps {

struct InspectFlags {
  std::string dir;
  void Add(CLI::App* app);
};

struct ExportFlags {
  std::string ckpt_dir;
  std::string out_dir;
  std::string dtype = "f32";  // f32 | bf16 | fp16
  std::string quantize;       // "" or int8
  int64_t max_shard_bytes = int64_t{5} << 30;
  std::string tokenizer;      // default: the snapshot recipe's data.tokenizer
  bool no_tokenizer = false;  // weights and config only
  bool overwrite = false;
  void Add(CLI::App* app);
};

struct ImportFlags {
  std::string hf_dir;
  std::string out_root;
  std::string recipe;  // the non-model sections; default: the embedded tiny recipe
  void Add(CLI::App* app);
};

absl::Status RunInspect(const InspectFlags& flags);
absl::Status RunExport(const ExportFlags& flags);
absl::Status RunImport(const ImportFlags& flags);  // apps/import_command.cc

}  // namespace moetrain::apps

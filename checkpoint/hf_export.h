// Hugging Face export: writes a moetrain model as a folder that transformers loads.
//
// Architecture (config.json "model_type"), chosen by ChooseHfNaming:
//   mixtral    when the config is plain Mixtral: softmax router with renormalised top-k, no shared
//              experts, no dense layers;
//   qwen2_moe  when it has shared experts, first-k dense layers or norm_topk_prob = false (the
//              mapping and the fixed extra tensors are in checkpoint/hf_naming.h);
//   otherwise  InvalidArgument naming the feature neither can express (sigmoid scoring, the
//              score-correction bias of aux-loss-free balancing, a capacity factor). Training-only
//              settings (aux and z loss coefficients, bias update rate) do not matter.
// Files: config.json, generation_config.json, model.safetensors (or model-0000i-of-0000n.safetensors
// plus model.safetensors.index.json when the tensors exceed max_shard_bytes), and, with a tokenizer,
// tokenizer.model + tokenizer_config.json (LlamaTokenizer) + special_tokens_map.json.
// Weights are stored in options.dtype (rounded to nearest even); with quantize_int8 the 2-D matmul
// weights (attention, experts, shared experts, dense MLPs; not embeddings, lm_head, norms or the
// router) are int8 per output row with an F32 "<name>_scale" (docs/checkpoint_format.md, "int8
// export"; stock transformers cannot load that folder).
// Atomicity: everything is written to "<out_dir>.tmp.<pid>" and renamed into place last; on error the
// temp folder is removed and out_dir is untouched. A non-empty out_dir is refused unless overwrite.
// Errors name the folder and, where one is involved, the tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/hf_naming.h"
#include "core/dtype.h"
#include "model/config.h"
#include "model/param_source.h"

namespace moetrain::checkpoint {

struct GenerationConfig {
  int64_t bos_token_id = 1;  // SentencePiece defaults of data/tokenizer.h (unk 0, bos 1, eos 2)
  int64_t eos_token_id = 2;
};

struct ExportOptions {
  std::string out_dir;
  DType dtype = DType::kF32;        // kF32, kBF16 or kF16
  bool quantize_int8 = false;       // weight-only per-output-channel symmetric int8 (see above)
  int64_t max_shard_bytes = int64_t{5} << 30;  // above it: sharded files + index
  std::string tokenizer_model_path;  // optional SentencePiece .model, copied as tokenizer.model
  int64_t unk_token_id = 0;          // for tokenizer_config.json / special_tokens_map.json
  GenerationConfig generation_config;
  bool overwrite = false;            // replace a non-empty out_dir
};

struct ExportSummary {
  std::string model_type;           // "mixtral" or "qwen2_moe"
  std::vector<std::string> files;   // file names written into out_dir, sorted
  int64_t tensor_bytes = 0;         // sum of the stored tensors' bytes (index "total_size")
};

// The HF architecture that expresses `config` exactly, or InvalidArgument naming the feature.
absl::StatusOr<HfNaming> ChooseHfNaming(const model::ModelConfig& config);

// The config.json text for `config` in `naming` (torch_dtype from dtype, ids from generation).
std::string HfConfigJson(const model::ModelConfig& config, HfNaming naming, DType dtype,
                         const GenerationConfig& generation);

// REQUIRES: source holds every trained tensor of ParamTable::Build(config) (full, fp32).
absl::StatusOr<ExportSummary> ExportHf(const model::ModelConfig& config, model::ParamSource& source,
                                       const ExportOptions& options);

}  // namespace moetrain::checkpoint

#include "checkpoint/hf_export.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "checkpoint/safetensors.h"
#include "core/status.h"
#include "model/param_table.h"

namespace moetrain::checkpoint {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// One tensor of the output. Its values come from `spec` (times `scale`) or are zeros (spec null).
struct OutTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
  const model::ParamSpec* spec = nullptr;
  float scale = 1.0f;
  bool int8 = false;  // quantized: dtype kI8 and a following "<name>_scale" F32 [rows]
  int64_t Bytes() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n * static_cast<int64_t>(DTypeSize(dtype)) + (int8 ? shape[0] * 4 : 0);
  }
};

const char* TorchDType(DType t) {
  switch (t) {
    case DType::kBF16: return "bfloat16";
    case DType::kF16: return "float16";
    default: return "float32";
  }
}

// int8 applies to 2-D matmul weights only: not the embedding, lm_head or the router.
bool Quantizable(const model::ParamSpec& spec) {
  if (spec.shape.size() != 2) return false;
  const std::string& n = spec.name;
  return n != "model.embed_tokens.weight" && n != "lm_head.weight" &&
         n.find("block_sparse_moe.gate.") == std::string::npos;
}

// The output tensors in table order (qwen2_moe extras beside the layer's own tensors).
std::vector<OutTensor> PlanTensors(const model::ModelConfig& c, const model::ParamTable& table,
                                   HfNaming naming, const ExportOptions& o) {
  std::vector<OutTensor> out;
  const bool qwen = naming == HfNaming::kQwen2Moe;
  for (const model::ParamSpec& spec : table.specs()) {
    OutTensor t;
    t.name = ToHfName(naming, spec.name);
    t.shape = spec.shape;
    t.spec = &spec;
    t.scale = HfScale(naming, spec.name);
    t.int8 = o.quantize_int8 && Quantizable(spec);
    t.dtype = t.int8 ? DType::kI8 : o.dtype;
    out.push_back(t);
    const std::string suffix =
        spec.layer >= 0 ? spec.name.substr(model::names::Layer(spec.layer).size()) : "";
    if (qwen && (suffix == "self_attn.q_proj.weight" || suffix == "self_attn.k_proj.weight" ||
                 suffix == "self_attn.v_proj.weight")) {
      out.push_back({QwenQkvBiasName(spec.layer, suffix[10]), {spec.shape[0]}, o.dtype});
    }
    // Every qwen2_moe sparse block has a shared expert and its gate; a zero-width expert when
    // moetrain's layer has none (its output is exactly 0).
    if (qwen && suffix == "block_sparse_moe.gate.weight") {
      out.push_back({QwenSharedGateName(spec.layer), {1, c.hidden_size}, o.dtype});
      if (c.num_shared_experts == 0) {
        const std::string p = model::names::Layer(spec.layer) + "mlp.shared_expert.";
        out.push_back({p + "gate_proj.weight", {0, c.hidden_size}, o.dtype});
        out.push_back({p + "up_proj.weight", {0, c.hidden_size}, o.dtype});
        out.push_back({p + "down_proj.weight", {c.hidden_size, 0}, o.dtype});
      }
    }
  }
  return out;
}

// Greedy split into files of at most max_bytes (a tensor larger than that gets a file of its own).
std::vector<std::vector<size_t>> Shard(const std::vector<OutTensor>& tensors, int64_t max_bytes) {
  std::vector<std::vector<size_t>> shards(1);
  int64_t in_shard = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t b = tensors[i].Bytes();
    if (!shards.back().empty() && in_shard + b > max_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += b;
  }
  return shards;
}

// Symmetric per-row int8: scale_r = max_c |w_rc| / 127, q = round(w / scale) in [-127, 127], so
// |w - q * scale| <= scale / 2. An all-zero row gets scale 0 and q = 0.
void QuantizeRows(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(row[c]));
    scale[r] = amax / 127.0f;
    for (int64_t c = 0; c < cols; ++c) {
      const double v = scale[r] > 0 ? static_cast<double>(row[c]) / scale[r] : 0.0;
      q[r * cols + c] = static_cast<int8_t>(std::clamp(std::nearbyint(v), -127.0, 127.0));
    }
  }
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

absl::Status CopyFile(const std::string& from, const fs::path& to) {
  std::error_code ec;
  if (!fs::is_regular_file(from, ec))
    return absl::NotFoundError(absl::StrCat(from, ": tokenizer model not found (not a file)"));
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat(from, ": copy to ", to.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status FsyncFile(const fs::path& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::InternalError(absl::StrCat(path.string(), ": cannot reopen to fsync"));
  const int rc = ::fsync(fileno(f));
  std::fclose(f);
  if (rc != 0) return absl::InternalError(absl::StrCat(path.string(), ": fsync failed"));
  return absl::OkStatus();
}

// Writes every file into `tmp` (an empty folder).
absl::StatusOr<ExportSummary> WriteFolder(const model::ModelConfig& c, model::ParamSource& source,
                                          const ExportOptions& o, HfNaming naming,
                                          const fs::path& tmp) {
  ExportSummary summary;
  summary.model_type = HfModelType(naming);
  const model::ParamTable table = model::ParamTable::Build(c);
  const std::vector<OutTensor> tensors = PlanTensors(c, table, naming, o);
  for (const OutTensor& t : tensors) {
    if (t.spec != nullptr && !source.Has(t.spec->name))
      return absl::NotFoundError(absl::StrCat(o.out_dir, ": the source lacks tensor '",
                                              t.spec->name, "'"));
  }
  const std::vector<std::vector<size_t>> shards = Shard(tensors, o.max_shard_bytes);
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"producer", "moetrain"}};
  if (o.quantize_int8) metadata["quantization"] = "moetrain-int8-weight-per-row-v1";
  ordered_json weight_map = ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file =
        shards.size() == 1 ? "model.safetensors"
                           : absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, shards.size());
    // Buffers for this file only: peak memory is about one shard in fp32.
    std::vector<std::vector<float>> values(shards[s].size()), scales(shards[s].size());
    std::vector<std::vector<int8_t>> quantized(shards[s].size());
    std::vector<NamedTensor> named;
    for (size_t k = 0; k < shards[s].size(); ++k) {
      const OutTensor& t = tensors[shards[s][k]];
      int64_t numel = 1;
      for (int64_t d : t.shape) numel *= d;
      values[k].assign(static_cast<size_t>(numel), 0.0f);
      if (t.spec != nullptr) {
        absl::Status st = source.ReadFull(*t.spec, values[k].data());
        if (!st.ok())
          return absl::Status(st.code(), absl::StrCat(o.out_dir, ": reading '", t.spec->name,
                                                      "' from the source: ", st.message()));
        if (t.scale != 1.0f)
          for (float& v : values[k]) v *= t.scale;
      }
      weight_map[t.name] = file;
      summary.tensor_bytes += t.Bytes();
      if (!t.int8) {
        named.push_back({t.name, TensorView(values[k].data(), Shape(t.shape), DType::kF32), t.dtype});
        continue;
      }
      quantized[k].resize(static_cast<size_t>(numel));
      scales[k].resize(static_cast<size_t>(t.shape[0]));
      QuantizeRows(values[k].data(), t.shape[0], t.shape[1], quantized[k].data(), scales[k].data());
      std::vector<float>().swap(values[k]);
      named.push_back({t.name, TensorView(quantized[k].data(), Shape(t.shape), DType::kI8), DType::kI8});
      named.push_back({t.name + "_scale", TensorView(scales[k].data(), Shape({t.shape[0]}), DType::kF32),
                       DType::kF32});
      weight_map[t.name + "_scale"] = file;
    }
    RETURN_IF_ERROR(WriteSafetensors((tmp / file).string(), named, metadata));
    summary.files.push_back(file);
  }
  if (shards.size() > 1) {
    ordered_json index;
    index["metadata"] = {{"total_size", summary.tensor_bytes}};
    index["weight_map"] = weight_map;
    RETURN_IF_ERROR(WriteText(tmp / "model.safetensors.index.json", index.dump(2) + "\n"));
    summary.files.push_back("model.safetensors.index.json");
  }
  RETURN_IF_ERROR(WriteText(tmp / "config.json",
                            HfConfigJson(c, naming, o.dtype, o.generation_config)));
  summary.files.push_back("config.json");
  ordered_json gen = {{"_from_model_config", true},
                      {"bos_token_id", o.generation_config.bos_token_id},
                      {"eos_token_id", o.generation_config.eos_token_id}};
  RETURN_IF_ERROR(WriteText(tmp / "generation_config.json", gen.dump(2) + "\n"));
  summary.files.push_back("generation_config.json");
  if (!o.tokenizer_model_path.empty()) {
    // Piece strings are SentencePiece's defaults, which data::TrainTokenizer keeps.
    RETURN_IF_ERROR(CopyFile(o.tokenizer_model_path, tmp / "tokenizer.model"));
    ordered_json tok = {{"tokenizer_class", "LlamaTokenizer"},
                        {"bos_token", "<s>"},
                        {"eos_token", "</s>"},
                        {"unk_token", "<unk>"},
                        {"pad_token", nullptr},
                        {"add_bos_token", true},
                        {"add_eos_token", false},
                        {"legacy", true},
                        {"clean_up_tokenization_spaces", false},
                        {"model_max_length", c.max_position_embeddings},
                        {"sp_model_kwargs", ordered_json::object()}};
    RETURN_IF_ERROR(WriteText(tmp / "tokenizer_config.json", tok.dump(2) + "\n"));
    ordered_json special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}};
    RETURN_IF_ERROR(WriteText(tmp / "special_tokens_map.json", special.dump(2) + "\n"));
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
      summary.files.push_back(f);
  }
  for (const std::string& f : summary.files) RETURN_IF_ERROR(FsyncFile(tmp / f));
  std::sort(summary.files.begin(), summary.files.end());
  return summary;
}

}  // namespace

absl::StatusOr<HfNaming> ChooseHfNaming(const model::ModelConfig& c) {
  auto refuse = [](const std::string& feature) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot export to Hugging Face: ", feature,
        " has no equivalent in mixtral or qwen2_moe (export would change the model's outputs)"));
  };
  if (c.scoring_func != "softmax")
    return refuse(absl::StrCat("scoring_func '", c.scoring_func, "' (sigmoid router scoring)"));
  if (c.balancing == "bias")
    return refuse("balancing 'bias' (the router's score-correction bias e_score_correction_bias)");
  if (c.capacity_factor > 0)
    return refuse(absl::StrCat("capacity_factor ", c.capacity_factor, " (token dropping)"));
  const bool plain = c.num_shared_experts == 0 && c.first_k_dense_replace == 0 && c.norm_topk_prob;
  if (plain) return HfNaming::kMixtral;
  if (c.HeadDim() * c.num_attention_heads != c.hidden_size)
    return refuse(absl::StrCat("head_dim ", c.HeadDim(), " != hidden_size / num_attention_heads "
                               "together with shared experts or dense layers (qwen2_moe derives "
                               "head_dim)"));
  return HfNaming::kQwen2Moe;
}

std::string HfConfigJson(const model::ModelConfig& c, HfNaming naming, DType dtype,
                         const GenerationConfig& generation) {
  ordered_json j;
  const bool qwen = naming == HfNaming::kQwen2Moe;
  j["architectures"] = {qwen ? "Qwen2MoeForCausalLM" : "MixtralForCausalLM"};
  j["model_type"] = HfModelType(naming);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (qwen) {
    j["num_experts"] = c.num_local_experts;
    j["moe_intermediate_size"] = c.ExpertWidth();
    j["shared_expert_intermediate_size"] = c.SharedWidth();
    j["decoder_sparse_step"] = 1;
    std::vector<int64_t> dense;
    for (int64_t l = 0; l < c.first_k_dense_replace && l < c.num_hidden_layers; ++l) dense.push_back(l);
    j["mlp_only_layers"] = dense;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
  } else {
    j["head_dim"] = c.HeadDim();
    j["num_local_experts"] = c.num_local_experts;
    j["sliding_window"] = nullptr;
  }
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_dropout"] = 0.0;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  j["output_router_logits"] = false;
  j["initializer_range"] = c.initializer_range;
  j["bos_token_id"] = generation.bos_token_id;
  j["eos_token_id"] = generation.eos_token_id;
  j["torch_dtype"] = TorchDType(dtype);
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

absl::StatusOr<ExportSummary> ExportHf(const model::ModelConfig& config, model::ParamSource& source,
                                       const ExportOptions& o) {
  if (o.out_dir.empty()) return absl::InvalidArgumentError("HF export: out_dir is empty");
  if (o.dtype != DType::kF32 && o.dtype != DType::kBF16 && o.dtype != DType::kF16)
    return absl::InvalidArgumentError(absl::StrCat(o.out_dir, ": export dtype '", DTypeName(o.dtype),
                                                   "' (expected f32, bf16 or f16)"));
  if (o.max_shard_bytes <= 0)
    return absl::InvalidArgumentError(absl::StrCat(o.out_dir, ": max_shard_bytes must be positive"));
  {
    absl::Status valid = config.Validate();
    if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(o.out_dir, ": ", valid.message()));
  }
  absl::StatusOr<HfNaming> naming = ChooseHfNaming(config);
  if (!naming.ok())
    return absl::InvalidArgumentError(absl::StrCat(o.out_dir, ": ", naming.status().message()));

  std::string out = o.out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  if (exists && !fs::is_directory(out, ec))
    return absl::FailedPreconditionError(absl::StrCat(out, ": exists and is not a folder"));
  if (exists && !fs::is_empty(out, ec) && !o.overwrite)
    return absl::FailedPreconditionError(
        absl::StrCat(out, ": folder is not empty; refusing to overwrite (set overwrite to replace it)"));
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  const std::string tmp = absl::StrCat(out, ".tmp.", ::getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    return absl::InternalError(absl::StrCat(tmp, ": cannot create temp folder: ", ec.message()));

  absl::StatusOr<ExportSummary> summary = WriteFolder(config, source, o, *naming, tmp);
  if (!summary.ok()) {
    fs::remove_all(tmp, ec);
    return summary.status();
  }
  // Publish: move an old folder aside, rename the new one in, then delete the old one.
  const std::string old = absl::StrCat(out, ".old.", ::getpid());
  if (exists) {
    fs::rename(out, old, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      return absl::InternalError(absl::StrCat(out, ": cannot move the old folder aside: ", ec.message()));
    }
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    const std::string why = ec.message();
    if (exists) fs::rename(old, out, ec);
    fs::remove_all(tmp, ec);
    return absl::InternalError(absl::StrCat(out, ": cannot rename ", tmp, " into place: ", why));
  }
  if (exists) fs::remove_all(old, ec);
  return summary;
}

}  // namespace moetrain::checkpoint

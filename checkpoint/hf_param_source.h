// A ParamSource over a Hugging Face folder: model.safetensors, or shards listed by
// model.safetensors.index.json ("weight_map": name -> file). Stored F32/F64/BF16/F16 convert to fp32.
// Open validates the index (every listed file opens); ReadFull checks the shape against the table.
// Naming (checkpoint/hf_naming.h): Mixtral, or Qwen2-MoE when the folder's config.json says
// model_type "qwen2_moe". Callers always ask by moetrain (ParamTable) names. For qwen2_moe, Open
// checks that every q/k/v bias and shared_expert_gate is zero (else FailedPrecondition: the model
// is not representable in moetrain), and ReadFull divides the shared down_proj by 2 (exact).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/hf_naming.h"
#include "checkpoint/safetensors.h"
#include "model/param_source.h"

namespace moetrain::checkpoint {

class HfParamSource : public model::ParamSource {
 public:
  // dir: a folder with model.safetensors or model.safetensors.index.json (or a .safetensors file).
  static absl::StatusOr<std::unique_ptr<HfParamSource>> Open(const std::string& dir);
  // As Open, with the naming given instead of read from config.json.
  static absl::StatusOr<std::unique_ptr<HfParamSource>> OpenWithNaming(const std::string& dir,
                                                                       HfNaming naming);
  HfNaming naming() const { return naming_; }

  absl::Status ReadFull(const model::ParamSpec& spec, float* out) override;
  bool Has(const std::string& name) const override {
    return where_.count(ToHfName(naming_, name)) > 0;
  }
  // Every tensor name in the folder (sorted), as moetrain names where the naming maps them (the
  // raw name otherwise): lets callers reject names the table does not know. Qwen2-MoE's fixed extras
  // (zero biases and gates, zero-width shared experts) are left out.
  std::vector<std::string> Names() const;

 private:
  absl::Status CheckQwenExtras() const;

  std::string dir_;
  HfNaming naming_ = HfNaming::kMixtral;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name in the folder -> index into files_
};

}  // namespace moetrain::checkpoint

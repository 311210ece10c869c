// A ParamSource over a Hugging Face Mixtral-format folder: model.safetensors, or shards listed by
// model.safetensors.index.json ("weight_map": name -> file). Stored F32/F64/BF16/F16 convert to fp32.
// Open validates the index (every listed file opens); ReadFull checks the shape against the table.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/safetensors.h"
#include "model/param_source.h"

namespace moetrain::checkpoint {

class HfParamSource : public model::ParamSource {
 public:
  // dir: a folder with model.safetensors or model.safetensors.index.json (or a .safetensors file).
  static absl::StatusOr<std::unique_ptr<HfParamSource>> Open(const std::string& dir);

  absl::Status ReadFull(const model::ParamSpec& spec, float* out) override;
  bool Has(const std::string& name) const override { return where_.count(name) > 0; }
  // Every tensor name in the folder (sorted): lets callers reject names the table does not know.
  std::vector<std::string> Names() const;

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

}  // namespace moetrain::checkpoint

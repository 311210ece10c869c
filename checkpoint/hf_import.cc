#include "checkpoint/hf_import.h"

#include <filesystem>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/status.h"

namespace moetrain::checkpoint {

template <typename T>
absl::Status LoadHfWeights(const std::string& path, model::Model<T>* model) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "model.safetensors").string();
  ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::Open(file));
  const model::ParamTable& table = model->table();
  for (const std::string& name : st.Names()) {
    if (table.Find(name) == nullptr)
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": tensor '", name, "' is not a parameter of this model configuration"));
  }
  for (const model::ParamSpec& spec : table.specs()) {
    if (!model->Holds(spec.name)) continue;  // another expert-parallel rank's expert: not read
    if (!st.Has(spec.name)) {
      if (spec.kind == model::ParamKind::kBuffer) continue;
      return absl::NotFoundError(absl::StrCat(file, ": missing tensor '", spec.name, "'"));
    }
    TensorView dst = model->Param(spec.name);
    if (!spec.IsTpSplit(model->tp_size())) {
      RETURN_IF_ERROR(st.ReadInto(spec.name, dst));
      continue;
    }
    // Tensor parallel: read the full tensor, keep this rank's shard.
    std::vector<T> full(spec.numel());
    RETURN_IF_ERROR(st.ReadInto(spec.name, TensorView(full.data(), Shape(spec.shape), dst.dtype())));
    model::ExtractShard(spec, model->tp_size(), model->tp_rank(), full.data(), dst.as<T>());
  }
  return absl::OkStatus();
}

template absl::Status LoadHfWeights<float>(const std::string&, model::Model<float>*);
template absl::Status LoadHfWeights<double>(const std::string&, model::Model<double>*);

}  // namespace moetrain::checkpoint

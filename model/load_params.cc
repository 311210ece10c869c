#include "model/load_params.h"

#include <algorithm>
#include <vector>

#include "core/status.h"

namespace moetrain::model {

absl::Status LoadParams(ParamSource& source, Model<float>* model) {
  const int tp = model->tp_size();
  std::vector<float> full;
  for (const ParamSpec& spec : model->table().specs()) {
    if (!model->Holds(spec.name)) continue;  // another expert-parallel rank's expert
    TensorView dst = model->Param(spec.name);
    if (!source.Has(spec.name)) {
      if (spec.kind != ParamKind::kBuffer)
        return absl::NotFoundError(absl::StrCat("missing tensor '", spec.name, "'"));
      std::fill(dst.as<float>(), dst.as<float>() + dst.numel(), 0.0f);  // buffers are f32
      continue;
    }
    full.resize(spec.numel());
    RETURN_IF_ERROR(source.ReadFull(spec, full.data()));
    if (spec.IsTpSplit(tp)) {
      ExtractShard(spec, tp, model->tp_rank(), full.data(), dst.as<float>());
    } else {
      std::copy(full.begin(), full.end(), dst.as<float>());
    }
  }
  return absl::OkStatus();
}


}  // namespace moetrain::model

// A ParamSource over a live Model<T> that holds every tensor whole: no tensor or expert parallelism
// (tp = ep = 1). Lets an in-memory model be exported without a snapshot. The model must outlive it.
#pragma once

#include "absl/strings/str_cat.h"
#include "model/model.h"
#include "model/param_source.h"

namespace moetrain::model {

template <typename T>
class ModelParamSource : public ParamSource {
 public:
  // REQUIRES: model.tp_size() == 1 and the model holds every expert (no expert parallelism).
  explicit ModelParamSource(const Model<T>& model) : model_(model) {}

  absl::Status ReadFull(const ParamSpec& spec, float* out) override {
    if (!model_.Holds(spec.name))
      return absl::NotFoundError(absl::StrCat("live model: no tensor '", spec.name, "'"));
    if (model_.tp_size() != 1)
      return absl::FailedPreconditionError(
          absl::StrCat("live model: '", spec.name, "' is split over tp; read a snapshot instead"));
    const TensorView v = model_.Param(spec.name);
    const int64_t n = spec.numel();
    if (v.numel() != n)
      return absl::InvalidArgumentError(absl::StrCat("live model: '", spec.name, "' holds ", v.numel(),
                                                     " elements, the table says ", n));
    if (v.dtype() == DType::kF32) {
      const float* p = static_cast<const float*>(v.data());
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
    } else {
      const T* p = static_cast<const T*>(v.data());
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
    }
    return absl::OkStatus();
  }
  bool Has(const std::string& name) const override { return model_.Holds(name); }

 private:
  const Model<T>& model_;
};

}  // namespace moetrain::model

// A ParamSource over a live Model<T> (world of one: no tensor or expert parallelism): lets the
// inference engine run a model that is still in memory (end-of-training samples, tests).
// The model must outlive the source. Values are converted to fp32.
#pragma once

#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/model.h"
#include "model/param_source.h"

namespace moetrain::model {

template <typename T>
class ModelParamSource : public ParamSource {
 public:
  explicit ModelParamSource(const Model<T>& model) : model_(model) {}

  absl::Status ReadFull(const ParamSpec& spec, float* out) override {
    if (model_.tp_size() != 1)
      return absl::FailedPreconditionError(
          absl::StrCat("live model: tensor-parallel shards (tp = ", model_.tp_size(),
                       ") are not full tensors; read '", spec.name, "' from a snapshot instead"));
    if (!model_.Holds(spec.name))
      return absl::NotFoundError(absl::StrCat("live model: does not hold '", spec.name, "'"));
    TensorView v = model_.Param(spec.name);
    if (v.numel() != spec.numel())
      return absl::InvalidArgumentError(absl::StrCat(
          "live model: '", spec.name, "' has ", v.numel(), " elements, expected ", spec.numel()));
    if (v.dtype() == DType::kF32) {
      const float* p = v.as<float>();
      std::copy(p, p + v.numel(), out);
    } else {
      const T* p = v.as<T>();
      for (int64_t i = 0; i < v.numel(); ++i) out[i] = static_cast<float>(p[i]);
    }
    return absl::OkStatus();
  }
  bool Has(const std::string& name) const override { return model_.Holds(name); }

 private:
  const Model<T>& model_;
};

}  // namespace moetrain::model

// Where full (unsharded) parameter values come from when a model is built outside training:
// an HF folder, a snapshot of any layout, or a live model. Walk the ParamTable and ask for each tensor.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "model/param_table.h"

namespace moetrain::model {

class ParamSource {
 public:
  virtual ~ParamSource() = default;
  // Writes the FULL tensor `spec` (global shape, row-major fp32) into out (spec.numel() floats).
  // Errors name the source (file) and the tensor.
  virtual absl::Status ReadFull(const ParamSpec& spec, float* out) = 0;
  // False when the source lacks the tensor; callers treat a missing kBuffer as zeros, anything else
  // as an error.
  virtual bool Has(const std::string& name) const = 0;
};

}  // namespace moetrain::model

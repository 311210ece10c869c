// Hugging Face config.json <-> ModelConfig.
//
// ReadHfConfig accepts model_type "mixtral" (and moetrain's own extension fields, which HF ignores).
// Features moetrain cannot reproduce exactly are refused with an error naming the field and the file:
// sliding_window, rope_scaling, hidden_act other than silu. Fields absent from the file keep the
// ModelConfig default. The result is validated.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "model/config.h"

namespace moetrain::checkpoint {

absl::StatusOr<model::ModelConfig> ReadHfConfig(const std::string& path);

}  // namespace moetrain::checkpoint

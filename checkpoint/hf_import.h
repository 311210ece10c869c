// Hugging Face weight import: loads `model.safetensors` into a Model by walking its ParamTable.
//
// Every trained parameter of the table must be in the file with exactly the table's shape; a tensor
// in the file that the table does not know is an error too (it would mean the architectures differ).
// Buffers (e.g. the aux-loss-free router bias) are optional and keep their current value when absent.
// Values are converted from the file's dtype (F32/F64/BF16/F16) to the model's. Errors name the file
// and tensor. On error the model's parameters may be partially overwritten (load into a fresh model).
// With tensor parallelism each rank reads the full tensor and keeps its shard (ParamSpec::tp_dim).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "model/model.h"

namespace moetrain::checkpoint {

// path: a .safetensors file, or a directory holding model.safetensors.
template <typename T>
absl::Status LoadHfWeights(const std::string& path, model::Model<T>* model);

}  // namespace moetrain::checkpoint

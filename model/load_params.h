// Fills a model's parameters and buffers from a ParamSource (an HF folder, a snapshot, another
// model): every tensor this rank holds, read whole and cut to this tp rank's shard. Trainable tensors
// must be in the source; buffers absent from it become zeros. Errors name the source's file and
// tensor. On error the model may be partly overwritten (load into a fresh model). fp32 only: a
// ParamSource delivers fp32 (float64 reference models read their HF weights with
// checkpoint::LoadHfWeights, which keeps F64 files exact).
#pragma once

#include "absl/status/status.h"
#include "model/model.h"
#include "model/param_source.h"

namespace moetrain::model {

absl::Status LoadParams(ParamSource& source, Model<float>* model);

}  // namespace moetrain::model

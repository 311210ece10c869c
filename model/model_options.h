// Per-run numerics and memory options of a Model (everything that is not config or parallel layout).
#pragma once

#include "core/dtype.h"

namespace moetrain::model {

// Activation checkpointing: which layers keep only their input during forward and recompute their
// internals inside backward.
enum class ActivationCheckpointing {
  kNone,       // every layer keeps all it needs for backward
  kFull,       // checkpointed layers keep only their input x_l; the whole layer is recomputed
  kSelective,  // checkpointed layers drop and recompute the attention block's internals only
};

struct ModelOptions {
  // Compute precision: kF32, kBF16 or kF16. On CPU the arithmetic is fp32 and values are rounded to
  // the compute dtype where the GPU path would store them (see docs/precision.md).
  DType compute_dtype = DType::kF32;
  ActivationCheckpointing checkpointing = ActivationCheckpointing::kNone;
  // Checkpoint every n-th layer (layers l with l % checkpoint_every == 0); 1 = all layers.
  int checkpoint_every = 1;
};

}  // namespace moetrain::model

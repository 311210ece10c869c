// CUDA twin of kernels/cross_entropy.h (fused softmax + cross-entropy, softmax never stored) for
// f32 / bf16 / f16 logits, fp32 math:
//   lse_t = max_j z_tj + log(sum_j exp(z_tj - max));  loss_t = lse_t - z_t[target_t]
//   dlogits_tj = dloss * (exp(z_tj - lse_t) - [j == target_t])   (overwrite, logits' dtype)
// Rows whose target == ignore_index give loss 0 and zero gradient. A target outside [0, V) cannot
// be reported from the device without a host sync, so it gives loss = NaN (the loss scaler's
// finiteness check then stops the step) and a NaN gradient row. losses, lse: fp32 (N). Asynchronous
// on `stream`. InvalidArgument for V <= 0 or another dtype; Internal when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::cuda {

// losses(N), lse(N) from logits(N,V), targets(N).
absl::Status CrossEntropyForward(float* losses, float* lse, const void* logits,
                                 const int32_t* targets, int64_t n, int64_t v, int32_t ignore_index,
                                 DType dtype, cudaStream_t stream);

// dlogits(N,V) from logits(N,V), lse(N), targets(N); dloss is dL/dloss_t for every row.
absl::Status CrossEntropyBackward(void* dlogits, const void* logits, const float* lse,
                                  const int32_t* targets, float dloss, int64_t n, int64_t v,
                                  int32_t ignore_index, DType dtype, cudaStream_t stream);

}  // namespace moetrain::cuda

// CUDA multi-tensor AdamW (the twin of kernels/adamw.h), fp32 master params and moments, gradients
// in f32 / bf16 / f16 storage, fp32 math:
//   g = grad_scale * grad;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )     (p before the update)
// with t each tensor's own step count. A tensor whose `skip` is set (an expert that received no
// tokens: sparse expert update) is left untouched, bit for bit; its caller does not advance its
// step. Tensors are launched 32 at a time with their descriptors as kernel arguments, so no device
// memory is allocated. Asynchronous on `stream`. InvalidArgument (naming the tensor index) for step
// < 1, a null pointer with n > 0, or an unsupported gradient dtype; Internal when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/adamw.h"

namespace moetrain::cuda {

struct AdamWTensor {
  float* param = nullptr;      // (n) fp32 master weights, updated in place
  float* m = nullptr;          // (n) first moment, in place
  float* v = nullptr;          // (n) second moment, in place
  const void* grad = nullptr;  // (n) gradient, grad_dtype storage
  int64_t n = 0;
  int64_t step = 1;   // this tensor's step count after the update (>= 1)
  bool skip = false;  // sparse expert update: leave param, m, v untouched
};

absl::Status AdamWMultiStep(const std::vector<AdamWTensor>& tensors, DType grad_dtype,
                            const kernels::AdamWHyper& hyper, float grad_scale,
                            cudaStream_t stream);

}  // namespace moetrain::cuda

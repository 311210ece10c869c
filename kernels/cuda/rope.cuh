// CUDA twin of kernels/rope.h ("rotate half" RoPE) for f32 / bf16 / f16 storage of x, fp32 tables.
// For each (b, s, h) row of D values and i < D/2, with c = cos(s, i), n = sin(s, i):
//   forward R:    (x_i, x_{i+D/2}) -> (x_i c - x_{i+D/2} n,  x_{i+D/2} c + x_i n)
//   backward R^T: the same with n -> -n (dx = R^T dy, in place).
// cos, sin: (max_pos, D/2) fp32 on the device (build them with kernels::RopeTable<float> and copy).
// x(B,S,H,D) in place; token s has position s. Asynchronous on `stream`. InvalidArgument for an odd
// D or another dtype; Internal when a launch fails. REQUIRES: S <= max_pos (not checked here).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::cuda {

absl::Status RopeForward(void* x, const float* cos, const float* sin, int64_t b, int64_t s,
                         int64_t h, int64_t d, DType dtype, cudaStream_t stream);
absl::Status RopeBackward(void* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                          int64_t h, int64_t d, DType dtype, cudaStream_t stream);

}  // namespace moetrain::cuda

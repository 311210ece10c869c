// CUDA twin of kernels/rmsnorm.h for f32 / bf16 / f16 storage, fp32 math.
//   Forward, per row i:  r_i = 1 / sqrt(mean_j x_ij^2 + eps);  y_ij = (x_ij r_i) w_j
//   Backward, g_ij = dy_ij w_j, s_i = sum_j g_ij x_ij:
//     dx_ij = r_i (g_ij - x_ij r_i^2 s_i / C)     (overwrite, `dtype` storage)
//     dw_j += sum_i dy_ij x_ij r_i                (accumulate into fp32, rows in ascending order,
//                                                  so the result is deterministic)
// x, y, w, dy, dx have `dtype` storage; rstd and dw are fp32. Device pointers; asynchronous on
// `stream`. InvalidArgument for another dtype or c <= 0; Internal when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::cuda {

// y(N,C), rstd(N) from x(N,C), w(C).
absl::Status RmsNormForward(void* y, float* rstd, const void* x, const void* w, int64_t n,
                            int64_t c, float eps, DType dtype, cudaStream_t stream);

// dx(N,C) =, dw(C) += from dy(N,C), x(N,C), w(C), rstd(N).
absl::Status RmsNormBackward(void* dx, float* dw, const void* dy, const void* x, const void* w,
                             const float* rstd, int64_t n, int64_t c, DType dtype,
                             cudaStream_t stream);

}  // namespace moetrain::cuda

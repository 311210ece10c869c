// CUDA twins of kernels/cast.h: rounding fp32 values to the bf16 / f16 grid, and the loss scaler's
// finiteness check.
//
// CastRound / RoundToDType give, bit for bit, what the CPU versions give (the same branch-free bit
// arithmetic: round to nearest even, f16 overflow at |x| >= 65520 to inf, f16 subnormals at 2^-24,
// NaN -> the same quiet NaN). kF32 copies. Another dtype: InvalidArgument.
//
// MarkNonFinite sets *flag = 1 (device memory) when any element of x(n) of `dtype` storage
// (f32/bf16/f16) is inf or NaN, and never clears it: zero the flag once, check every gradient
// tensor, then read one value on the host (the single synchronisation the loss scaler needs). All
// calls are asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::cuda {

// dst(n) = round(src(n)); dst may equal src.
absl::Status CastRound(const float* src, float* dst, int64_t n, DType dtype, cudaStream_t stream);
// x(n) rounded in place.
absl::Status RoundToDType(float* x, int64_t n, DType dtype, cudaStream_t stream);
// *flag |= any(!isfinite(x)).
absl::Status MarkNonFinite(const void* x, int64_t n, DType dtype, unsigned int* flag,
                           cudaStream_t stream);

}  // namespace moetrain::cuda

// CUDA twins of kernels/elementwise.h (Fill, Add, AddInPlace, Scale) for f32 / bf16 / f16 storage.
// Device pointers of `dtype` storage, n contiguous elements, launched on `stream` (asynchronous).
// Math is fp32 with one rounding at the store. Returns InvalidArgument for another dtype and
// Internal (with the failing call) when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::cuda {

absl::Status Fill(void* y, float value, int64_t n, DType dtype, cudaStream_t stream);  // y = value
absl::Status Add(void* y, const void* a, const void* b, int64_t n, DType dtype,
                 cudaStream_t stream);  // y = a + b
absl::Status AddInPlace(void* y, const void* x, int64_t n, DType dtype,
                        cudaStream_t stream);                                       // y += x
absl::Status Scale(void* y, float s, int64_t n, DType dtype, cudaStream_t stream);  // y *= s

}  // namespace moetrain::cuda

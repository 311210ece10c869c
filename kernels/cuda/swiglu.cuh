// CUDA twin of kernels/swiglu.h. Device pointers; launched on `stream`. T is float or double.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "core/status.h"

namespace moetrain::cuda {

template <typename T>
absl::Status SwigluForward(T* h, const T* a, const T* b, int64_t n, cudaStream_t stream);

template <typename T>
absl::Status SwigluBackward(T* da, T* db, const T* dh, const T* a, const T* b, int64_t n,
                            cudaStream_t stream);

}  // namespace moetrain::cuda

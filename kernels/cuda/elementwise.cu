#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dtype_dispatch.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace moetrain::cuda {

// ---- Fill ----

template <typename T>
__global__ void FillKernel(T* y, float value, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) StoreF(y, i, value);
}

absl::Status Fill(void* y, float value, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "Fill", [&](auto t) -> absl::Status {
    using T = decltype(t);
    FillKernel<T><<<GridFor(n), kBlockThreads, 0, stream>>>(static_cast<T*>(y), value, n);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

// ---- Add ----

template <typename T>
__global__ void AddKernel(T* y, const T* a, const T* b, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) StoreF(y, i, LoadF(a, i) + LoadF(b, i));
}

absl::Status Add(void* y, const void* a, const void* b, int64_t n, DType dtype,
                 cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "Add", [&](auto t) -> absl::Status {
    using T = decltype(t);
    AddKernel<T><<<GridFor(n), kBlockThreads, 0, stream>>>(
        static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b), n);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

// ---- AddInPlace ----

template <typename T>
__global__ void AddInPlaceKernel(T* y, const T* x, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) StoreF(y, i, LoadF(y, i) + LoadF(x, i));
}

absl::Status AddInPlace(void* y, const void* x, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "AddInPlace", [&](auto t) -> absl::Status {
    using T = decltype(t);
    AddInPlaceKernel<T>
        <<<GridFor(n), kBlockThreads, 0, stream>>>(static_cast<T*>(y), static_cast<const T*>(x), n);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

// ---- Scale ----

template <typename T>
__global__ void ScaleKernel(T* y, float s, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) StoreF(y, i, LoadF(y, i) * s);
}

absl::Status Scale(void* y, float s, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "Scale", [&](auto t) -> absl::Status {
    using T = decltype(t);
    ScaleKernel<T><<<GridFor(n), kBlockThreads, 0, stream>>>(static_cast<T*>(y), s, n);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

}  // namespace moetrain::cuda

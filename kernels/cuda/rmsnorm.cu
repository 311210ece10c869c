#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dtype_dispatch.cuh"
#include "kernels/cuda/rmsnorm.cuh"

namespace moetrain::cuda {

// ---- forward: one block per row ----

template <typename T>
__global__ void RmsNormForwardKernel(T* y, float* rstd, const T* x, const T* w, int64_t c,
                                     float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * c;
  T* yr = y + row * c;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const float v = LoadF(xr, j);
    ss += v * v;
  }
  ss = BlockSum(ss, scratch);
  const float r = rsqrtf(ss / static_cast<float>(c) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    StoreF(yr, j, (LoadF(xr, j) * r) * LoadF(w, j));
}

absl::Status RmsNormForward(void* y, float* rstd, const void* x, const void* w, int64_t n,
                            int64_t c, float eps, DType dtype, cudaStream_t stream) {
  if (c <= 0) return absl::InvalidArgumentError(absl::StrFormat("cuda::RmsNormForward: c = %d", c));
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "RmsNormForward", [&](auto t) -> absl::Status {
    using T = decltype(t);
    RmsNormForwardKernel<T><<<static_cast<unsigned>(n), kBlockThreads, 0, stream>>>(
        static_cast<T*>(y), rstd, static_cast<const T*>(x), static_cast<const T*>(w), c, eps);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

// ---- backward dx: one block per row ----

template <typename T>
__global__ void RmsNormBackwardDxKernel(T* dx, const T* dy, const T* x, const T* w,
                                        const float* rstd, int64_t c) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * c;
  const T* dyr = dy + row * c;
  T* dxr = dx + row * c;
  const float r = rstd[row];
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    s += LoadF(dyr, j) * LoadF(w, j) * LoadF(xr, j);
  s = BlockSum(s, scratch);
  const float k = r * r * s / static_cast<float>(c);
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    StoreF(dxr, j, r * (LoadF(dyr, j) * LoadF(w, j) - LoadF(xr, j) * k));
}

// ---- backward dw: one thread per column, rows ascending (deterministic, coalesced across j) ----

template <typename T>
__global__ void RmsNormBackwardDwKernel(float* dw, const T* dy, const T* x, const float* rstd,
                                        int64_t n, int64_t c) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= c) return;
  float acc = 0.f;
  for (int64_t i = 0; i < n; ++i) acc += LoadF(dy, i * c + j) * LoadF(x, i * c + j) * rstd[i];
  dw[j] += acc;
}

absl::Status RmsNormBackward(void* dx, float* dw, const void* dy, const void* x, const void* w,
                             const float* rstd, int64_t n, int64_t c, DType dtype,
                             cudaStream_t stream) {
  if (c <= 0)
    return absl::InvalidArgumentError(absl::StrFormat("cuda::RmsNormBackward: c = %d", c));
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "RmsNormBackward", [&](auto t) -> absl::Status {
    using T = decltype(t);
    RmsNormBackwardDxKernel<T><<<static_cast<unsigned>(n), kBlockThreads, 0, stream>>>(
        static_cast<T*>(dx), static_cast<const T*>(dy), static_cast<const T*>(x),
        static_cast<const T*>(w), rstd, c);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    RmsNormBackwardDwKernel<T><<<GridFor(c), kBlockThreads, 0, stream>>>(
        dw, static_cast<const T*>(dy), static_cast<const T*>(x), rstd, n, c);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

}  // namespace moetrain::cuda

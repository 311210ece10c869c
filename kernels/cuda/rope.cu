#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dtype_dispatch.cuh"
#include "kernels/cuda/rope.cuh"

namespace moetrain::cuda {

// ---- kernel: one thread per rotated pair (row, i), sign = +1 forward, -1 backward ----

template <typename T>
__global__ void RopeRotateKernel(T* x, const float* cos, const float* sin, int64_t s, int64_t h,
                                 int64_t half, float sign, int64_t num_pairs) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= num_pairs) return;
  const int64_t i = k % half;
  const int64_t row = k / half;       // (b, s, h) flattened
  const int64_t pos = (row / h) % s;  // the s of that row
  const float c = cos[pos * half + i], n = sign * sin[pos * half + i];
  T* xr = x + row * 2 * half;
  const float x1 = LoadF(xr, i), x2 = LoadF(xr, i + half);
  StoreF(xr, i, x1 * c - x2 * n);
  StoreF(xr, i + half, x2 * c + x1 * n);
}

// ---- launchers ----

absl::Status RopeRotate(const char* op, void* x, const float* cos, const float* sin, int64_t b,
                        int64_t s, int64_t h, int64_t d, float sign, DType dtype,
                        cudaStream_t stream) {
  if (d <= 0 || d % 2 != 0)
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda::%s: head dim D = %d must be even", op, d));
  const int64_t num_pairs = b * s * h * (d / 2);
  if (num_pairs == 0) return absl::OkStatus();
  return DispatchStorage(dtype, op, [&](auto t) -> absl::Status {
    using T = decltype(t);
    RopeRotateKernel<T><<<GridFor(num_pairs), kBlockThreads, 0, stream>>>(
        static_cast<T*>(x), cos, sin, s, h, d / 2, sign, num_pairs);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

absl::Status RopeForward(void* x, const float* cos, const float* sin, int64_t b, int64_t s,
                         int64_t h, int64_t d, DType dtype, cudaStream_t stream) {
  return RopeRotate("RopeForward", x, cos, sin, b, s, h, d, 1.f, dtype, stream);
}

absl::Status RopeBackward(void* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                          int64_t h, int64_t d, DType dtype, cudaStream_t stream) {
  return RopeRotate("RopeBackward", dx, cos, sin, b, s, h, d, -1.f, dtype, stream);
}

}  // namespace moetrain::cuda

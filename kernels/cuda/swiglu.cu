#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/swiglu.cuh"

namespace moetrain::cuda {

// ---- kernels ----

template <typename T>
__global__ void SwigluForwardKernel(T* h, const T* a, const T* b, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T sig = T(1) / (T(1) + exp(-a[i]));
  h[i] = a[i] * sig * b[i];
}

// d silu(a)/da = sig * (1 + a (1 - sig))
template <typename T>
__global__ void SwigluBackwardKernel(T* da, T* db, const T* dh, const T* a, const T* b, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T sig = T(1) / (T(1) + exp(-a[i]));
  T silu = a[i] * sig;
  db[i] = dh[i] * silu;
  da[i] = dh[i] * b[i] * sig * (T(1) + a[i] * (T(1) - sig));
}

// ---- launchers ----

constexpr int kThreads = 256;
inline unsigned Blocks(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

template <typename T>
absl::Status SwigluForward(T* h, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  SwigluForwardKernel<T><<<Blocks(n), kThreads, 0, stream>>>(h, a, b, n);
  CUDA_RETURN_IF_LAUNCH_ERROR();
  return absl::OkStatus();
}

template <typename T>
absl::Status SwigluBackward(T* da, T* db, const T* dh, const T* a, const T* b, int64_t n,
                            cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  SwigluBackwardKernel<T><<<Blocks(n), kThreads, 0, stream>>>(da, db, dh, a, b, n);
  CUDA_RETURN_IF_LAUNCH_ERROR();
  return absl::OkStatus();
}

template absl::Status SwigluForward<float>(float*, const float*, const float*, int64_t, cudaStream_t);
template absl::Status SwigluForward<double>(double*, const double*, const double*, int64_t, cudaStream_t);
template absl::Status SwigluBackward<float>(float*, float*, const float*, const float*, const float*,
                                            int64_t, cudaStream_t);
template absl::Status SwigluBackward<double>(double*, double*, const double*, const double*,
                                             const double*, int64_t, cudaStream_t);

}  // namespace moetrain::cuda

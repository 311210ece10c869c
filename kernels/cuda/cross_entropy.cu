#include "kernels/cuda/cross_entropy.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dtype_dispatch.cuh"

namespace moetrain::cuda {

// ---- forward: one block per row; pass 1 the max, pass 2 the shifted sum of exponentials ----

template <typename T>
__global__ void CrossEntropyForwardKernel(float* losses, float* lse, const T* logits,
                                          const int32_t* targets, int64_t v, int32_t ignore_index) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* z = logits + row * v;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) mx = fmaxf(mx, LoadF(z, j));
  mx = BlockMax(mx, scratch);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) sum += expf(LoadF(z, j) - mx);
  sum = BlockSum(sum, scratch);
  if (threadIdx.x != 0) return;
  const float l = mx + logf(sum);
  lse[row] = l;
  const int32_t t = targets[row];
  if (t == ignore_index)
    losses[row] = 0.f;
  else
    losses[row] = (t >= 0 && t < v) ? l - LoadF(z, t) : NAN;
}

absl::Status CrossEntropyForward(float* losses, float* lse, const void* logits,
                                 const int32_t* targets, int64_t n, int64_t v, int32_t ignore_index,
                                 DType dtype, cudaStream_t stream) {
  if (v <= 0)
    return absl::InvalidArgumentError(absl::StrFormat("cuda::CrossEntropyForward: V = %d", v));
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "CrossEntropyForward", [&](auto t) -> absl::Status {
    using T = decltype(t);
    CrossEntropyForwardKernel<T><<<static_cast<unsigned>(n), kBlockThreads, 0, stream>>>(
        losses, lse, static_cast<const T*>(logits), targets, v, ignore_index);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

// ---- backward: one thread per logit (the softmax is recomputed from the saved lse) ----

template <typename T>
__global__ void CrossEntropyBackwardKernel(T* dlogits, const T* logits, const float* lse,
                                           const int32_t* targets, float dloss, int64_t v,
                                           int32_t ignore_index, int64_t total) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= total) return;
  const int64_t row = k / v, j = k % v;
  const int32_t t = targets[row];
  if (t == ignore_index) {
    StoreF(dlogits, k, 0.f);
    return;
  }
  if (t < 0 || t >= v) {
    StoreF(dlogits, k, NAN);
    return;
  }
  const float p = expf(LoadF(logits, k) - lse[row]);
  StoreF(dlogits, k, dloss * (p - (j == t ? 1.f : 0.f)));
}

absl::Status CrossEntropyBackward(void* dlogits, const void* logits, const float* lse,
                                  const int32_t* targets, float dloss, int64_t n, int64_t v,
                                  int32_t ignore_index, DType dtype, cudaStream_t stream) {
  if (v <= 0)
    return absl::InvalidArgumentError(absl::StrFormat("cuda::CrossEntropyBackward: V = %d", v));
  const int64_t total = n * v;
  if (total == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "CrossEntropyBackward", [&](auto t) -> absl::Status {
    using T = decltype(t);
    CrossEntropyBackwardKernel<T><<<GridFor(total), kBlockThreads, 0, stream>>>(
        static_cast<T*>(dlogits), static_cast<const T*>(logits), lse, targets, dloss, v,
        ignore_index, total);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

}  // namespace moetrain::cuda

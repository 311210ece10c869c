// Shared device helpers for the CUDA kernels: storage-type loads/stores with fp32 math, the one
// dtype switch a launcher uses, grid sizing and a block-wide float sum.
//
// Storage dtypes: kF32 (float), kBF16 (__nv_bfloat16), kF16 (__half). All arithmetic is fp32; a
// store rounds to nearest even (the same rounding as core/dtype.h's FloatToBf16 / FloatToF16).
// DispatchStorage(dtype, op, f) calls f(T{}) for the matching storage type and returns
// InvalidArgument naming the op and dtype for anything else (f64, integers).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain::cuda {

__device__ __forceinline__ float LoadF(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float LoadF(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ float LoadF(const __half* p, int64_t i) { return __half2float(p[i]); }

__device__ __forceinline__ void StoreF(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void StoreF(__nv_bfloat16* p, int64_t i, float x) {
  p[i] = __float2bfloat16_rn(x);
}
__device__ __forceinline__ void StoreF(__half* p, int64_t i, float x) { p[i] = __float2half_rn(x); }

template <typename F>
absl::Status DispatchStorage(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::kF32:
      return f(float{});
    case DType::kBF16:
      return f(__nv_bfloat16{});
    case DType::kF16:
      return f(__half{});
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("cuda::%s: storage dtype %s is not supported (use f32, bf16 or f16)", op,
                          DTypeName(dtype)));
  }
}

constexpr int kBlockThreads = 256;
inline unsigned GridFor(int64_t n) {
  return static_cast<unsigned>((n + kBlockThreads - 1) / kBlockThreads);
}

// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024). Every thread gets the
// total. `scratch` is __shared__ float[32]; the call ends with a barrier so scratch may be reused.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int num_warps = blockDim.x >> 5;
  float t = lane < num_warps ? scratch[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  __syncthreads();
  return t;
}

// Max over the block, same contract as BlockSum.
__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int num_warps = blockDim.x >> 5;
  float t = lane < num_warps ? scratch[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
  __syncthreads();
  return t;
}

}  // namespace moetrain::cuda

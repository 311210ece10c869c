// See kernels/cpu/cast.cc for the derivation of the bit arithmetic (kept identical so CPU and GPU
// round bit for bit).
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dtype_dispatch.cuh"

namespace moetrain::cuda {

// ---- kernels ----

__device__ __forceinline__ float RoundBf16(float f) {
  const uint32_t u = __float_as_uint(f);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const uint32_t quiet = (u | 0x00400000u) & 0xffff0000u;
  return __uint_as_float(nan ? quiet : rounded);
}

__device__ __forceinline__ float RoundF16(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t mag = u & 0x7fffffffu;
  const uint32_t normal = (mag + 0xfffu + ((mag >> 13) & 1u)) & ~0x1fffu;
  // (|x| + 0.5) - 0.5 rounds to a multiple of 2^-24; __fadd_rn keeps nvcc from folding it away.
  const uint32_t sub = __float_as_uint(__fadd_rn(__fadd_rn(__uint_as_float(mag), 0.5f), -0.5f));
  uint32_t r = mag < 0x38800000u ? sub : normal;
  r = mag >= 0x477ff000u ? 0x7f800000u : r;
  r = mag > 0x7f800000u ? 0x7fc00000u : r;
  return __uint_as_float(sign | r);
}

template <bool kBf16>
__global__ void CastRoundKernel(const float* src, float* dst, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = kBf16 ? RoundBf16(src[i]) : RoundF16(src[i]);
}

// Exponent field all ones <=> inf or NaN. One atomic per block at most.
template <typename T>
__device__ __forceinline__ bool IsNonFinite(const T* x, int64_t i);
template <>
__device__ __forceinline__ bool IsNonFinite(const float* x, int64_t i) {
  return (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u;
}
template <>
__device__ __forceinline__ bool IsNonFinite(const __nv_bfloat16* x, int64_t i) {
  return (__bfloat16_as_ushort(x[i]) & 0x7f80u) == 0x7f80u;
}
template <>
__device__ __forceinline__ bool IsNonFinite(const __half* x, int64_t i) {
  return (__half_as_ushort(x[i]) & 0x7c00u) == 0x7c00u;
}

template <typename T>
__global__ void MarkNonFiniteKernel(const T* x, int64_t n, unsigned int* flag) {
  bool bad = false;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    bad |= IsNonFinite(x, i);
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicOr(flag, 1u);
}

// ---- launchers ----

absl::Status CastRound(const float* src, float* dst, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  switch (dtype) {
    case DType::kF32:
      if (dst != src)
        CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float),
                                             cudaMemcpyDeviceToDevice, stream));
      return absl::OkStatus();
    case DType::kBF16:
      CastRoundKernel<true><<<GridFor(n), kBlockThreads, 0, stream>>>(src, dst, n);
      break;
    case DType::kF16:
      CastRoundKernel<false><<<GridFor(n), kBlockThreads, 0, stream>>>(src, dst, n);
      break;
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "cuda::CastRound: cannot round to %s (use f32, bf16 or f16)", DTypeName(dtype)));
  }
  CUDA_RETURN_IF_LAUNCH_ERROR();
  return absl::OkStatus();
}

absl::Status RoundToDType(float* x, int64_t n, DType dtype, cudaStream_t stream) {
  return CastRound(x, x, n, dtype, stream);
}

absl::Status MarkNonFinite(const void* x, int64_t n, DType dtype, unsigned int* flag,
                           cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  return DispatchStorage(dtype, "MarkNonFinite", [&](auto t) -> absl::Status {
    using T = decltype(t);
    // Grid-stride: at most 1024 blocks, so at most 1024 atomics per tensor.
    const unsigned blocks = GridFor(n) < 1024u ? GridFor(n) : 1024u;
    MarkNonFiniteKernel<T><<<blocks, kBlockThreads, 0, stream>>>(static_cast<const T*>(x), n, flag);
    CUDA_RETURN_IF_LAUNCH_ERROR();
    return absl::OkStatus();
  });
}

}  // namespace moetrain::cuda

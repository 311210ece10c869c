// Helpers for the CUDA parity tests (CUDA op vs the CPU kernel of the same header, random inputs,
// tolerance by storage dtype).
//
// - MT_SKIP_WITHOUT_GPU(op, dtype): without a device, prints the SKIP parity line and GTEST_SKIPs.
// - DeviceBuffer: owns one cudaMalloc'd block; Upload / Download of host vectors (asserting
// success).
// - Inputs are random floats rounded to the storage dtype first, so CPU and GPU read identical
//   values; ToStorage / FromStorage convert between those floats and f32 / bf16 / f16 bytes
//   (core/dtype.h's conversions, which match CUDA's round-to-nearest-even).
// - ExpectParity(op, dtype, gpu, cpu, rtol, atol) checks |gpu - cpu| <= atol + rtol |cpu| and
// prints
//   one machine-readable line that scripts/gpu-check.sh collects into its table:
//     MT_PARITY op=<op> dtype=<dtype> max_err=<max abs error> tol=<rtol>/<atol>
//     result=PASS|FAIL|SKIP
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/testing/test_util.h"

namespace moetrain::testing {

inline void PrintParityLine(const std::string& op, DType dtype, double max_err, double rtol,
                            double atol, const char* result) {
  if (std::isnan(max_err))  // SKIP: nothing was measured
    std::printf("MT_PARITY op=%s dtype=%s max_err=- tol=- result=%s\n", op.c_str(),
                DTypeName(dtype), result);
  else
    std::printf("MT_PARITY op=%s dtype=%s max_err=%.3g tol=%.3g/%.3g result=%s\n", op.c_str(),
                DTypeName(dtype), max_err, rtol, atol, result);
  std::fflush(stdout);
}

#define MT_SKIP_WITHOUT_GPU(op, dtype)                                            \
  do {                                                                            \
    if (::moetrain::cuda::CudaDeviceCount() == 0) {                               \
      ::moetrain::testing::PrintParityLine((op), (dtype), NAN, NAN, NAN, "SKIP"); \
      GTEST_SKIP() << "no CUDA device (or no usable driver): " << (op)            \
                   << " parity test compiled but not run";                        \
    }                                                                             \
  } while (0)

// Unit roundoff of the storage dtype (half an ulp at 1): the error of one final rounding.
inline double UnitRoundoff(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return std::ldexp(1.0, -8);
    case DType::kF16:
      return std::ldexp(1.0, -11);
    default:
      return std::ldexp(1.0, -24);
  }
}

inline float RoundTo(float x, DType dtype) {
  if (dtype == DType::kBF16) return Bf16ToFloat(FloatToBf16(x));
  if (dtype == DType::kF16) return F16ToFloat(FloatToF16(x));
  return x;
}

// Normal(0, scale) floats, each rounded to `dtype`.
inline std::vector<float> RoundedRandom(int64_t n, uint64_t seed, DType dtype, double scale = 1.0) {
  std::vector<float> v = RandomVector<float>(n, seed, scale);
  for (float& x : v) x = RoundTo(x, dtype);
  return v;
}

inline std::vector<uint8_t> ToStorage(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * DTypeSize(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? FloatToBf16(v[i]) : FloatToF16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

inline std::vector<float> FromStorage(const std::vector<uint8_t>& b, DType dtype) {
  const size_t n = b.size() / DTypeSize(dtype);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[i], b.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      out[i] = dtype == DType::kBF16 ? Bf16ToFloat(h) : F16ToFloat(h);
    }
  }
  return out;
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    EXPECT_EQ(cudaMalloc(&ptr_, bytes_ ? bytes_ : 1), cudaSuccess) << "cudaMalloc " << bytes_;
  }
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    Upload(host);
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <typename T>
  void Upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size() * sizeof(T), bytes_);
    ASSERT_EQ(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice), cudaSuccess);
  }
  // Synchronous copy back (waits for the default stream's work).
  template <typename T>
  std::vector<T> Download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    EXPECT_EQ(cudaMemcpy(host.data(), ptr_, bytes_, cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

// Storage-typed upload of floats / download as floats.
inline std::vector<float> DownloadAsFloat(const DeviceBuffer& d, DType dtype) {
  return FromStorage(d.Download<uint8_t>(), dtype);
}

inline ::testing::AssertionResult ExpectParity(const std::string& op, DType dtype,
                                               const std::vector<float>& gpu,
                                               const std::vector<float>& cpu, double rtol,
                                               double atol) {
  double max_err = 0;
  for (size_t i = 0; i < gpu.size() && i < cpu.size(); ++i) {
    const double e = std::fabs(static_cast<double>(gpu[i]) - static_cast<double>(cpu[i]));
    max_err = std::isnan(e) ? INFINITY : std::max(max_err, e);
  }
  ::testing::AssertionResult r = AllClose(gpu, cpu, rtol, atol, op + " " + DTypeName(dtype));
  PrintParityLine(op, dtype, max_err, rtol, atol, r ? "PASS" : "FAIL");
  return r;
}

}  // namespace moetrain::testing

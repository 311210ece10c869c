// CUDA SwiGLU against the CPU version (and through it, the float64 reference of the CPU test).
// Skips cleanly when no GPU is present.
#include <cuda_runtime.h>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/swiglu.cuh"
#include "kernels/swiglu.h"
#include "tests/testing/test_util.h"

namespace moetrain {
namespace {

template <typename T>
void RunParity(double tol) {
  if (cuda::CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  const int64_t n = 100003;  // not a multiple of the block size
  auto a = testing::RandomVector<T>(n, 1, 3.0), b = testing::RandomVector<T>(n, 2), dh = testing::RandomVector<T>(n, 3);
  std::vector<T> h(n), da(n), db(n), gh(n), gda(n), gdb(n);
  kernels::SwigluForward(h.data(), a.data(), b.data(), n);
  kernels::SwigluBackward(da.data(), db.data(), dh.data(), a.data(), b.data(), n);
  T *d_a, *d_b, *d_dh, *d_h, *d_da, *d_db;
  for (T** p : {&d_a, &d_b, &d_dh, &d_h, &d_da, &d_db}) ASSERT_EQ(cudaMalloc(p, n * sizeof(T)), cudaSuccess);
  cudaMemcpy(d_a, a.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(d_b, b.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(d_dh, dh.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  ASSERT_TRUE(cuda::SwigluForward(d_h, d_a, d_b, n, nullptr).ok());
  ASSERT_TRUE(cuda::SwigluBackward(d_da, d_db, d_dh, d_a, d_b, n, nullptr).ok());
  cudaMemcpy(gh.data(), d_h, n * sizeof(T), cudaMemcpyDeviceToHost);
  cudaMemcpy(gda.data(), d_da, n * sizeof(T), cudaMemcpyDeviceToHost);
  cudaMemcpy(gdb.data(), d_db, n * sizeof(T), cudaMemcpyDeviceToHost);
  for (T* p : {d_a, d_b, d_dh, d_h, d_da, d_db}) cudaFree(p);
  EXPECT_TRUE(testing::AllClose(gh, h, tol, tol, "h"));
  EXPECT_TRUE(testing::AllClose(gda, da, tol, tol, "da"));
  EXPECT_TRUE(testing::AllClose(gdb, db, tol, tol, "db"));
}

TEST(SwigluCudaTest, FloatMatchesCpu) { RunParity<float>(1e-5); }
TEST(SwigluCudaTest, DoubleMatchesCpu) { RunParity<double>(1e-12); }

}  // namespace
}  // namespace moetrain

// NcclCommunicator on device buffers, against references computed on the host from every rank's
// known inputs. Skips cleanly without a GPU. Built with mpi_test_main.cc: a plain run is a world of
// one (LocalCommunicator bootstrap); `mpirun -np N` on a node with >= N GPUs tests N ranks.
#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::parallel {
namespace {

using testing::TestLaunch;
using testing::TestWorld;

// Small dyadic values: sums are exact in any order.
float Value(int rank, int64_t i) { return static_cast<float>((rank * 131 + i * 17) % 97 - 48) / 8; }

template <typename T>
T* ToDevice(const std::vector<T>& h) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, std::max<size_t>(1, h.size()) * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

template <typename T>
std::vector<T> ToHost(const T* d, size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int devices = cuda::CudaDeviceCount();
    if (devices == 0) GTEST_SKIP() << "no CUDA device";
    if (devices < TestLaunch().local_size) GTEST_SKIP() << "fewer GPUs than local ranks";
    auto c = NcclCommunicator::Create(TestWorld(), TestLaunch().device % devices);
    ASSERT_TRUE(c.ok()) << c.status();
    comm_ = std::move(*c);
  }
  std::unique_ptr<NcclCommunicator> comm_;
};

TEST_F(NcclCommunicatorTest, AllReduceReduceScatterAllGather) {
  NcclCommunicator& c = *comm_;
  const int n = c.size(), r = c.rank();
  EXPECT_STREQ(c.backend(), "nccl");
  const int64_t chunk = 1001;
  std::vector<float> in(n * chunk), sum(n * chunk, 0.f);
  for (int64_t i = 0; i < n * chunk; ++i) {
    in[i] = Value(r, i);
    for (int q = 0; q < n; ++q) sum[i] += Value(q, i);
  }
  float* d_in = ToDevice(in);
  float* d_out = ToDevice(std::vector<float>(n * chunk));
  EXPECT_TRUE(c.AllReduce(d_in, d_out, n * chunk, DType::kF32).ok());
  EXPECT_EQ(ToHost(d_out, n * chunk), sum);
  EXPECT_TRUE(c.ReduceScatter(d_in, d_in + r * chunk, chunk, DType::kF32).ok());  // in place
  auto rs = ToHost(d_in + r * chunk, chunk);
  EXPECT_EQ(rs, std::vector<float>(sum.begin() + r * chunk, sum.begin() + (r + 1) * chunk));
  EXPECT_TRUE(c.AllGather(d_in + r * chunk, d_in, chunk, DType::kF32).ok());  // in place
  EXPECT_EQ(ToHost(d_in, n * chunk), sum);
  cudaFree(d_in);
  cudaFree(d_out);
}

TEST_F(NcclCommunicatorTest, AllToAllVBroadcastBarrierAndNonBlocking) {
  NcclCommunicator& c = *comm_;
  const int n = c.size(), r = c.rank();
  auto count = [](int from, int to) { return int64_t{(from + 2 * to) % 3}; };
  std::vector<int64_t> sc(n), sd(n), rc(n), rd(n);
  int64_t ss = 0, rs = 0;
  for (int j = 0; j < n; ++j) {
    sc[j] = count(r, j);
    sd[j] = ss;
    ss += sc[j];
    rc[j] = count(j, r);
    rd[j] = rs;
    rs += rc[j];
  }
  std::vector<int32_t> send(ss), want(rs);
  for (int j = 0; j < n; ++j)
    for (int64_t k = 0; k < sc[j]; ++k) send[sd[j] + k] = r * 100 + j * 10 + static_cast<int>(k);
  for (int i = 0; i < n; ++i)
    for (int64_t k = 0; k < rc[i]; ++k) want[rd[i] + k] = i * 100 + r * 10 + static_cast<int>(k);
  int32_t* d_send = ToDevice(send);
  int32_t* d_recv = ToDevice(std::vector<int32_t>(rs));
  auto h = c.IAllToAllV(d_send, sc, sd, d_recv, rc, rd, DType::kI32);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->Wait().ok());
  EXPECT_EQ(ToHost(d_recv, rs), want);

  std::vector<double> b(64, r == 0 ? 2.5 : 0.0);
  double* d_b = ToDevice(b);
  EXPECT_TRUE(c.Broadcast(d_b, 64, DType::kF64, 0).ok());
  EXPECT_EQ(ToHost(d_b, 64), std::vector<double>(64, 2.5));
  EXPECT_TRUE(c.Barrier().ok());

  std::vector<uint16_t> h16(32, FloatToBf16(1.0f));
  uint16_t* d16 = ToDevice(h16);
  auto h2 = c.IAllReduce(d16, d16, 32, DType::kBF16);
  ASSERT_TRUE(h2.ok()) << h2.status();
  EXPECT_TRUE(h2->Wait().ok());
  for (uint16_t v : ToHost(d16, 32)) EXPECT_EQ(Bf16ToFloat(v), static_cast<float>(n));
  EXPECT_EQ(c.counters().all_reduce.calls, 1);
  cudaFree(d_send);
  cudaFree(d_recv);
  cudaFree(d_b);
  cudaFree(d16);
}

}  // namespace
}  // namespace moetrain::parallel

// LocalCommunicator specifics (the shared contract is tested by communicator_test.cc, which runs
// against LocalCommunicator when started without mpirun).
#include "parallel/local_communicator.h"

#include <vector>

#include "gtest/gtest.h"

namespace moetrain::parallel {
namespace {

TEST(LocalCommunicatorTest, IsAGroupOfOneInHostMemory) {
  LocalCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_STREQ(c.backend(), "local");
  EXPECT_EQ(c.memory_space(), MemorySpace::kHost);
}

TEST(LocalCommunicatorTest, CollectivesCopyEveryDType) {
  LocalCommunicator c;
  const std::vector<uint16_t> in = {1, 2, 3, 0xffff};
  for (DType dt : {DType::kBF16, DType::kF16}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      std::vector<uint16_t> out(4);
      EXPECT_TRUE(c.AllReduce(in.data(), out.data(), 4, dt, op).ok());
      EXPECT_EQ(out, in);
    }
    std::vector<uint16_t> out(4);
    EXPECT_TRUE(c.ReduceScatter(in.data(), out.data(), 4, dt).ok());
    EXPECT_EQ(out, in);
  }
  std::vector<double> a = {1.5, -2.0}, b(2);
  EXPECT_TRUE(c.AllGather(a.data(), b.data(), 2, DType::kF64).ok());
  EXPECT_EQ(a, b);
  EXPECT_TRUE(c.Broadcast(a.data(), 2, DType::kF64, 0).ok());
  EXPECT_EQ(a, (std::vector<double>{1.5, -2.0}));
}

TEST(LocalCommunicatorTest, AllToAllVHonoursDisplacements) {
  LocalCommunicator c;
  const std::vector<int32_t> send = {9, 9, 4, 5, 6};
  std::vector<int32_t> recv(6, 0);
  const std::vector<int64_t> sc = {3}, sd = {2}, rc = {3}, rd = {1};
  EXPECT_TRUE(c.AllToAllV(send.data(), sc, sd, recv.data(), rc, rd, DType::kI32).ok());
  EXPECT_EQ(recv, (std::vector<int32_t>{0, 4, 5, 6, 0, 0}));
  const std::vector<int64_t> bad = {2};
  auto s = c.AllToAllV(send.data(), sc, sd, recv.data(), bad, rd, DType::kI32);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("send_counts[0]=3 != recv_counts[0]=2"),
            std::string::npos);
}

TEST(LocalCommunicatorTest, NonBlockingCallsCompleteImmediately) {
  LocalCommunicator c;
  std::vector<float> a = {1, 2, 3}, b(3);
  auto h = c.IAllReduce(a.data(), b.data(), 3, DType::kF32);
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->pending());
  EXPECT_EQ(a, b);
  EXPECT_TRUE(h->Wait().ok());
  EXPECT_EQ(c.counters().all_reduce.calls, 1);
  EXPECT_EQ(c.counters().all_reduce.payload_bytes, 12);
  EXPECT_EQ(c.counters().all_reduce.bus_bytes, 0);
}

}  // namespace
}  // namespace moetrain::parallel

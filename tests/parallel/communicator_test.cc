// Every collective over the whole world, checked against a reference computed locally from the
// known inputs of every rank. Runs as N MPI ranks (MpiCommunicator) and as a plain process
// (LocalCommunicator, a world of one). Inputs are small dyadic numbers, so float sums are exact in
// any order and the comparisons are exact.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "gtest/gtest.h"
#include "parallel/mpi_check.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::parallel {
namespace {

using testing::TestWorld;

#define EXPECT_OK(expr)                          \
  do {                                           \
    const absl::Status s_ = (expr);              \
    EXPECT_TRUE(s_.ok()) << #expr << ": " << s_; \
  } while (0)

// The value rank `rank` contributes at element i (any seed mixes in).
template <typename T>
T Value(int rank, int64_t i, int seed = 0) {
  const int64_t k = (rank * 131 + i * 17 + seed * 7) % 97 - 48;
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(k) * static_cast<T>(0.125);
  } else if constexpr (sizeof(T) == 8) {
    return static_cast<T>(k) * (int64_t{1} << 33) + rank;  // uses the upper 32 bits
  } else {
    return static_cast<T>(k);
  }
}

template <typename T>
std::vector<T> Inputs(int rank, int64_t n, int seed = 0) {
  std::vector<T> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = Value<T>(rank, i, seed);
  return v;
}

template <typename T>
T Reduce(ReduceOp op, int world, int64_t i, int seed = 0) {
  T acc = Value<T>(0, i, seed);
  for (int r = 1; r < world; ++r) {
    const T x = Value<T>(r, i, seed);
    acc = op == ReduceOp::kSum   ? acc + x
          : op == ReduceOp::kMax ? std::max(acc, x)
                                 : std::min(acc, x);
  }
  return acc;
}

// AllToAllV layout: rank i sends Count(i, j) elements to rank j (zeros included), with a gap of one
// element between send chunks and receive chunks stored in reverse peer order.
int64_t Count(int from, int to) { return (from + 2 * to) % 3 + (from == to ? 1 : 0) * (to % 2); }
template <typename T>
T A2aValue(int from, int to, int64_t k) {
  return static_cast<T>(from * 100 + to * 10 + k);
}

struct A2aLayout {
  std::vector<int64_t> send_counts, send_displs, recv_counts, recv_displs;
  int64_t send_size = 0, recv_size = 0;
};

A2aLayout MakeLayout(int rank, int n) {
  A2aLayout l;
  l.send_counts.resize(n);
  l.send_displs.resize(n);
  l.recv_counts.resize(n);
  l.recv_displs.resize(n);
  for (int j = 0; j < n; ++j) {
    l.send_counts[j] = Count(rank, j);
    l.send_displs[j] = l.send_size;
    l.send_size += l.send_counts[j] + 1;  // a one-element gap
  }
  for (int j = n - 1; j >= 0; --j) {  // reverse order
    l.recv_counts[j] = Count(j, rank);
    l.recv_displs[j] = l.recv_size;
    l.recv_size += l.recv_counts[j];
  }
  return l;
}

template <typename T>
std::vector<T> A2aSend(const A2aLayout& l, int rank, int n) {
  std::vector<T> send(l.send_size, static_cast<T>(-7));
  for (int j = 0; j < n; ++j)
    for (int64_t k = 0; k < l.send_counts[j]; ++k)
      send[l.send_displs[j] + k] = A2aValue<T>(rank, j, k);
  return send;
}

template <typename T>
std::vector<T> A2aExpected(const A2aLayout& l, int rank, int n) {
  std::vector<T> want(l.recv_size);
  for (int i = 0; i < n; ++i)
    for (int64_t k = 0; k < l.recv_counts[i]; ++k)
      want[l.recv_displs[i] + k] = A2aValue<T>(i, rank, k);
  return want;
}

template <typename T>
class CommunicatorTypedTest : public ::testing::Test {};
using Types = ::testing::Types<float, double, int32_t, int64_t>;
TYPED_TEST_SUITE(CommunicatorTypedTest, Types);

TYPED_TEST(CommunicatorTypedTest, AllReduceSumMaxMinOutOfPlaceAndInPlace) {
  using T = TypeParam;
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  const DType dt = DTypeOf<T>::value;
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{1037}}) {
      SCOPED_TRACE(std::string(ReduceOpName(op)) + " count " + std::to_string(count));
      std::vector<T> want(count);
      for (int64_t i = 0; i < count; ++i) want[i] = Reduce<T>(op, n, i);
      auto in = Inputs<T>(r, count);
      std::vector<T> out(count, static_cast<T>(99));
      EXPECT_OK(c.AllReduce(in.data(), out.data(), count, dt, op));
      EXPECT_EQ(out, want);
      EXPECT_EQ(in, Inputs<T>(r, count)) << "input modified";
      EXPECT_OK(c.AllReduce(in.data(), in.data(), count, dt, op));  // in place
      EXPECT_EQ(in, want);
    }
  }
}

TYPED_TEST(CommunicatorTypedTest, ReduceScatterOutOfPlaceAndInPlace) {
  using T = TypeParam;
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  const DType dt = DTypeOf<T>::value;
  const int64_t chunk = 257;
  std::vector<T> want(chunk);
  for (int64_t i = 0; i < chunk; ++i) want[i] = Reduce<T>(ReduceOp::kSum, n, r * chunk + i);
  auto in = Inputs<T>(r, n * chunk);
  std::vector<T> out(chunk);
  EXPECT_OK(c.ReduceScatter(in.data(), out.data(), chunk, dt));
  EXPECT_EQ(out, want);
  // In place: the result lands in this rank's chunk of the buffer.
  EXPECT_OK(c.ReduceScatter(in.data(), in.data() + r * chunk, chunk, dt));
  EXPECT_EQ(std::vector<T>(in.begin() + r * chunk, in.begin() + (r + 1) * chunk), want);
}

TYPED_TEST(CommunicatorTypedTest, AllGatherOutOfPlaceAndInPlace) {
  using T = TypeParam;
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  const DType dt = DTypeOf<T>::value;
  const int64_t chunk = 301;
  std::vector<T> want;
  for (int q = 0; q < n; ++q) {
    auto v = Inputs<T>(q, chunk, /*seed=*/q);
    want.insert(want.end(), v.begin(), v.end());
  }
  auto in = Inputs<T>(r, chunk, r);
  std::vector<T> out(n * chunk);
  EXPECT_OK(c.AllGather(in.data(), out.data(), chunk, dt));
  EXPECT_EQ(out, want);
  std::vector<T> buf(n * chunk, static_cast<T>(5));
  std::copy(in.begin(), in.end(), buf.begin() + r * chunk);
  EXPECT_OK(c.AllGather(buf.data() + r * chunk, buf.data(), chunk, dt));  // in place
  EXPECT_EQ(buf, want);
}

TYPED_TEST(CommunicatorTypedTest, AllToAllVUnevenCountsWithZeros) {
  using T = TypeParam;
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  const A2aLayout l = MakeLayout(r, n);
  const auto send = A2aSend<T>(l, r, n);
  std::vector<T> recv(l.recv_size, static_cast<T>(-1));
  EXPECT_OK(c.AllToAllV(send.data(), l.send_counts, l.send_displs, recv.data(), l.recv_counts,
                        l.recv_displs, DTypeOf<T>::value));
  EXPECT_EQ(recv, (A2aExpected<T>(l, r, n)));
}

TYPED_TEST(CommunicatorTypedTest, BroadcastFromEveryRoot) {
  using T = TypeParam;
  Communicator& c = TestWorld();
  for (int root = 0; root < c.size(); ++root) {
    auto buf = c.rank() == root ? Inputs<T>(root, 513, 3) : std::vector<T>(513, static_cast<T>(0));
    EXPECT_OK(c.Broadcast(buf.data(), 513, DTypeOf<T>::value, root));
    EXPECT_EQ(buf, (Inputs<T>(root, 513, 3))) << "root " << root;
  }
}

TEST(CommunicatorTest, NonBlockingCollectivesOverlap) {
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  // Issue all four, then wait in reverse order.
  auto ar = Inputs<float>(r, 1000);
  auto rs_in = Inputs<double>(r, n * 100, 1);
  std::vector<double> rs_out(100);
  auto ag_in = Inputs<int32_t>(r, 50, r);
  std::vector<int32_t> ag_out(n * 50);
  const A2aLayout l = MakeLayout(r, n);
  const auto a2a_send = A2aSend<int64_t>(l, r, n);
  std::vector<int64_t> a2a_recv(l.recv_size);

  auto h1 = c.IAllReduce(ar.data(), ar.data(), 1000, DType::kF32);
  auto h2 = c.IReduceScatter(rs_in.data(), rs_out.data(), 100, DType::kF64);
  auto h3 = c.IAllGather(ag_in.data(), ag_out.data(), 50, DType::kI32);
  auto h4 = c.IAllToAllV(a2a_send.data(), l.send_counts, l.send_displs, a2a_recv.data(),
                         l.recv_counts, l.recv_displs, DType::kI64);
  for (auto* h : {&h4, &h3, &h2, &h1}) {
    EXPECT_OK(h->status());
    if (h->ok()) EXPECT_OK((*h)->Wait());
  }
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(ar[i], (Reduce<float>(ReduceOp::kSum, n, i))) << i;
  for (int64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(rs_out[i], (Reduce<double>(ReduceOp::kSum, n, r * 100 + i, 1))) << i;
  }
  for (int q = 0; q < n; ++q)
    for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(ag_out[q * 50 + i], (Value<int32_t>(q, i, q)));
  EXPECT_EQ(a2a_recv, (A2aExpected<int64_t>(l, r, n)));
}

TEST(CommunicatorTest, NonBlockingInPlaceReduceScatterAndAllGather) {
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  auto buf = Inputs<float>(r, n * 64, 2);
  auto h = c.IReduceScatter(buf.data(), buf.data() + r * 64, 64, DType::kF32);
  EXPECT_OK(h.status());
  if (h.ok()) EXPECT_OK(h->Wait());
  for (int64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(buf[r * 64 + i], (Reduce<float>(ReduceOp::kSum, n, r * 64 + i, 2))) << i;
  }
  std::vector<float> gathered(n * 64);
  for (int64_t i = 0; i < 64; ++i) gathered[r * 64 + i] = static_cast<float>(r * 1000 + i);
  auto g = c.IAllGather(gathered.data() + r * 64, gathered.data(), 64, DType::kF32);
  EXPECT_OK(g.status());
  if (g.ok()) EXPECT_OK(g->Wait());
  for (int q = 0; q < n; ++q)
    for (int64_t i = 0; i < 64; ++i)
      EXPECT_EQ(gathered[q * 64 + i], static_cast<float>(q * 1000 + i));
}

TEST(CommunicatorTest, HandleWaitIsIdempotentAndDestructionWaits) {
  Communicator& c = TestWorld();
  const int n = c.size();
  std::vector<int64_t> v(10, 1);
  {
    auto h = c.IAllReduce(v.data(), v.data(), 10, DType::kI64);
    EXPECT_OK(h.status());
    if (h.ok()) {
      EXPECT_TRUE(h->pending() || n == 1);
      EXPECT_OK(h->Wait());
      EXPECT_FALSE(h->pending());
      EXPECT_OK(h->Wait());
    }
  }
  EXPECT_EQ(v, std::vector<int64_t>(10, n));
  {
    auto h = c.IAllReduce(v.data(), v.data(), 10, DType::kI64);  // never waited explicitly
    EXPECT_OK(h.status());
  }
  EXPECT_EQ(v, std::vector<int64_t>(10, int64_t{n} * n));
  CommHandle done;
  EXPECT_FALSE(done.pending());
  EXPECT_OK(done.Wait());
}

TEST(CommunicatorTest, SixteenBitFloats) {
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  // Small integers and halves are exact in bf16 and f16, so sums are exact.
  for (DType dt : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(DTypeName(dt));
    auto to16 = [dt](float f) { return dt == DType::kBF16 ? FloatToBf16(f) : FloatToF16(f); };
    auto from16 = [dt](uint16_t h) { return dt == DType::kBF16 ? Bf16ToFloat(h) : F16ToFloat(h); };
    const int64_t count = 77;
    std::vector<uint16_t> in(count);
    for (int64_t i = 0; i < count; ++i) in[i] = to16(Value<float>(r, i) * 4);
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      std::vector<uint16_t> out(count);
      EXPECT_OK(c.AllReduce(in.data(), out.data(), count, dt, op));
      for (int64_t i = 0; i < count; ++i) {
        EXPECT_EQ(from16(out[i]), Reduce<float>(op, n, i) * 4) << ReduceOpName(op) << " " << i;
      }
    }
    std::vector<uint16_t> gathered(n * count);
    EXPECT_OK(c.AllGather(in.data(), gathered.data(), count, dt));
    for (int q = 0; q < n; ++q)
      for (int64_t i = 0; i < count; ++i)
        EXPECT_EQ(from16(gathered[q * count + i]), Value<float>(q, i) * 4);
  }
}

TEST(CommunicatorTest, BarrierCompletes) { EXPECT_OK(TestWorld().Barrier()); }

TEST(CommunicatorTest, ByteCountersFollowTheDocumentedFormulas) {
  Communicator& c = TestWorld();
  const int64_t n = c.size(), r = c.rank();
  c.ResetCounters();
  EXPECT_EQ(c.counters().TotalBusBytes(), 0);
  std::vector<float> f(n * 100);
  std::vector<float> g(n * 100);
  EXPECT_OK(c.AllReduce(f.data(), f.data(), 100, DType::kF32));      // S = 400
  EXPECT_OK(c.AllReduce(f.data(), g.data(), 30, DType::kF32));       // S = 120
  EXPECT_OK(c.ReduceScatter(f.data(), g.data(), 100, DType::kF32));  // S = n*400
  EXPECT_OK(c.AllGather(f.data(), g.data(), 100, DType::kF32));      // S = n*400
  EXPECT_OK(c.Broadcast(f.data(), 50, DType::kF32, 0));              // S = 200
  EXPECT_OK(c.Barrier());
  const A2aLayout l = MakeLayout(static_cast<int>(r), static_cast<int>(n));
  const auto send = A2aSend<double>(l, static_cast<int>(r), static_cast<int>(n));
  std::vector<double> recv(l.recv_size);
  auto h = c.IAllToAllV(send.data(), l.send_counts, l.send_displs, recv.data(), l.recv_counts,
                        l.recv_displs, DType::kF64);
  EXPECT_OK(h.status());
  if (h.ok()) EXPECT_OK(h->Wait());

  const CommCounters& k = c.counters();
  EXPECT_EQ(k.all_reduce.calls, 2);
  EXPECT_EQ(k.all_reduce.payload_bytes, 400 + 120);
  EXPECT_EQ(k.all_reduce.bus_bytes, 2 * (n - 1) * 400 / n + 2 * (n - 1) * 120 / n);
  EXPECT_EQ(k.reduce_scatter.calls, 1);
  EXPECT_EQ(k.reduce_scatter.payload_bytes, n * 400);
  EXPECT_EQ(k.reduce_scatter.bus_bytes, (n - 1) * 400);
  EXPECT_EQ(k.all_gather.payload_bytes, n * 400);
  EXPECT_EQ(k.all_gather.bus_bytes, (n - 1) * 400);
  EXPECT_EQ(k.broadcast.payload_bytes, 200);
  EXPECT_EQ(k.broadcast.bus_bytes, n > 1 ? 200 : 0);
  EXPECT_EQ(k.barrier.calls, 1);
  EXPECT_EQ(k.barrier.payload_bytes, 0);
  int64_t a2a_payload = 0, a2a_bus = 0;
  for (int64_t j = 0; j < n; ++j) {
    a2a_payload += Count(static_cast<int>(r), static_cast<int>(j)) * 8;
    if (j != r) a2a_bus += Count(static_cast<int>(r), static_cast<int>(j)) * 8;
  }
  EXPECT_EQ(k.all_to_all_v.calls, 1);
  EXPECT_EQ(k.all_to_all_v.payload_bytes, a2a_payload);
  EXPECT_EQ(k.all_to_all_v.bus_bytes, a2a_bus);
  EXPECT_EQ(k.TotalBusBytes(), k.all_reduce.bus_bytes + k.reduce_scatter.bus_bytes +
                                   k.all_gather.bus_bytes + k.broadcast.bus_bytes + a2a_bus);
  if (n == 1) {
    EXPECT_EQ(k.TotalBusBytes(), 0);
  }
  EXPECT_NE(k.ToString().find("all_reduce 2 calls"), std::string::npos) << k.ToString();

  // A rejected call is not counted.
  EXPECT_FALSE(c.AllReduce(f.data(), f.data(), -1, DType::kF32).ok());
  EXPECT_EQ(c.counters().all_reduce.calls, 2);
  c.ResetCounters();
  EXPECT_EQ(c.counters().all_reduce.calls, 0);
  EXPECT_EQ(c.counters().TotalPayloadBytes(), 0);
}

// Argument errors are caught before any communication, identically on every backend and rank.
TEST(CommunicatorTest, BadArgumentsAreInvalidArgument) {
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  std::vector<float> buf(4 * n + 8);
  auto code = [](const absl::Status& s) { return s.code(); };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(c.AllReduce(buf.data(), buf.data(), -1, DType::kF32)), kInvalid);
  EXPECT_EQ(code(c.AllReduce(nullptr, buf.data(), 4, DType::kF32)), kInvalid);
  EXPECT_EQ(code(c.AllReduce(buf.data(), buf.data() + 1, 4, DType::kF32)), kInvalid);  // overlap
  EXPECT_EQ(code(c.IAllReduce(buf.data(), buf.data() + 2, 4, DType::kF32).status()), kInvalid);
  EXPECT_EQ(code(c.Broadcast(buf.data(), 4, DType::kF32, n)), kInvalid);
  EXPECT_EQ(code(c.Broadcast(buf.data(), 4, DType::kF32, -1)), kInvalid);
  // ReduceScatter in place must use this rank's chunk; AllGather likewise.
  const int other = (r + 1) % n;
  if (n > 1) {
    EXPECT_EQ(code(c.ReduceScatter(buf.data(), buf.data() + other * 4, 4, DType::kF32)), kInvalid);
    EXPECT_EQ(code(c.AllGather(buf.data() + other * 4, buf.data(), 4, DType::kF32)), kInvalid);
  }
  EXPECT_EQ(code(c.ReduceScatter(buf.data(), buf.data() + r * 4 + 1, 4, DType::kF32)), kInvalid);
  std::vector<int64_t> ok_counts(n, 1), displs(n), short_counts(n + 1, 1);
  std::iota(displs.begin(), displs.end(), 0);
  std::vector<float> recv(n);
  EXPECT_EQ(code(c.AllToAllV(buf.data(), short_counts, displs, recv.data(), ok_counts, displs,
                             DType::kF32)),
            kInvalid);
  std::vector<int64_t> negative(n, 1);
  negative[0] = -1;
  EXPECT_EQ(
      code(c.AllToAllV(buf.data(), negative, displs, recv.data(), ok_counts, displs, DType::kF32)),
      kInvalid);
  EXPECT_EQ(
      code(c.AllToAllV(buf.data(), ok_counts, displs, buf.data(), ok_counts, displs, DType::kF32)),
      kInvalid);  // overlap
}

// Split: ranks with the same color form a group ranked by key; the result is independent.
TEST(CommunicatorTest, SplitGroupsByColorAndRanksByKey) {
  Communicator& c = TestWorld();
  const int n = c.size(), r = c.rank();
  // Two colors (even / odd ranks), ranked in reverse order of the parent rank.
  auto sub = c.Split(r % 2, n - r);
  ASSERT_TRUE(sub.ok()) << sub.status();  // fails identically on every rank
  Communicator& s = **sub;
  std::vector<int> members;
  for (int q = n - 1; q >= 0; --q)
    if (q % 2 == r % 2) members.push_back(q);
  EXPECT_EQ(s.size(), static_cast<int>(members.size()));
  EXPECT_EQ(members[s.rank()], r);
  EXPECT_STREQ(s.backend(), c.backend());
  int32_t me = r;
  std::vector<int32_t> gathered(s.size(), -1);
  EXPECT_OK(s.AllGather(&me, gathered.data(), 1, DType::kI32));
  EXPECT_EQ(std::vector<int>(gathered.begin(), gathered.end()), members);
  EXPECT_EQ(s.counters().all_gather.calls, 1);
  EXPECT_EQ(c.Split(-1, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CommunicatorTest, MpiCountsAboveIntMaxAndErrorText) {
  Communicator& c = TestWorld();
  if (std::string(c.backend()) != "mpi") GTEST_SKIP() << "MPI backend only";
  float x = 0;
  // Rejected before MPI is called (in place, so no buffer is read), identically on every rank.
  const absl::Status s = c.AllReduce(&x, &x, int64_t{1} << 31, DType::kF32);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_NE(std::string(s.message()).find("INT_MAX"), std::string::npos) << s;

  const absl::Status e = MpiStatus(MPI_ERR_COUNT, "MPI_Allreduce(a, b, n)", "f.cc", 12);
  EXPECT_EQ(e.code(), absl::StatusCode::kInternal);
  EXPECT_NE(std::string(e.message()).find("MPI_Allreduce failed at f.cc:12: "), std::string::npos)
      << e;
  EXPECT_NE(std::string(e.message()).find("HINT"), std::string::npos) << e;
  EXPECT_TRUE(MpiStatus(MPI_SUCCESS, "MPI_Barrier", "f.cc", 1).ok());
}

}  // namespace
}  // namespace moetrain::parallel

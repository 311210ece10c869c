// ExpertDispatcher over the whole test world as the EP group (1..4 MPI ranks, or a world of one
// without MPI). Every rank regenerates every rank's counts and rows from the case name, so the
// received rows, the plan and the byte counters are checked against references computed locally
// from the known global routing, never from the dispatcher's own plan. A row's values encode
// (source rank, expert, index within the expert, column), so a misplaced row cannot go unnoticed;
// they are small integers, exact in float and double, so comparisons are bitwise.
#include "parallel/expert_dispatcher.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "gtest/gtest.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::parallel {
namespace {

using testing::TestLaunch;
using testing::TestWorld;

#define EXPECT_OK(expr)                          \
  do {                                           \
    const absl::Status s_ = (expr);              \
    EXPECT_TRUE(s_.ok()) << #expr << ": " << s_; \
  } while (0)

constexpr int64_t kHidden = 5;

// ---- the global routing
// -------------------------------------------------------------------------------------

enum class Case { kUneven, kZeroExpertAndSilentRank, kAllToLastRank, kEmpty };
const Case kCases[] = {Case::kUneven, Case::kZeroExpertAndSilentRank, Case::kAllToLastRank,
                       Case::kEmpty};
const char* CaseName(Case c) {
  switch (c) {
    case Case::kUneven:
      return "uneven";
    case Case::kZeroExpertAndSilentRank:
      return "zero_expert_and_silent_rank";
    case Case::kAllToLastRank:
      return "all_to_last_rank";
    case Case::kEmpty:
      return "empty";
  }
  return "?";
}

// counts[s][e] for every rank s: what rank s passes to Prepare.
struct Routing {
  int num_ranks = 1;
  int64_t num_experts = 1;
  std::vector<std::vector<int32_t>> counts;

  int64_t L() const { return num_experts / num_ranks; }
  int64_t Total(int s) const {
    int64_t t = 0;
    for (int32_t c : counts[s]) t += c;
    return t;
  }
  // Rows rank s sends to rank d.
  int64_t Rows(int s, int d) const {
    int64_t t = 0;
    for (int64_t l = 0; l < L(); ++l) t += counts[s][d * L() + l];
    return t;
  }
};

Routing MakeRouting(Case c, int P, int64_t E) {
  Routing r;
  r.num_ranks = P;
  r.num_experts = E;
  r.counts.assign(P, std::vector<int32_t>(E, 0));
  const int64_t L = E / P;
  for (int s = 0; s < P; ++s)
    for (int64_t e = 0; e < E; ++e) {
      int32_t n = static_cast<int32_t>((s * 7 + e * 3 + 1) % 5);  // 0..4, zeros scattered
      switch (c) {
        case Case::kUneven:
          break;
        case Case::kZeroExpertAndSilentRank:
          if (e == E - 1) n = 0;           // no rank has rows for the last expert
          if (s == 0 && e == 0) n = 0;     // rank 0 has none for expert 0
          if (P > 1 && s == P - 1) n = 0;  // the last rank sends nothing at all
          break;
        case Case::kAllToLastRank:
          n = e / L == P - 1 ? static_cast<int32_t>((s + e) % 3 + 1) : 0;
          break;
        case Case::kEmpty:
          n = 0;
          break;
      }
      r.counts[s][e] = n;
    }
  return r;
}

int64_t MaxTotal(const Routing& r) {
  int64_t m = 0;
  for (int s = 0; s < r.num_ranks; ++s) m = std::max(m, r.Total(s));
  return m;
}

template <typename T>
T RowValue(int s, int64_t e, int64_t i, int64_t c) {
  return static_cast<T>(s * 1000000 + e * 10000 + i * 100 + c);
}

// Rank s's expert-sorted rows xs (M, C).
template <typename T>
std::vector<T> MakeXs(const Routing& r, int s) {
  std::vector<T> xs;
  for (int64_t e = 0; e < r.num_experts; ++e)
    for (int64_t i = 0; i < r.counts[s][e]; ++i)
      for (int64_t c = 0; c < kHidden; ++c) xs.push_back(RowValue<T>(s, e, i, c));
  return xs;
}

// What rank d must hold after Dispatch: by local expert, then source rank, then source order.
template <typename T>
std::vector<T> ReferenceLocalRows(const Routing& r, int d) {
  std::vector<T> rows;
  for (int64_t l = 0; l < r.L(); ++l) {
    const int64_t e = d * r.L() + l;
    for (int s = 0; s < r.num_ranks; ++s)
      for (int64_t i = 0; i < r.counts[s][e]; ++i)
        for (int64_t c = 0; c < kHidden; ++c) rows.push_back(RowValue<T>(s, e, i, c));
  }
  return rows;
}

// ---- layouts and the analytic traffic
// -----------------------------------------------------------------------

struct Config {
  DispatchMode mode;
  int ranks_per_node;  // 0 = hostnames
};

std::string ConfigName(const Config& c) {
  return std::string(DispatchModeName(c.mode)) +
         " ranks_per_node=" + std::to_string(c.ranks_per_node);
}

std::vector<Config> Configs(int P) {
  std::vector<Config> v = {
      {DispatchMode::kFlat, 0}, {DispatchMode::kFlat, 1}, {DispatchMode::kHierarchical, 0}};
  for (int g = 1; g <= P; ++g)
    if (P % g == 0) v.push_back({DispatchMode::kHierarchical, g});
  if (P % 2 == 0) v.push_back({DispatchMode::kFlat, 2});
  return v;
}

// Node layout as the test defines it: node = r / g, local = r % g; hostnames: one node when the
// whole world runs on this host (mpirun from ctest), which the test checks separately.
struct Nodes {
  std::vector<int> node, local;
};

Nodes TestNodes(int P, int ranks_per_node) {
  const int g = ranks_per_node > 0 ? ranks_per_node : P;
  Nodes n;
  for (int r = 0; r < P; ++r) {
    n.node.push_back(r / g);
    n.local.push_back(r % g);
  }
  return n;
}

void Hop(DispatchTraffic& t, int64_t bytes, bool self, bool same_node) {
  if (self) {
    t.self_bytes += bytes;
  } else if (same_node) {
    t.intra_node_bytes += bytes;
    t.intra_node_messages += bytes > 0;
  } else {
    t.inter_node_bytes += bytes;
    t.inter_node_messages += bytes > 0;
  }
}

// What rank `me` sends in one Dispatch (combine=false) or Combine (combine=true), from the routing.
DispatchTraffic ExpectedTraffic(const Routing& r, const Nodes& nodes, DispatchMode mode, int me,
                                int64_t row_bytes, bool combine) {
  const int P = r.num_ranks;
  DispatchTraffic t;
  t.calls = 1;
  if (mode == DispatchMode::kFlat) {
    for (int p = 0; p < P; ++p) {
      const int64_t rows = combine ? r.Rows(p, me) : r.Rows(me, p);
      Hop(t, rows * row_bytes, p == me, nodes.node[p] == nodes.node[me]);
    }
    return t;
  }
  const int n = nodes.node[me], j = nodes.local[me];
  int G = 0, N = 0;
  for (int q = 0; q < P; ++q) {
    G = std::max(G, nodes.local[q] + 1);
    N = std::max(N, nodes.node[q] + 1);
  }
  // Stage 1 (dispatch: me as source (n, j) -> node peer (n, jj), everything bound for local index
  // jj; combine: me as intermediate (n, j) -> back to source (n, jj)).
  for (int jj = 0; jj < G; ++jj) {
    int64_t rows = 0;
    for (int s = 0; s < P; ++s)
      for (int d = 0; d < P; ++d) {
        const bool hit = combine
                             ? (nodes.node[s] == n && nodes.local[s] == jj && nodes.local[d] == j)
                             : (s == me && nodes.local[d] == jj);
        if (hit) rows += r.Rows(s, d);
      }
    Hop(t, rows * row_bytes, jj == j, true);
  }
  // Stage 2 (dispatch: me as intermediate (n, j) -> (m, j); combine: me as final receiver -> the
  // intermediate (m, j) of each source node m).
  for (int m = 0; m < N; ++m) {
    int64_t rows = 0;
    for (int s = 0; s < P; ++s)
      for (int d = 0; d < P; ++d) {
        const bool hit = combine
                             ? (d == me && nodes.node[s] == m)
                             : (nodes.node[s] == n && nodes.node[d] == m && nodes.local[d] == j);
        if (hit) rows += r.Rows(s, d);
      }
    Hop(t, rows * row_bytes, m == n, m == n);
  }
  return t;
}

void ExpectTraffic(const DispatchTraffic& got, const DispatchTraffic& want) {
  EXPECT_EQ(got.calls, want.calls);
  EXPECT_EQ(got.inter_node_bytes, want.inter_node_bytes);
  EXPECT_EQ(got.intra_node_bytes, want.intra_node_bytes);
  EXPECT_EQ(got.self_bytes, want.self_bytes);
  EXPECT_EQ(got.inter_node_messages, want.inter_node_messages);
  EXPECT_EQ(got.intra_node_messages, want.intra_node_messages);
}

int64_t SumOverRanks(int64_t v) {
  int64_t sum = 0;
  EXPECT_OK(TestWorld().AllReduce(&v, &sum, 1, DType::kI64));
  return sum;
}

ExpertDispatcherOptions Options(int64_t E, int64_t max_rows, DType dt, const Config& c) {
  ExpertDispatcherOptions o;
  o.num_experts = E;
  o.hidden = kHidden;
  o.max_local_rows = max_rows;
  o.dtype = dt;
  o.mode = c.mode;
  o.ranks_per_node = c.ranks_per_node;
  return o;
}

// ---- round trips against the reference
// ----------------------------------------------------------------------

template <typename T>
class ExpertDispatcherTypedTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ExpertDispatcherTypedTest, Types);

// Every layout x E in {P, 4P} x every routing case: plan, Dispatch and Combine against the
// reference, Combine(Dispatch(x)) == x, and the traffic counters against the analytic count.
TYPED_TEST(ExpertDispatcherTypedTest, MatchesTheReferenceInEveryLayout) {
  using T = TypeParam;
  Communicator& world = TestWorld();
  const int P = world.size(), me = world.rank();
  const DType dt = DTypeOf<T>::value;
  const int64_t row_bytes = kHidden * static_cast<int64_t>(sizeof(T));
  for (const Config& config : Configs(P)) {
    for (int64_t E : {int64_t{P}, int64_t{4 * P}}) {
      SCOPED_TRACE(ConfigName(config) + " E=" + std::to_string(E));
      int64_t max_rows = 0;
      for (Case c : kCases) max_rows = std::max(max_rows, MaxTotal(MakeRouting(c, P, E)));
      auto made = ExpertDispatcher::Create(world, Options(E, max_rows, dt, config));
      const bool one_host = TestLaunch().local_size == P;
      if (!one_host && config.ranks_per_node == 0 && config.mode == DispatchMode::kHierarchical &&
          made.status().code() == absl::StatusCode::kFailedPrecondition) {
        continue;  // a multi-host run with uneven hosts: hierarchical-by-hostname is refused
      }
      ASSERT_TRUE(made.ok()) << made.status();  // fails identically on every rank
      ExpertDispatcher& d = *made;
      EXPECT_EQ(d.ep_size(), P);
      EXPECT_EQ(d.num_local_experts(), E / P);
      Nodes nodes = TestNodes(P, config.ranks_per_node);
      if (config.ranks_per_node > 0 || one_host) {
        for (int r = 0; r < P; ++r) {
          EXPECT_EQ(d.node_of(r), nodes.node[r]) << r;
          EXPECT_EQ(d.local_index_of(r), nodes.local[r]) << r;
        }
      } else {  // several hosts: take the hostname layout from the dispatcher
        for (int r = 0; r < P; ++r) {
          nodes.node[r] = d.node_of(r);
          nodes.local[r] = d.local_index_of(r);
        }
      }
      if (config.mode == DispatchMode::kFlat && E == P) {
        EXPECT_EQ(d.buffer_bytes(), 0) << "L == 1: flat receives straight into local_rows";
      }
      for (Case c : kCases) {
        SCOPED_TRACE(CaseName(c));
        const Routing r = MakeRouting(c, P, E);
        const std::vector<int32_t>& counts = r.counts[me];
        const std::vector<T> xs = MakeXs<T>(r, me);
        const std::vector<T> want = ReferenceLocalRows<T>(r, me);

        EXPECT_OK(d.Prepare(counts.data()));
        EXPECT_EQ(d.num_send_rows(), r.Total(me));
        EXPECT_EQ(d.num_recv_rows() * kHidden, static_cast<int64_t>(want.size()));
        std::vector<int32_t> want_counts(E / P), want_offsets(E / P + 1, 0);
        for (int64_t l = 0; l < E / P; ++l) {
          for (int s = 0; s < P; ++s) {
            want_counts[l] += r.counts[s][me * (E / P) + l];
            EXPECT_EQ(d.source_counts()[s * (E / P) + l], r.counts[s][me * (E / P) + l]);
          }
          want_offsets[l + 1] = want_offsets[l] + want_counts[l];
        }
        EXPECT_EQ(std::vector<int32_t>(d.local_counts().begin(), d.local_counts().end()),
                  want_counts);
        EXPECT_EQ(std::vector<int32_t>(d.local_offsets().begin(), d.local_offsets().end()),
                  want_offsets);

        d.ResetCounters();
        world.ResetCounters();
        std::vector<T> local(want.size(), static_cast<T>(-1));
        EXPECT_OK(d.DispatchStart(xs.data(), local.data()));
        volatile double overlap = 0;  // compute while the exchange is in flight
        for (int i = 0; i < 1000; ++i) overlap = overlap + i;
        EXPECT_OK(d.DispatchFinish());
        EXPECT_EQ(local, want);

        std::vector<T> ys(xs.size(), static_cast<T>(-1));
        EXPECT_OK(d.CombineStart(local.data(), ys.data()));
        EXPECT_OK(d.CombineFinish());
        EXPECT_EQ(ys, xs) << "Combine(Dispatch(x)) must give x back";

        // Traffic: this rank's counters against the routing, and the flat communicator's own
        // AllToAllV bytes (sent to other ranks) as a cross-check.
        const DispatchTraffic want_d = ExpectedTraffic(r, nodes, config.mode, me, row_bytes, false);
        const DispatchTraffic want_c = ExpectedTraffic(r, nodes, config.mode, me, row_bytes, true);
        ExpectTraffic(d.counters().dispatch, want_d);
        ExpectTraffic(d.counters().combine, want_c);
        ExpectTraffic(d.planned_dispatch(), want_d);
        if (config.mode == DispatchMode::kFlat) {
          const DispatchTraffic& t = d.counters().dispatch;
          const DispatchTraffic& u = d.counters().combine;
          EXPECT_EQ(
              world.counters().all_to_all_v.bus_bytes,
              t.inter_node_bytes + t.intra_node_bytes + u.inter_node_bytes + u.intra_node_bytes);
        } else {
          EXPECT_EQ(world.counters().all_to_all_v.calls, 0) << "hierarchical uses its subgroups";
        }
      }
    }
  }
}

// The same routing through every layout gives bitwise identical rows; hierarchical moves the same
// inter-node bytes as flat (each row crosses at most once) in no more inter-node messages, and the
// totals over the group equal the analytic counts.
TEST(ExpertDispatcherTest, FlatAndHierarchicalAgreeBitwiseAndInterNodeBytes) {
  Communicator& world = TestWorld();
  const int P = world.size(), me = world.rank();
  for (int64_t E : {int64_t{P}, int64_t{4 * P}}) {
    const Routing r = MakeRouting(Case::kUneven, P, E);
    const std::vector<double> xs = MakeXs<double>(r, me);
    for (int g = 1; g <= P; ++g) {
      if (P % g != 0) continue;
      SCOPED_TRACE("E=" + std::to_string(E) + " ranks_per_node=" + std::to_string(g));
      std::vector<double> out[2];
      DispatchTraffic traffic[2];
      const DispatchMode modes[2] = {DispatchMode::kFlat, DispatchMode::kHierarchical};
      for (int k = 0; k < 2; ++k) {
        auto d = ExpertDispatcher::Create(
            world, Options(E, MaxTotal(r), DType::kF64, Config{modes[k], g}));
        ASSERT_TRUE(d.ok()) << d.status();
        EXPECT_OK(d->Prepare(r.counts[me].data()));
        out[k].assign(d->num_recv_rows() * kHidden, 0.0);
        EXPECT_OK(d->Dispatch(xs.data(), out[k].data()));
        traffic[k] = d->counters().dispatch;
      }
      EXPECT_EQ(out[0].size(), out[1].size());
      EXPECT_EQ(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(double)), 0);

      // Analytic totals over the group.
      const Nodes nodes = TestNodes(P, g);
      const int64_t rb = kHidden * 8;
      int64_t inter = 0, flat_msgs = 0, hier_msgs = 0, hier_intra = 0;
      for (int s = 0; s < P; ++s)
        for (int t = 0; t < P; ++t) {
          if (nodes.node[s] != nodes.node[t]) {
            inter += r.Rows(s, t) * rb;
            flat_msgs += r.Rows(s, t) > 0;
          }
          if (nodes.local[s] != nodes.local[t]) hier_intra += r.Rows(s, t) * rb;
        }
      for (int n = 0; n < P / g; ++n)
        for (int m = 0; m < P / g; ++m) {
          if (m == n) continue;
          for (int j = 0; j < g; ++j) {
            int64_t rows = 0;  // node n -> rank (m, j), one stage-2 message
            for (int jj = 0; jj < g; ++jj) rows += r.Rows(n * g + jj, m * g + j);
            hier_msgs += rows > 0;
          }
        }
      const int64_t flat_inter = SumOverRanks(traffic[0].inter_node_bytes);
      const int64_t hier_inter = SumOverRanks(traffic[1].inter_node_bytes);
      EXPECT_EQ(flat_inter, inter);
      EXPECT_EQ(hier_inter, inter);
      EXPECT_LE(hier_inter, flat_inter);
      EXPECT_EQ(SumOverRanks(traffic[0].inter_node_messages), flat_msgs);
      EXPECT_EQ(SumOverRanks(traffic[1].inter_node_messages), hier_msgs);
      EXPECT_LE(hier_msgs, flat_msgs);
      EXPECT_EQ(SumOverRanks(traffic[1].intra_node_bytes), hier_intra);
    }
  }
}

// <Dispatch(x), y> == <x, Combine(y)> summed over the group: Combine is the adjoint (the gradient)
// of Dispatch, and Dispatch the adjoint of Combine. Dyadic values make every sum exact.
TEST(ExpertDispatcherTest, CombineIsTheAdjointOfDispatch) {
  Communicator& world = TestWorld();
  const int P = world.size(), me = world.rank();
  const int64_t E = 4 * P;
  const Routing r = MakeRouting(Case::kUneven, P, E);
  for (const Config& config : Configs(P)) {
    SCOPED_TRACE(ConfigName(config));
    auto d = ExpertDispatcher::Create(world, Options(E, MaxTotal(r), DType::kF64, config));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_OK(d->Prepare(r.counts[me].data()));
    const int64_t M = d->num_send_rows() * kHidden, R = d->num_recv_rows() * kHidden;
    std::vector<double> x(M), y(R), dx(M), dy(R);
    for (int64_t i = 0; i < M; ++i) x[i] = ((me * 37 + i * 11) % 41 - 20) * 0.125;
    for (int64_t i = 0; i < R; ++i) y[i] = ((me * 13 + i * 7) % 29 - 14) * 0.25;
    EXPECT_OK(d->Dispatch(x.data(), dy.data()));  // dy = Dispatch(x)
    EXPECT_OK(d->Combine(y.data(), dx.data()));   // dx = Combine(y)
    double lhs = 0, rhs = 0, lhs_sum = 0, rhs_sum = 0;
    for (int64_t i = 0; i < R; ++i) lhs += dy[i] * y[i];
    for (int64_t i = 0; i < M; ++i) rhs += x[i] * dx[i];
    EXPECT_OK(world.AllReduce(&lhs, &lhs_sum, 1, DType::kF64));
    EXPECT_OK(world.AllReduce(&rhs, &rhs_sum, 1, DType::kF64));
    EXPECT_EQ(lhs_sum, rhs_sum);
    if (r.Total(me) > 0) {
      EXPECT_NE(rhs, 0.0) << "the test data should not be trivially zero";
    }
  }
}

// ---- errors
// -------------------------------------------------------------------------------------------------

TEST(ExpertDispatcherTest, BadCreateArgumentsAreStatuses) {
  Communicator& world = TestWorld();
  const int P = world.size();
  const Config flat{DispatchMode::kFlat, 1};
  auto code = [&](ExpertDispatcherOptions o) {
    return ExpertDispatcher::Create(world, o).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(Options(0, 8, DType::kF32, flat)), kInvalid);  // no experts
  if (P > 1) {
    EXPECT_EQ(code(Options(P + 1, 8, DType::kF32, flat)), kInvalid);  // E % P != 0
  }
  ExpertDispatcherOptions o = Options(P, 8, DType::kF32, flat);
  o.hidden = 0;
  EXPECT_EQ(code(o), kInvalid);
  o = Options(P, -1, DType::kF32, flat);
  EXPECT_EQ(code(o), kInvalid);
  o = Options(P, 8, DType::kF32, Config{DispatchMode::kHierarchical, -1});
  EXPECT_EQ(code(o), kInvalid);
  o = Options(P, 8, DType::kF32, Config{DispatchMode::kHierarchical, P + 1});  // does not divide P
  EXPECT_EQ(code(o), kInvalid);
  o = Options(P, int64_t{INT32_MAX} + 1, DType::kF32, flat);
  EXPECT_EQ(code(o), absl::StatusCode::kOutOfRange);
  const absl::Status s = ExpertDispatcher::Create(world, Options(0, 8, DType::kF32, flat)).status();
  EXPECT_NE(std::string(s.message()).find("num_experts=0"), std::string::npos) << s;
  // Options that differ between ranks fail on every rank, naming the field.
  o = Options(P, world.rank() == P - 1 ? 9 : 8, DType::kF32, flat);
  const absl::Status m = ExpertDispatcher::Create(world, o).status();
  if (P > 1) {
    EXPECT_EQ(m.code(), kInvalid) << m;
    EXPECT_NE(std::string(m.message()).find("max_local_rows=9"), std::string::npos) << m;
  } else {
    EXPECT_TRUE(m.ok()) << m;
  }
}

// Bad counts on ONE rank come back as InvalidArgument on EVERY rank (nobody is left blocked), and
// misuse of Start/Finish is a Status, not a crash.
TEST(ExpertDispatcherTest, BadCountsAndMisuseAreStatusesOnEveryRank) {
  Communicator& world = TestWorld();
  const int P = world.size(), me = world.rank();
  const int64_t E = 2 * P;
  for (DispatchMode mode : {DispatchMode::kFlat, DispatchMode::kHierarchical}) {
    SCOPED_TRACE(DispatchModeName(mode));
    auto made = ExpertDispatcher::Create(world, Options(E, 2 * E, DType::kF32, Config{mode, 1}));
    ASSERT_TRUE(made.ok()) << made.status();
    ExpertDispatcher& d = *made;
    std::vector<int32_t> ones(E, 1);
    const auto kInvalid = absl::StatusCode::kInvalidArgument;
    const auto kPrecondition = absl::StatusCode::kFailedPrecondition;

    std::vector<int32_t> negative = ones;
    if (me == 0) negative[1] = -3;
    absl::Status s = d.Prepare(negative.data());
    EXPECT_EQ(s.code(), kInvalid) << s;
    EXPECT_NE(std::string(s.message()).find(me == 0 ? "counts[1]=-3" : "EP rank 0"),
              std::string::npos)
        << s;
    EXPECT_FALSE(d.prepared());
    std::vector<float> a(2 * E * kHidden * P), b(2 * E * kHidden * P);
    EXPECT_EQ(d.DispatchStart(a.data(), b.data()).code(), kPrecondition);  // no plan

    std::vector<int32_t> too_many(E, me == P - 1 ? 3 : 1);  // 3E rows > max_local_rows = 2E
    s = d.Prepare(too_many.data());
    EXPECT_EQ(s.code(), kInvalid) << s;
    EXPECT_EQ(d.Prepare(me == 0 ? nullptr : ones.data()).code(), kInvalid);

    EXPECT_OK(d.Prepare(ones.data()));  // recovers: every rank sends and receives E rows
    EXPECT_EQ(d.num_send_rows(), E);
    EXPECT_EQ(d.DispatchFinish().code(), kPrecondition);
    EXPECT_EQ(d.CombineFinish().code(), kPrecondition);
    EXPECT_EQ(d.DispatchStart(nullptr, b.data()).code(), kInvalid);
    EXPECT_EQ(d.DispatchStart(a.data(), nullptr).code(), kInvalid);
    EXPECT_EQ(d.CombineStart(nullptr, b.data()).code(), kInvalid);
    EXPECT_OK(d.DispatchStart(a.data(), b.data()));
    EXPECT_EQ(d.CombineStart(b.data(), a.data()).code(), kPrecondition);  // dispatch pending
    EXPECT_EQ(d.DispatchStart(a.data(), b.data()).code(), kPrecondition);
    EXPECT_EQ(d.Prepare(ones.data()).code(), kPrecondition);
    EXPECT_OK(d.DispatchFinish());
    EXPECT_EQ(d.counters().dispatch.calls, 1);
    EXPECT_NE(d.counters().ToString().find("dispatch 1 calls"), std::string::npos)
        << d.counters().ToString();
  }
}

}  // namespace
}  // namespace moetrain::parallel

// ProcessGroups over every valid (tp, ep) layout of the current world (on 4 ranks: tp=1/2/4 with
// every ep that divides dp). Each sub-communicator must have the grid's size and rank, and
// collectives over it must involve exactly the ranks the RankGrid lists.
#include "parallel/process_groups.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::parallel {
namespace {

using testing::TestLaunch;

std::vector<RankGrid> Layouts(int world) {
  std::vector<RankGrid> grids;
  for (int tp = 1; tp <= world; ++tp)
    for (int ep = 1; ep <= world; ++ep) {
      auto g = RankGrid::Create(world, tp, ep);
      if (g.ok()) grids.push_back(*g);
    }
  return grids;
}

TEST(ProcessGroupsTest, EveryLayoutMatchesTheGrid) {
  const Launch& launch = TestLaunch();
  const auto layouts = Layouts(launch.world_size);
  if (launch.world_size == 4) {
    EXPECT_EQ(layouts.size(), 6u);  // (1,1) (1,2) (1,4) (2,1) (2,2) (4,1)
  }
  for (const RankGrid& grid : layouts) {
    SCOPED_TRACE(grid.ToString());
    auto groups = ProcessGroups::Create(launch, grid);
    ASSERT_TRUE(groups.ok()) << groups.status();  // fails identically on every rank
    const int rank = launch.rank;
    EXPECT_EQ(groups->rank(), rank);
    EXPECT_EQ(groups->world().size(), grid.world());
    EXPECT_EQ(groups->coords().dp_rank, grid.Coords(rank).dp_rank);
    EXPECT_STREQ(groups->world().backend(), launch.mpi ? "mpi" : "local");
    for (GroupKind kind : kAllGroupKinds) {
      SCOPED_TRACE(GroupKindName(kind));
      Communicator& c = groups->Get(kind);
      const std::vector<int> members = grid.GroupOf(kind, rank);
      EXPECT_EQ(c.size(), grid.GroupSize(kind));
      EXPECT_EQ(c.rank(), grid.RankInGroup(kind, rank));
      // A sum over the group adds (world rank + 1) of exactly the listed members...
      int64_t mine = rank + 1;
      int64_t sum = 0;
      EXPECT_TRUE(c.AllReduce(&mine, &sum, 1, DType::kI64).ok());
      int64_t want = 0;
      for (int m : members) want += m + 1;
      EXPECT_EQ(sum, want);
      // ...and an AllGather of world ranks returns exactly the grid's list, in order.
      int32_t me = rank;
      std::vector<int32_t> gathered(c.size(), -1);
      EXPECT_TRUE(c.AllGather(&me, gathered.data(), 1, DType::kI32).ok());
      EXPECT_EQ(std::vector<int>(gathered.begin(), gathered.end()), members);
    }
    // Named accessors are the same objects as Get(kind).
    EXPECT_EQ(&groups->tp(), &groups->Get(GroupKind::kTp));
    EXPECT_EQ(&groups->dp(), &groups->Get(GroupKind::kDp));
    EXPECT_EQ(&groups->ep(), &groups->Get(GroupKind::kEp));
    EXPECT_EQ(&groups->edp(), &groups->Get(GroupKind::kEdp));
    // Counters: the sums and gathers above (2 per kind) are all counted, and reset clears them.
    const CommCounters total = groups->TotalCounters();
    EXPECT_EQ(total.all_reduce.calls, 4);
    EXPECT_EQ(total.all_gather.calls, 4);
    groups->ResetCounters();
    EXPECT_EQ(groups->TotalCounters().all_reduce.calls, 0);
  }
}

TEST(ProcessGroupsTest, MovedGroupsStillWork) {
  const Launch& launch = TestLaunch();
  auto grid = RankGrid::Create(launch.world_size, 1, 1);
  ASSERT_TRUE(grid.ok());
  auto made = ProcessGroups::Create(launch, *grid);
  ASSERT_TRUE(made.ok()) << made.status();
  ProcessGroups groups = std::move(*made);
  int32_t one = 1, total = 0;
  EXPECT_TRUE(groups.dp().AllReduce(&one, &total, 1, DType::kI32).ok());
  EXPECT_EQ(total, launch.world_size);
}

TEST(ProcessGroupsTest, GridForAnotherWorldIsRejected) {
  const Launch& launch = TestLaunch();
  auto grid = RankGrid::Create(launch.world_size * 2, 1, 1);
  ASSERT_TRUE(grid.ok());
  auto groups = ProcessGroups::Create(launch, *grid);
  ASSERT_FALSE(groups.ok());
  EXPECT_EQ(groups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(groups.status().message()).find("world="), std::string::npos);
}

}  // namespace
}  // namespace moetrain::parallel

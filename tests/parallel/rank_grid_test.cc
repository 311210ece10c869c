// RankGrid: exhaustive over every world size 1..64 and every valid (tp, ep) factorisation.
#include "parallel/rank_grid.h"

#include <algorithm>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moetrain::parallel {
namespace {

using ::testing::HasSubstr;

std::vector<RankGrid> AllGrids(int max_world) {
  std::vector<RankGrid> grids;
  for (int world = 1; world <= max_world; ++world)
    for (int tp = 1; tp <= world; ++tp) {
      if (world % tp) continue;
      for (int ep = 1; ep <= world / tp; ++ep) {
        if ((world / tp) % ep) continue;
        auto g = RankGrid::Create(world, tp, ep);
        EXPECT_TRUE(g.ok()) << g.status();
        if (g.ok()) grids.push_back(*g);
      }
    }
  return grids;
}

// Checks that `groups` partition [0, world), each of `size` ascending ranks, listed by first rank.
void ExpectPartition(const RankGrid& grid, GroupKind kind) {
  SCOPED_TRACE(grid.ToString() + " kind " + GroupKindName(kind));
  const auto groups = grid.Groups(kind);
  const int size = grid.GroupSize(kind);
  ASSERT_EQ(static_cast<int>(groups.size()), grid.NumGroups(kind));
  ASSERT_EQ(static_cast<int>(groups.size()) * size, grid.world());
  std::vector<int> seen(grid.world(), 0);
  for (size_t g = 0; g < groups.size(); ++g) {
    ASSERT_EQ(static_cast<int>(groups[g].size()), size);
    EXPECT_TRUE(std::is_sorted(groups[g].begin(), groups[g].end()));
    if (g > 0) {
      EXPECT_LT(groups[g - 1][0], groups[g][0]);
    }
    for (int i = 0; i < size; ++i) {
      const int r = groups[g][i];
      ASSERT_GE(r, 0);
      ASSERT_LT(r, grid.world());
      ++seen[r];
      EXPECT_EQ(grid.GroupIndex(kind, r), static_cast<int>(g));
      EXPECT_EQ(grid.RankInGroup(kind, r), i);
      EXPECT_EQ(grid.GroupOf(kind, r), groups[g]);
    }
  }
  for (int r = 0; r < grid.world(); ++r) EXPECT_EQ(seen[r], 1) << "rank " << r;
}

TEST(RankGridTest, EveryKindPartitionsTheWorld) {
  const auto grids = AllGrids(64);
  EXPECT_GT(grids.size(), 400u);
  for (const RankGrid& grid : grids)
    for (GroupKind kind : kAllGroupKinds) ExpectPartition(grid, kind);
}

TEST(RankGridTest, SizesMatchTheDims) {
  for (const RankGrid& grid : AllGrids(64)) {
    const ParallelDims& d = grid.dims();
    EXPECT_EQ(d.tp * d.dp, d.world);
    EXPECT_EQ(grid.GroupSize(GroupKind::kTp), d.tp);
    EXPECT_EQ(grid.GroupSize(GroupKind::kDp), d.dp);
    EXPECT_EQ(grid.GroupSize(GroupKind::kEp), d.ep);
    EXPECT_EQ(grid.GroupSize(GroupKind::kEdp) * d.ep, d.dp);
  }
}

TEST(RankGridTest, CoordinatesAreConsistentWithTheListsAndRoundTrip) {
  for (const RankGrid& grid : AllGrids(64)) {
    SCOPED_TRACE(grid.ToString());
    for (int r = 0; r < grid.world(); ++r) {
      const RankCoords c = grid.Coords(r);
      EXPECT_EQ(r, c.dp_rank * grid.tp() + c.tp_rank);  // the documented order
      EXPECT_EQ(c.dp_rank, c.edp_rank * grid.ep() + c.ep_rank);
      EXPECT_EQ(grid.RankOf(c), r);
      // The position in each group list is the coordinate of that kind.
      const auto tp = grid.GroupOf(GroupKind::kTp, r), dp = grid.GroupOf(GroupKind::kDp, r);
      const auto ep = grid.GroupOf(GroupKind::kEp, r), edp = grid.GroupOf(GroupKind::kEdp, r);
      EXPECT_EQ(tp[c.tp_rank], r);
      EXPECT_EQ(dp[c.dp_rank], r);
      EXPECT_EQ(ep[c.ep_rank], r);
      EXPECT_EQ(edp[c.edp_rank], r);
      // Members of a group share the other coordinates.
      for (int m : tp) EXPECT_EQ(grid.Coords(m).dp_rank, c.dp_rank);
      for (int m : dp) EXPECT_EQ(grid.Coords(m).tp_rank, c.tp_rank);
      for (int m : ep) {
        EXPECT_EQ(grid.Coords(m).tp_rank, c.tp_rank);
        EXPECT_EQ(grid.Coords(m).edp_rank, c.edp_rank);
      }
      for (int m : edp) {
        EXPECT_EQ(grid.Coords(m).tp_rank, c.tp_rank);
        EXPECT_EQ(grid.Coords(m).ep_rank, c.ep_rank);
      }
    }
  }
}

TEST(RankGridTest, TpGroupsAreContiguous) {
  for (const RankGrid& grid : AllGrids(64))
    for (const auto& g : grid.TpGroups())
      for (size_t i = 1; i < g.size(); ++i) EXPECT_EQ(g[i], g[i - 1] + 1) << grid.ToString();
}

TEST(RankGridTest, EpAndEdpTileEachDpGroup) {
  for (const RankGrid& grid : AllGrids(64)) {
    SCOPED_TRACE(grid.ToString());
    for (int r = 0; r < grid.world(); ++r) {
      const auto dp = grid.GroupOf(GroupKind::kDp, r);
      const std::set<int> dp_set(dp.begin(), dp.end());
      const auto ep = grid.GroupOf(GroupKind::kEp, r), edp = grid.GroupOf(GroupKind::kEdp, r);
      for (int m : ep) EXPECT_TRUE(dp_set.count(m)) << "EP member " << m << " outside DP";
      for (int m : edp) EXPECT_TRUE(dp_set.count(m)) << "EDP member " << m << " outside DP";
      // EDP x EP = DP: the map (ep_rank, edp_rank) -> member of dp is a bijection, and an EP and an
      // EDP group of the same DP group meet in exactly one rank.
      std::set<int> product;
      for (int e : ep)
        for (int d : edp) {
          const RankCoords ce = grid.Coords(e), cd = grid.Coords(d);
          RankCoords c{ce.tp_rank, cd.edp_rank * grid.ep() + ce.ep_rank, ce.ep_rank, cd.edp_rank};
          product.insert(grid.RankOf(c));
        }
      EXPECT_EQ(product, dp_set);
      int common = 0;
      for (int e : ep) common += static_cast<int>(std::count(edp.begin(), edp.end(), e));
      EXPECT_EQ(common, 1);
    }
  }
}

TEST(RankGridTest, DocumentedExample) {
  auto grid = RankGrid::Create(8, 2, 2);
  ASSERT_TRUE(grid.ok());
  using V = std::vector<std::vector<int>>;
  EXPECT_EQ(grid->TpGroups(), (V{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(grid->DpGroups(), (V{{0, 2, 4, 6}, {1, 3, 5, 7}}));
  EXPECT_EQ(grid->EpGroups(), (V{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(grid->EdpGroups(), (V{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(grid->ToString(), "world=8 tp=2 dp=4 ep=2 edp=2");
}

TEST(RankGridTest, InvalidCombinationsNameTheField) {
  struct Case {
    int world, tp, ep;
    std::vector<std::string> words;
  };
  const Case cases[] = {
      {0, 1, 1, {"world=0"}},      {-2, 1, 1, {"world=-2"}},       {4, 0, 1, {"tp=0"}},
      {4, 1, 0, {"ep=0"}},         {4, 3, 1, {"tp=3", "world=4"}}, {6, 4, 1, {"tp=4", "world=6"}},
      {8, 2, 3, {"ep=3", "dp=4"}}, {4, 1, 8, {"ep=8", "dp=4"}},
  };
  for (const Case& c : cases) {
    auto grid = RankGrid::Create(c.world, c.tp, c.ep);
    ASSERT_FALSE(grid.ok()) << c.world << " " << c.tp << " " << c.ep;
    EXPECT_EQ(grid.status().code(), absl::StatusCode::kInvalidArgument);
    for (const auto& w : c.words) EXPECT_THAT(std::string(grid.status().message()), HasSubstr(w));
  }
  // Every invalid combination up to 16 fails; every valid one succeeds.
  for (int world = 1; world <= 16; ++world)
    for (int tp = 1; tp <= 2 * world; ++tp)
      for (int ep = 1; ep <= 2 * world; ++ep) {
        const bool valid = world % tp == 0 && (world / tp) % ep == 0;
        EXPECT_EQ(RankGrid::Create(world, tp, ep).ok(), valid) << world << " " << tp << " " << ep;
      }
}

TEST(RankGridDeathTest, OutOfRangeRankAborts) {
  auto grid = RankGrid::Create(4, 2, 1);
  ASSERT_TRUE(grid.ok());
  EXPECT_DEATH(grid->Coords(4), "outside world");
  EXPECT_DEATH(grid->RankOf(RankCoords{0, 1, 0, 0}), "inconsistent");
}

}  // namespace
}  // namespace moetrain::parallel

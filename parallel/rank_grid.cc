#include "parallel/rank_grid.h"

#include "absl/strings/str_format.h"
#include "core/status.h"

namespace moetrain::parallel {

const char* GroupKindName(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTp:
      return "tp";
    case GroupKind::kDp:
      return "dp";
    case GroupKind::kEp:
      return "ep";
    case GroupKind::kEdp:
      return "edp";
  }
  return "?";
}

absl::StatusOr<RankGrid> RankGrid::Create(int world, int tp, int ep) {
  if (world < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("RankGrid: world=%d must be >= 1", world));
  }
  if (tp < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("RankGrid: tp=%d must be >= 1", tp));
  }
  if (ep < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("RankGrid: ep=%d must be >= 1", ep));
  }
  if (world % tp != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("RankGrid: tp=%d does not divide world=%d", tp, world));
  }
  const int dp = world / tp;
  if (dp % ep != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "RankGrid: ep=%d does not divide dp=%d (dp = world=%d / tp=%d; EP is carved out of DP)", ep,
        dp, world, tp));
  }
  ParallelDims dims;
  dims.world = world;
  dims.tp = tp;
  dims.ep = ep;
  dims.dp = dp;
  return RankGrid(dims);
}

RankCoords RankGrid::Coords(int rank) const {
  MT_CHECK_MSG(rank >= 0 && rank < dims_.world, "rank ", rank, " outside world ", dims_.world);
  RankCoords c;
  c.tp_rank = rank % dims_.tp;
  c.dp_rank = rank / dims_.tp;
  c.ep_rank = c.dp_rank % dims_.ep;
  c.edp_rank = c.dp_rank / dims_.ep;
  return c;
}

int RankGrid::RankOf(const RankCoords& c) const {
  MT_CHECK_MSG(c.tp_rank >= 0 && c.tp_rank < dims_.tp, "tp_rank ", c.tp_rank, " outside tp ",
               dims_.tp);
  MT_CHECK_MSG(c.dp_rank >= 0 && c.dp_rank < dims_.dp, "dp_rank ", c.dp_rank, " outside dp ",
               dims_.dp);
  MT_CHECK_MSG(c.dp_rank == c.edp_rank * dims_.ep + c.ep_rank, "inconsistent coords: dp_rank ",
               c.dp_rank, " != edp_rank ", c.edp_rank, " * ep ", dims_.ep, " + ep_rank ",
               c.ep_rank);
  return c.dp_rank * dims_.tp + c.tp_rank;
}

int RankGrid::GroupSize(GroupKind kind) const {
  switch (kind) {
    case GroupKind::kTp:
      return dims_.tp;
    case GroupKind::kDp:
      return dims_.dp;
    case GroupKind::kEp:
      return dims_.ep;
    case GroupKind::kEdp:
      return edp();
  }
  return 0;
}

int RankGrid::NumGroups(GroupKind kind) const { return dims_.world / GroupSize(kind); }

int RankGrid::GroupIndex(GroupKind kind, int rank) const {
  const RankCoords c = Coords(rank);
  switch (kind) {
    case GroupKind::kTp:
      return c.dp_rank;
    case GroupKind::kDp:
      return c.tp_rank;
    case GroupKind::kEp:
      return c.edp_rank * dims_.tp + c.tp_rank;
    case GroupKind::kEdp:
      return c.ep_rank * dims_.tp + c.tp_rank;
  }
  return 0;
}

int RankGrid::RankInGroup(GroupKind kind, int rank) const {
  const RankCoords c = Coords(rank);
  switch (kind) {
    case GroupKind::kTp:
      return c.tp_rank;
    case GroupKind::kDp:
      return c.dp_rank;
    case GroupKind::kEp:
      return c.ep_rank;
    case GroupKind::kEdp:
      return c.edp_rank;
  }
  return 0;
}

int RankGrid::MemberRank(GroupKind kind, int group, int index) const {
  const int tp = dims_.tp, ep = dims_.ep;
  switch (kind) {
    case GroupKind::kTp:
      return group * tp + index;
    case GroupKind::kDp:
      return index * tp + group;
    case GroupKind::kEp:
      return ((group / tp) * ep + index) * tp + group % tp;
    case GroupKind::kEdp:
      return (index * ep + group / tp) * tp + group % tp;
  }
  return 0;
}

std::vector<std::vector<int>> RankGrid::Groups(GroupKind kind) const {
  std::vector<std::vector<int>> groups(NumGroups(kind));
  for (int g = 0; g < static_cast<int>(groups.size()); ++g) {
    groups[g].resize(GroupSize(kind));
    for (int i = 0; i < GroupSize(kind); ++i) groups[g][i] = MemberRank(kind, g, i);
  }
  return groups;
}

std::vector<int> RankGrid::GroupOf(GroupKind kind, int rank) const {
  const int g = GroupIndex(kind, rank);
  std::vector<int> ranks(GroupSize(kind));
  for (int i = 0; i < GroupSize(kind); ++i) ranks[i] = MemberRank(kind, g, i);
  return ranks;
}

std::string RankGrid::ToString() const {
  return absl::StrFormat("world=%d tp=%d dp=%d ep=%d edp=%d", dims_.world, dims_.tp, dims_.dp,
                         dims_.ep, edp());
}

}  // namespace moetrain::parallel

// Pure rank math for tensor (TP), data (DP), expert (EP) and expert-data (EDP) parallelism.
// No MPI here: a RankGrid turns (world, tp, ep) into coordinates and group rank lists, and
// ProcessGroups (process_groups.h) turns those lists into communicators.
//
// Rank order (documented contract; checkpoints and tests rely on it):
//   tp is fastest: consecutive ranks form one TP group (as in Megatron), so a TP group stays on one
//   node whenever tp divides the GPUs per node.
//     rank     = dp_rank * tp + tp_rank            tp_rank in [0, tp), dp_rank in [0, dp), dp =
//     world/tp
//   EP is carved out of DP: an EP group is ep consecutive dp ranks (same tp_rank).
//     ep_rank  = dp_rank % ep                      ep_rank in [0, ep)
//     edp_rank = dp_rank / ep                      edp_rank in [0, edp), edp = dp / ep
//   EDP (expert-data-parallel) groups hold the same experts: same tp_rank and ep_rank.
//
// Example world=8, tp=2, ep=2 (dp=4, edp=2):
//   TP  groups {0,1} {2,3} {4,5} {6,7}
//   DP  groups {0,2,4,6} {1,3,5,7}
//   EP  groups {0,2} {1,3} {4,6} {5,7}
//   EDP groups {0,4} {1,5} {2,6} {3,7}
//
// Group lists: every kind's groups partition the world; the groups of a kind are listed in
// ascending order of their first rank, each group's ranks ascending, and a rank's position in its
// group list is its rank in that group's communicator (RankInGroup). EP and EDP groups each lie
// inside one DP group, and an EP group and an EDP group of the same DP group share exactly one
// rank.
//
// Thread-safety: a RankGrid is an immutable value; all methods are const and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moetrain::parallel {

// The sizes of the parallel dimensions. world = tp * dp; ep divides dp.
struct ParallelDims {
  int world = 1;  // number of ranks
  int tp = 1;     // tensor-parallel group size
  int ep = 1;     // expert-parallel group size (carved out of dp)
  int dp = 1;     // data-parallel group size = world / tp
};

enum class GroupKind { kTp, kDp, kEp, kEdp };
inline constexpr GroupKind kAllGroupKinds[] = {GroupKind::kTp, GroupKind::kDp, GroupKind::kEp,
                                               GroupKind::kEdp};
const char* GroupKindName(GroupKind kind);  // "tp", "dp", "ep", "edp"

// The coordinates of one rank. dp_rank = edp_rank * ep + ep_rank always holds.
struct RankCoords {
  int tp_rank = 0;
  int dp_rank = 0;
  int ep_rank = 0;
  int edp_rank = 0;
};

class RankGrid {
 public:
  // Builds the grid for `world` ranks with TP size `tp` and EP size `ep`; dp = world / tp.
  // Returns InvalidArgument (naming the offending values, e.g. "tp=3 does not divide world=4") when
  // any of world/tp/ep is < 1, tp does not divide world, or ep does not divide dp.
  static absl::StatusOr<RankGrid> Create(int world, int tp, int ep);

  const ParallelDims& dims() const { return dims_; }
  int world() const { return dims_.world; }
  int tp() const { return dims_.tp; }
  int dp() const { return dims_.dp; }
  int ep() const { return dims_.ep; }
  int edp() const { return dims_.dp / dims_.ep; }

  // REQUIRES: 0 <= rank < world() (aborts otherwise: a programming error).
  RankCoords Coords(int rank) const;
  // The rank at tp_rank/dp_rank of `coords`. REQUIRES: coordinates in range and consistent
  // (dp_rank == edp_rank * ep + ep_rank); aborts otherwise.
  int RankOf(const RankCoords& coords) const;

  // Every group of a kind; see the ordering contract above.
  std::vector<std::vector<int>> TpGroups() const { return Groups(GroupKind::kTp); }
  std::vector<std::vector<int>> DpGroups() const { return Groups(GroupKind::kDp); }
  std::vector<std::vector<int>> EpGroups() const { return Groups(GroupKind::kEp); }
  std::vector<std::vector<int>> EdpGroups() const { return Groups(GroupKind::kEdp); }
  std::vector<std::vector<int>> Groups(GroupKind kind) const;

  int GroupSize(GroupKind kind) const;  // tp, dp, ep or edp
  int NumGroups(GroupKind kind) const;  // world / GroupSize(kind)
  // The ranks of the group of `kind` that contains `rank`, ascending. REQUIRES: 0 <= rank < world.
  std::vector<int> GroupOf(GroupKind kind, int rank) const;
  // Index of that group in Groups(kind) (the MPI_Comm_split color). REQUIRES: rank in range.
  int GroupIndex(GroupKind kind, int rank) const;
  // Position of `rank` inside its group (the MPI_Comm_split key). REQUIRES: rank in range.
  int RankInGroup(GroupKind kind, int rank) const;

  // "world=8 tp=2 dp=4 ep=2 edp=2".
  std::string ToString() const;

 private:
  explicit RankGrid(const ParallelDims& dims) : dims_(dims) {}
  // The rank at position `index` of group `group` of `kind`.
  int MemberRank(GroupKind kind, int group, int index) const;

  ParallelDims dims_;
};

}  // namespace moetrain::parallel

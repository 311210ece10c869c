// ProcessGroups: the communicators of one training run (world, tp, dp, ep, edp), built from a
// RankGrid. Passed explicitly to whatever needs to communicate -- there are no global groups.
//
//   ASSIGN_OR_RETURN(RankGrid grid, RankGrid::Create(launch.world_size, recipe.tp, recipe.ep));
//   ASSIGN_OR_RETURN(ProcessGroups groups, ProcessGroups::Create(launch, grid));
//   groups.dp().AllReduce(grads, grads, n, DType::kF32);      // or groups.Get(GroupKind::kDp)
//
// With MPI (launch.mpi): world is an MPI_Comm_dup of MPI_COMM_WORLD, and each kind's communicator
// comes from MPI_Comm_split(world, color = grid.GroupIndex(kind, rank), key =
// grid.RankInGroup(kind, rank)), so a communicator's rank() is the rank's position in
// grid.GroupOf(kind, rank). Creation is collective over MPI_COMM_WORLD: every rank must call Create
// with the same grid. Without MPI (a world of one): every group is a LocalCommunicator of size 1.
//
// Ownership: owns the five communicators (movable, not copyable); destroy before
// Launcher::Finalize(). References returned by the accessors live as long as this object.
// Thread-safety: as Communicator.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "parallel/launcher.h"
#include "parallel/rank_grid.h"

namespace moetrain::parallel {

class ProcessGroups {
 public:
  // REQUIRES: grid.world() == launch.world_size (InvalidArgument otherwise); without MPI the world
  // must be 1. MPI failures are returned as Statuses.
  static absl::StatusOr<ProcessGroups> Create(const Launch& launch, const RankGrid& grid);

  ProcessGroups(ProcessGroups&&) noexcept = default;
  ProcessGroups& operator=(ProcessGroups&&) noexcept = default;
  ProcessGroups(const ProcessGroups&) = delete;
  ProcessGroups& operator=(const ProcessGroups&) = delete;

  const RankGrid& grid() const { return grid_; }
  int rank() const { return world_->rank(); }           // world rank
  const RankCoords& coords() const { return coords_; }  // grid.Coords(rank())

  Communicator& world() { return *world_; }
  Communicator& tp() { return *tp_; }
  Communicator& dp() { return *dp_; }
  Communicator& ep() { return *ep_; }
  Communicator& edp() { return *edp_; }
  Communicator& Get(GroupKind kind);

  // Sum of every group's counters (world, tp, dp, ep, edp) and a reset of all of them.
  CommCounters TotalCounters() const;
  void ResetCounters();

 private:
  ProcessGroups(const RankGrid& grid, int rank) : grid_(grid), coords_(grid.Coords(rank)) {}
  void NameGroups();  // "world", "tp", "dp", "ep", "edp" (watchdog messages)

  RankGrid grid_;
  RankCoords coords_;
  std::unique_ptr<Communicator> world_, tp_, dp_, ep_, edp_;
};

}  // namespace moetrain::parallel

#include "parallel/process_groups.h"

#include <mpi.h>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "parallel/collective_watchdog.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_check.h"
#include "parallel/mpi_communicator.h"

namespace moetrain::parallel {
namespace {

void Add(CollectiveCounter& into, const CollectiveCounter& c) {
  into.calls += c.calls;
  into.payload_bytes += c.payload_bytes;
  into.bus_bytes += c.bus_bytes;
}

void Add(CommCounters& into, const CommCounters& c) {
  Add(into.all_reduce, c.all_reduce);
  Add(into.reduce_scatter, c.reduce_scatter);
  Add(into.all_gather, c.all_gather);
  Add(into.all_to_all_v, c.all_to_all_v);
  Add(into.broadcast, c.broadcast);
  Add(into.barrier, c.barrier);
}

// MPI_Comm_split of `parent` into the groups of `kind`; checks the result against the grid.
absl::StatusOr<std::unique_ptr<Communicator>> Split(MPI_Comm parent, const RankGrid& grid,
                                                    GroupKind kind, int rank) {
  MPI_Comm comm = MPI_COMM_NULL;
  {
    auto watch = CollectiveWatchdog::Global().Begin("Split", "world");
    MPI_RETURN_IF_ERROR(
        MPI_Comm_split(parent, grid.GroupIndex(kind, rank), grid.RankInGroup(kind, rank), &comm));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<MpiCommunicator> c,
                   MpiCommunicator::Create(comm, /*owned=*/true));
  if (c->size() != grid.GroupSize(kind) || c->rank() != grid.RankInGroup(kind, rank)) {
    return absl::InternalError(absl::StrFormat(
        "ProcessGroups: %s communicator of rank %d has rank %d/%d, the grid says %d/%d",
        GroupKindName(kind), rank, c->rank(), c->size(), grid.RankInGroup(kind, rank),
        grid.GroupSize(kind)));
  }
  return std::unique_ptr<Communicator>(std::move(c));
}

}  // namespace

absl::StatusOr<ProcessGroups> ProcessGroups::Create(const Launch& launch, const RankGrid& grid) {
  if (grid.world() != launch.world_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ProcessGroups: the grid (%s) is for world=%d but the job has %d ranks",
                        grid.ToString(), grid.world(), launch.world_size));
  }
  ProcessGroups groups(grid, launch.rank);
  if (!launch.mpi) {
    if (grid.world() != 1) {
      return absl::FailedPreconditionError(
          "ProcessGroups: a world larger than one needs MPI. HINT: start with mpirun or srun");
    }
    groups.world_ = std::make_unique<LocalCommunicator>();
    groups.tp_ = std::make_unique<LocalCommunicator>();
    groups.dp_ = std::make_unique<LocalCommunicator>();
    groups.ep_ = std::make_unique<LocalCommunicator>();
    groups.edp_ = std::make_unique<LocalCommunicator>();
    groups.NameGroups();
    return groups;
  }
  MPI_Comm world = MPI_COMM_NULL;
  {
    auto watch = CollectiveWatchdog::Global().Begin("Dup", "world");
    MPI_RETURN_IF_ERROR(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  }
  ASSIGN_OR_RETURN(groups.world_, MpiCommunicator::Create(world, /*owned=*/true));
  if (groups.world_->rank() != launch.rank) {
    return absl::InternalError(absl::StrFormat(
        "ProcessGroups: world rank %d but the launch says %d", groups.world_->rank(), launch.rank));
  }
  ASSIGN_OR_RETURN(groups.tp_, Split(world, grid, GroupKind::kTp, launch.rank));
  ASSIGN_OR_RETURN(groups.dp_, Split(world, grid, GroupKind::kDp, launch.rank));
  ASSIGN_OR_RETURN(groups.ep_, Split(world, grid, GroupKind::kEp, launch.rank));
  ASSIGN_OR_RETURN(groups.edp_, Split(world, grid, GroupKind::kEdp, launch.rank));
  groups.NameGroups();
  return groups;
}

void ProcessGroups::NameGroups() {
  world_->set_name("world");
  for (GroupKind kind : {GroupKind::kTp, GroupKind::kDp, GroupKind::kEp, GroupKind::kEdp})
    Get(kind).set_name(GroupKindName(kind));
}

Communicator& ProcessGroups::Get(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTp:
      return *tp_;
    case GroupKind::kDp:
      return *dp_;
    case GroupKind::kEp:
      return *ep_;
    case GroupKind::kEdp:
      return *edp_;
  }
  MT_CHECK_MSG(false, "unknown GroupKind ", static_cast<int>(kind));
  return *world_;
}

CommCounters ProcessGroups::TotalCounters() const {
  CommCounters total;
  for (const auto* c : {&world_, &tp_, &dp_, &ep_, &edp_}) Add(total, (*c)->counters());
  return total;
}

void ProcessGroups::ResetCounters() {
  for (auto* c : {&world_, &tp_, &dp_, &ep_, &edp_}) (*c)->ResetCounters();
}

}  // namespace moetrain::parallel

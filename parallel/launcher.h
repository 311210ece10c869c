// Launcher: process start-up and shut-down for one rank of a training job.
//
//   int main(int argc, char** argv) {
//     auto launch = parallel::Launcher::Init(&argc, &argv);
//     if (!launch.ok()) { ...print...; parallel::Launcher::Finalize(); return 1; }
//     ... build RankGrid, ProcessGroups(launch) and train ...
//     (destroy ProcessGroups)
//     return parallel::Launcher::Finalize().ok() ? 0 : 1;
//   }
//
// Init detects the launcher from the environment (launch_env.h):
//   * under mpirun / srun --mpi=pmix / hydra it calls MPI_Init_thread(MPI_THREAD_FUNNELED), takes
//     rank and size from MPI_COMM_WORLD and the local rank/size from MPI_Comm_split_type(SHARED),
//     cross-checks them against the launcher's variables (a world rank or size mismatch is
//     FailedPrecondition -- e.g. srun without --mpi=pmix; a local rank mismatch is a WARNING and
//     the MPI value wins), and sets MPI_ERRORS_RETURN on MPI_COMM_WORLD so MPI failures become
//     Statuses;
//   * with no launcher it does NOT initialise MPI: a world of one (Launch::mpi == false), served by
//     LocalCommunicator, so a plain `./moetrain ...` needs no mpirun;
//   * if MPI was already initialised by the caller, it adopts it (and Finalize leaves it alone).
// Then it sets core/logging's rank (SetLogRank) and, if asked, drops INFO lines on ranks != 0, and
// logs one INFO line describing the launch.
//
// Errors: Init returns a Status and never aborts the job; MPI may be initialised when it fails, so
// call Finalize() on every path. Libraries never call MPI_Abort; AbortJob is for main() when this
// rank failed while others may be blocked in collectives.
// Thread-safety: call Init, Finalize and AbortJob from the main thread only; Init at most once.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "parallel/launch_env.h"

namespace moetrain::parallel {

struct LaunchOptions {
  bool quiet_nonzero_ranks = true;  // drop INFO log lines on ranks != 0 (rank 0 speaks for all)
};

// What this process is within the job. A plain value; copy it freely.
struct Launch {
  LauncherKind launcher = LauncherKind::kNone;
  bool mpi = false;  // MPI is initialised: groups use MpiCommunicator (else LocalCommunicator)
  int rank = 0;      // in [0, world_size)
  int world_size = 1;
  int local_rank = 0;  // rank among the processes on this host, in [0, local_size)
  int local_size = 1;
  std::string hostname;
  // The GPU this rank should use = local_rank. The launcher never calls CUDA; a CUDA build selects
  // device % cudaGetDeviceCount() (SLURM's per-task GPU binding leaves one visible device).
  int device = 0;

  // "rank 1/4 local 1/2 host node7 launcher openmpi mpi yes device 1".
  std::string ToString() const;
};

class Launcher {
 public:
  // REQUIRES: argc/argv are main's (MPI may consume its own arguments); called at most once.
  static absl::StatusOr<Launch> Init(int* argc, char*** argv, const LaunchOptions& options = {});
  // MPI_Finalize if Init initialised MPI. Safe to call twice and without Init (then a no-op).
  // REQUIRES: every MpiCommunicator / ProcessGroups is destroyed first and no collective is
  // pending.
  static absl::Status Finalize();
  // True between a successful MPI initialisation (ours or the caller's) and MPI_Finalize.
  static bool MpiActive();
  // For main() only: ends the whole job now (MPI_Abort when MPI is active, else exit(exit_code)).
  [[noreturn]] static void AbortJob(int exit_code);
};

}  // namespace moetrain::parallel

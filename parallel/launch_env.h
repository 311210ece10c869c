// Launcher detection from environment variables. Pure: the environment is passed in as a lookup
// function, so the rules are unit-tested without a launcher.
//
// Rules, first match wins:
//   kOpenMpi  OMPI_COMM_WORLD_SIZE is set (mpirun / mpiexec of Open MPI, also inside SLURM):
//             rank, size, local rank and local size from OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,
//             LOCAL_SIZE}.
//   kPmix     PMIX_RANK is set (srun --mpi=pmix, prterun): rank from PMIX_RANK; size from
//             SLURM_STEP_NUM_TASKS or SLURM_NTASKS, local rank from SLURM_LOCALID when in a SLURM
//             step; otherwise unknown (-1), and MPI supplies them.
//   kPmi      PMI_RANK and PMI_SIZE are set (MPICH / Intel MPI hydra); local rank from
//   MPI_LOCALRANKID. kSlurm    inside an srun step (SLURM_STEP_ID or SLURM_STEPID set) with
//   SLURM_PROCID: rank from
//             SLURM_PROCID, size from SLURM_STEP_NUM_TASKS or SLURM_NTASKS, local rank from
//             SLURM_LOCALID. An sbatch script itself (no step) is NOT a launcher: running the
//             binary directly in the script is a world of one. srun without PMIx gives every task
//             an MPI world of one, which Launcher::Init reports as a mismatch (HINT: srun
//             --mpi=pmix).
//   kNone     none of the above: a world of one; MPI is not initialised.
// A value that is set but is not a non-negative integer, or rank >= size, is InvalidArgument naming
// the variable and its value.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace moetrain::parallel {

enum class LauncherKind { kNone, kOpenMpi, kPmix, kPmi, kSlurm };
const char* LauncherKindName(LauncherKind kind);  // "none", "openmpi", "pmix", "pmi", "slurm"

// What the environment says about this process. -1 means "not told by the environment".
struct LaunchEnv {
  LauncherKind kind = LauncherKind::kNone;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;
};

// Returns the value of an environment variable, or nullptr when unset (like std::getenv).
using EnvLookup = std::function<const char*(const char* name)>;

absl::StatusOr<LaunchEnv> DetectLaunchEnv(const EnvLookup& getenv);
// DetectLaunchEnv over the process environment (std::getenv).
absl::StatusOr<LaunchEnv> DetectLaunchEnv();

}  // namespace moetrain::parallel

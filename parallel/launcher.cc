#include "parallel/launcher.h"

#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "core/logging.h"
#include "core/status.h"
#include "parallel/mpi_check.h"

namespace moetrain::parallel {
namespace {

// Process-wide: MPI itself is process-wide state.
struct LauncherState {
  bool init_called = false;
  bool we_initialised_mpi = false;
  bool finalized = false;
};
LauncherState g_state;

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

// Fills rank/size/local rank/local size from MPI_COMM_WORLD and checks them against `env`.
absl::Status ReadMpiWorld(const LaunchEnv& env, Launch& launch) {
  MPI_RETURN_IF_ERROR(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_RETURN_IF_ERROR(MPI_Comm_rank(MPI_COMM_WORLD, &launch.rank));
  MPI_RETURN_IF_ERROR(MPI_Comm_size(MPI_COMM_WORLD, &launch.world_size));
  MPI_Comm node = MPI_COMM_NULL;
  MPI_RETURN_IF_ERROR(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, launch.rank, MPI_INFO_NULL, &node));
  absl::Status s =
      MpiStatus(MPI_Comm_rank(node, &launch.local_rank), "MPI_Comm_rank", __FILE__, __LINE__);
  if (s.ok()) {
    s = MpiStatus(MPI_Comm_size(node, &launch.local_size), "MPI_Comm_size", __FILE__, __LINE__);
  }
  MPI_Comm_free(&node);
  RETURN_IF_ERROR(s);

  const char* hint =
      "HINT: the launcher and MPI disagree; under SLURM use `srun --mpi=pmix`, and make sure the "
      "binary is linked against the MPI that mpirun belongs to";
  if (env.world_size >= 0 && env.world_size != launch.world_size) {
    return absl::FailedPreconditionError(
        absl::StrFormat("launcher %s says world size %d but MPI_COMM_WORLD has %d ranks. %s",
                        LauncherKindName(env.kind), env.world_size, launch.world_size, hint));
  }
  if (env.rank >= 0 && env.rank != launch.rank) {
    return absl::FailedPreconditionError(
        absl::StrFormat("launcher %s says rank %d but MPI says rank %d. %s",
                        LauncherKindName(env.kind), env.rank, launch.rank, hint));
  }
  if ((env.local_rank >= 0 && env.local_rank != launch.local_rank) ||
      (env.local_size >= 0 && env.local_size != launch.local_size)) {
    MT_LOG(WARNING) << "launcher " << LauncherKindName(env.kind) << " says local rank "
                    << env.local_rank << "/" << env.local_size
                    << " but MPI shared-memory split says " << launch.local_rank << "/"
                    << launch.local_size << "; using MPI's";
  }
  return absl::OkStatus();
}

}  // namespace

std::string Launch::ToString() const {
  return absl::StrFormat("rank %d/%d local %d/%d host %s launcher %s mpi %s device %d", rank,
                         world_size, local_rank, local_size, hostname, LauncherKindName(launcher),
                         mpi ? "yes" : "no", device);
}

bool Launcher::MpiActive() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

absl::StatusOr<Launch> Launcher::Init(int* argc, char*** argv, const LaunchOptions& options) {
  if (g_state.init_called) {
    return absl::FailedPreconditionError(
        "Launcher::Init called twice (MPI starts once per process)");
  }
  g_state.init_called = true;
  ASSIGN_OR_RETURN(LaunchEnv env, DetectLaunchEnv());

  Launch launch;
  launch.launcher = env.kind;
  launch.hostname = HostName();
  int already = 0;
  MPI_Initialized(&already);
  if (already) {
    if (!MpiActive())
      return absl::FailedPreconditionError("Launcher::Init: MPI is already finalized");
    launch.mpi = true;
  } else if (env.kind != LauncherKind::kNone) {
    int provided = MPI_THREAD_SINGLE;
    MPI_RETURN_IF_ERROR(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    g_state.we_initialised_mpi = true;
    launch.mpi = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MT_LOG(WARNING) << "MPI provides thread level " << provided
                      << " < MPI_THREAD_FUNNELED; OpenMP threads must not overlap MPI calls";
    }
  }
  if (launch.mpi) RETURN_IF_ERROR(ReadMpiWorld(env, launch));
  launch.device = launch.local_rank;

  SetLogRank(launch.rank);
  SetLogQuietNonZeroRanks(options.quiet_nonzero_ranks);
  MT_LOG(INFO) << "launch: " << launch.ToString();
  return launch;
}

absl::Status Launcher::Finalize() {
  if (!g_state.we_initialised_mpi || g_state.finalized) return absl::OkStatus();
  g_state.finalized = true;
  MPI_RETURN_IF_ERROR(MPI_Finalize());
  return absl::OkStatus();
}

void Launcher::AbortJob(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (MpiActive()) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

}  // namespace moetrain::parallel

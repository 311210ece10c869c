#include "parallel/launch_env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/status.h"

namespace moetrain::parallel {
namespace {

// The integer value of `name`, -1 when unset; InvalidArgument when set but not an integer >= 0.
absl::StatusOr<int> ReadInt(const EnvLookup& getenv, const char* name) {
  const char* v = getenv(name);
  if (v == nullptr) return -1;
  int x = 0;
  if (!absl::SimpleAtoi(v, &x) || x < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("environment variable %s='%s' is not a non-negative integer", name, v));
  }
  return x;
}

// The first set variable of `a`, `b`; -1 when neither is set.
absl::StatusOr<int> ReadEither(const EnvLookup& getenv, const char* a, const char* b) {
  ASSIGN_OR_RETURN(int x, ReadInt(getenv, a));
  if (x >= 0) return x;
  return ReadInt(getenv, b);
}

}  // namespace

const char* LauncherKindName(LauncherKind kind) {
  switch (kind) {
    case LauncherKind::kNone:
      return "none";
    case LauncherKind::kOpenMpi:
      return "openmpi";
    case LauncherKind::kPmix:
      return "pmix";
    case LauncherKind::kPmi:
      return "pmi";
    case LauncherKind::kSlurm:
      return "slurm";
  }
  return "?";
}

absl::StatusOr<LaunchEnv> DetectLaunchEnv(const EnvLookup& getenv) {
  LaunchEnv env;
  const bool in_slurm_step =
      getenv("SLURM_STEP_ID") != nullptr || getenv("SLURM_STEPID") != nullptr;
  if (getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    env.kind = LauncherKind::kOpenMpi;
    ASSIGN_OR_RETURN(env.world_size, ReadInt(getenv, "OMPI_COMM_WORLD_SIZE"));
    ASSIGN_OR_RETURN(env.rank, ReadInt(getenv, "OMPI_COMM_WORLD_RANK"));
    ASSIGN_OR_RETURN(env.local_rank, ReadInt(getenv, "OMPI_COMM_WORLD_LOCAL_RANK"));
    ASSIGN_OR_RETURN(env.local_size, ReadInt(getenv, "OMPI_COMM_WORLD_LOCAL_SIZE"));
  } else if (getenv("PMIX_RANK") != nullptr) {
    env.kind = LauncherKind::kPmix;
    ASSIGN_OR_RETURN(env.rank, ReadInt(getenv, "PMIX_RANK"));
    env.world_size = env.local_rank = env.local_size = -1;
    if (in_slurm_step) {
      ASSIGN_OR_RETURN(env.world_size, ReadEither(getenv, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"));
      ASSIGN_OR_RETURN(env.local_rank, ReadInt(getenv, "SLURM_LOCALID"));
    }
  } else if (getenv("PMI_RANK") != nullptr && getenv("PMI_SIZE") != nullptr) {
    env.kind = LauncherKind::kPmi;
    ASSIGN_OR_RETURN(env.rank, ReadInt(getenv, "PMI_RANK"));
    ASSIGN_OR_RETURN(env.world_size, ReadInt(getenv, "PMI_SIZE"));
    ASSIGN_OR_RETURN(env.local_rank, ReadInt(getenv, "MPI_LOCALRANKID"));
    env.local_size = -1;
  } else if (in_slurm_step && getenv("SLURM_PROCID") != nullptr) {
    env.kind = LauncherKind::kSlurm;
    ASSIGN_OR_RETURN(env.rank, ReadInt(getenv, "SLURM_PROCID"));
    ASSIGN_OR_RETURN(env.world_size, ReadEither(getenv, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"));
    ASSIGN_OR_RETURN(env.local_rank, ReadInt(getenv, "SLURM_LOCALID"));
    env.local_size = -1;
  } else {
    return env;  // a world of one
  }
  if (env.world_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("launcher %s reports a world size of 0", LauncherKindName(env.kind)));
  }
  if (env.world_size > 0 && env.rank >= env.world_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("launcher %s reports rank %d >= world size %d", LauncherKindName(env.kind),
                        env.rank, env.world_size));
  }
  if (env.local_size > 0 && env.local_rank >= env.local_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("launcher %s reports local rank %d >= local size %d",
                        LauncherKindName(env.kind), env.local_rank, env.local_size));
  }
  return env;
}

absl::StatusOr<LaunchEnv> DetectLaunchEnv() {
  return DetectLaunchEnv([](const char* name) -> const char* { return std::getenv(name); });
}

}  // namespace moetrain::parallel

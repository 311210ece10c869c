// The Launch this process got: consistent with the launcher's environment and with MPI.
#include "parallel/launcher.h"

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/logging.h"
#include "gtest/gtest.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::parallel {
namespace {

using testing::TestLaunch;
using testing::TestWorld;

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? -1 : std::atoi(v);
}

TEST(LauncherTest, LaunchMatchesTheEnvironment) {
  const Launch& l = TestLaunch();
  EXPECT_GE(l.rank, 0);
  EXPECT_LT(l.rank, l.world_size);
  EXPECT_GE(l.local_rank, 0);
  EXPECT_LT(l.local_rank, l.local_size);
  EXPECT_EQ(l.device, l.local_rank);
  EXPECT_FALSE(l.hostname.empty());
  EXPECT_EQ(LogRank(), l.rank);
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    EXPECT_EQ(l.launcher, LauncherKind::kOpenMpi);
    EXPECT_TRUE(l.mpi);
    EXPECT_EQ(l.world_size, EnvInt("OMPI_COMM_WORLD_SIZE"));
    EXPECT_EQ(l.rank, EnvInt("OMPI_COMM_WORLD_RANK"));
    EXPECT_EQ(l.local_rank, EnvInt("OMPI_COMM_WORLD_LOCAL_RANK"));
    EXPECT_EQ(l.local_size, EnvInt("OMPI_COMM_WORLD_LOCAL_SIZE"));
    EXPECT_TRUE(Launcher::MpiActive());
  } else if (l.launcher == LauncherKind::kNone) {
    // A plain process: a world of one, and MPI was never initialised.
    EXPECT_FALSE(l.mpi);
    EXPECT_FALSE(Launcher::MpiActive());
    EXPECT_EQ(l.world_size, 1);
    EXPECT_EQ(l.rank, 0);
    EXPECT_EQ(l.local_size, 1);
    EXPECT_STREQ(TestWorld().backend(), "local");
  }
  EXPECT_NE(l.ToString().find("rank " + std::to_string(l.rank) + "/"), std::string::npos);
}

TEST(LauncherTest, LocalSizeCountsTheRanksOnThisHost) {
  const Launch& l = TestLaunch();
  Communicator& world = TestWorld();
  const int32_t host = static_cast<int32_t>(std::hash<std::string>()(l.hostname) & 0x7fffffff);
  std::vector<int32_t> hosts(world.size());
  EXPECT_TRUE(world.AllGather(&host, hosts.data(), 1, DType::kI32).ok());
  int same = 0, before = 0;
  for (int q = 0; q < world.size(); ++q) {
    same += hosts[q] == host;
    before += hosts[q] == host && q < l.rank;
  }
  EXPECT_EQ(l.local_size, same);
  EXPECT_EQ(l.local_rank, before);
}

TEST(LauncherTest, InitTwiceIsFailedPrecondition) {
  int argc = 1;
  char name[] = "x";
  char* args[] = {name, nullptr};
  char** argv = args;
  auto again = Launcher::Init(&argc, &argv);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

// Run only by the ctest parallel_mpi_failure_reaches_every_rank (--gtest_also_run_disabled_tests):
// fails on the last rank alone; every rank's exit code must still be non-zero.
TEST(LauncherTest, DISABLED_FailsOnTheLastRankOnly) {
  if (TestLaunch().rank == TestLaunch().world_size - 1) ADD_FAILURE() << "deliberate failure";
}

}  // namespace
}  // namespace moetrain::parallel

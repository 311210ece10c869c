// Launcher detection rules over fake environments (no launcher needed).
#include "parallel/launch_env.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moetrain::parallel {
namespace {

using ::testing::HasSubstr;
using Env = std::map<std::string, std::string>;

absl::StatusOr<LaunchEnv> Detect(const Env& env) {
  return DetectLaunchEnv([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchEnvTest, NoLauncherIsAWorldOfOne) {
  auto e = Detect({{"HOME", "/root"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kNone);
  EXPECT_EQ(e->rank, 0);
  EXPECT_EQ(e->world_size, 1);
  EXPECT_EQ(e->local_rank, 0);
  EXPECT_EQ(e->local_size, 1);
}

TEST(LaunchEnvTest, OpenMpi) {
  auto e = Detect({{"OMPI_COMM_WORLD_SIZE", "4"},
                   {"OMPI_COMM_WORLD_RANK", "3"},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                   {"PMIX_RANK", "3"},  // Open MPI sets both; OMPI wins
                   {"SLURM_PROCID", "0"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kOpenMpi);
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_size, 2);
}

TEST(LaunchEnvTest, SrunWithPmix) {
  auto e = Detect({{"PMIX_RANK", "5"},
                   {"SLURM_STEP_ID", "0"},
                   {"SLURM_PROCID", "5"},
                   {"SLURM_NTASKS", "16"},
                   {"SLURM_STEP_NUM_TASKS", "8"},
                   {"SLURM_LOCALID", "1"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kPmix);
  EXPECT_EQ(e->rank, 5);
  EXPECT_EQ(e->world_size, 8);  // the step's tasks, not the job's
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_size, -1);
}

TEST(LaunchEnvTest, PmixOutsideSlurmLeavesSizeToMpi) {
  auto e = Detect({{"PMIX_RANK", "2"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kPmix);
  EXPECT_EQ(e->rank, 2);
  EXPECT_EQ(e->world_size, -1);
  EXPECT_EQ(e->local_rank, -1);
}

TEST(LaunchEnvTest, HydraPmi) {
  auto e = Detect({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "1"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kPmi);
  EXPECT_EQ(e->rank, 1);
  EXPECT_EQ(e->world_size, 2);
  EXPECT_EQ(e->local_rank, 1);
}

TEST(LaunchEnvTest, SrunStepWithoutPmix) {
  auto e = Detect({{"SLURM_STEPID", "2"},
                   {"SLURM_PROCID", "1"},
                   {"SLURM_NTASKS", "4"},
                   {"SLURM_LOCALID", "1"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kSlurm);
  EXPECT_EQ(e->rank, 1);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
}

TEST(LaunchEnvTest, SbatchScriptItselfIsNotALauncher) {
  auto e = Detect({{"SLURM_JOB_ID", "42"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, LauncherKind::kNone);
  EXPECT_EQ(e->world_size, 1);
}

TEST(LaunchEnvTest, MalformedValuesNameTheVariable) {
  auto e = Detect({{"OMPI_COMM_WORLD_SIZE", "four"}});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("OMPI_COMM_WORLD_SIZE='four'"));

  e = Detect({{"PMIX_RANK", "-1"}});
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("PMIX_RANK='-1'"));
}

TEST(LaunchEnvTest, RankOutsideTheWorldIsAnError) {
  auto e = Detect({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "2"}});
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("rank 2 >= world size 2"));
  e = Detect({{"OMPI_COMM_WORLD_SIZE", "0"}});
  ASSERT_FALSE(e.ok());
}

}  // namespace
}  // namespace moetrain::parallel

// (Built as checkpoint_snapshot_mpi_test with parallel/mpi_test_main.cc.)
// The snapshot commit protocol across real MPI ranks (mpirun -np N; also a world of one): every
// rank writes its shard (async), Commit publishes one snapshot that reads back whole; a failure on
// one rank fails Commit on EVERY rank and leaves `latest` on the previous snapshot.
#include <stdlib.h>

#include <cstring>
#include <filesystem>

#include "checkpoint/snapshot_dir.h"
#include "checkpoint/snapshot_reader.h"
#include "checkpoint/snapshot_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/checkpoint/snapshot_test_util.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::checkpoint {
namespace {

using ::testing::HasSubstr;
using testing::ContentsOf;
using testing::MakeTable;
using testing::RecordsFor;

// A fresh directory made by rank 0 and broadcast to every rank (ranks share the file system).
std::string SharedTempDir(parallel::Communicator& world) {
  char path[256] = {0};
  if (world.rank() == 0) {
    std::string tmpl = ::testing::TempDir() + "/snapshot_mpi.XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) std::strncpy(path, tmpl.c_str(), sizeof(path) - 1);
  }
  EXPECT_TRUE(world.Broadcast(path, sizeof(path) / 4, DType::kI32, 0).ok());
  return path;
}

TEST(SnapshotMpi, CommitPublishesOneSnapshotAndFailuresReachEveryRank) {
  parallel::Communicator& world = parallel::testing::TestWorld();
  const int rank = world.rank(), size = world.size();
  const std::string root = SharedTempDir(world);
  ASSERT_FALSE(root.empty());
  const testing::Table t = MakeTable(42);

  SnapshotWriter writer(&world, /*keep=*/0);
  EXPECT_TRUE(writer.Begin(root, 100).ok());
  EXPECT_TRUE(writer.StartShardWrite(RecordsFor(t, rank, size), {{"rng", std::to_string(rank)}}).ok());
  const absl::Status committed = writer.Commit(ContentsOf(t), {{"layout", {{"dp", size}}}});
  EXPECT_TRUE(committed.ok()) << committed;

  auto latest = ReadLatest(root);
  EXPECT_TRUE(latest.ok() && *latest == "step-00000100");
  auto reader = SnapshotReader::Open(root + "/step-00000100");
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (reader.ok()) {
    EXPECT_EQ(reader->world_size(), size);
    EXPECT_TRUE(reader->Verify().ok());
    for (const auto& [key, full] : t) {
      const std::string field = key.substr(0, key.find('|'));
      const std::string name = key.substr(key.find('|') + 1);
      std::vector<float> got(full.values.size());
      EXPECT_TRUE(reader->ReadSlab(field, name, std::vector<int64_t>(full.shape.size(), 0),
                                   full.shape, got.data())
                      .ok());
      EXPECT_EQ(got, full.values) << key;
    }
    auto blob = reader->ReadBlob(size - 1, "rng");
    EXPECT_TRUE(blob.ok() && *blob == std::to_string(size - 1));
  }
  EXPECT_TRUE(world.Barrier().ok());  // everyone has read step 100 before the next save

  // Step 200: the last rank's shard write fails (a record with too few values).
  EXPECT_TRUE(writer.Begin(root, 200).ok());
  auto records = RecordsFor(t, rank, size);
  if (rank == size - 1) records.push_back({"param", "x", {4}, {0}, {4}, {1.0f}, 0});
  EXPECT_TRUE(writer.StartShardWrite(std::move(records), {}).ok());
  const absl::Status failed = writer.Commit(ContentsOf(t), {});
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("rank " + std::to_string(size - 1) + ": "));
  EXPECT_THAT(failed.message(), HasSubstr(ShardFileName(size - 1)));
  latest = ReadLatest(root);
  EXPECT_TRUE(latest.ok() && *latest == "step-00000100");
  EXPECT_FALSE(std::filesystem::exists(root + "/step-00000200"));

  EXPECT_TRUE(world.Barrier().ok());
  if (rank == 0) std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace moetrain::checkpoint

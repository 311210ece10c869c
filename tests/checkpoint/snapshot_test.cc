// Sharded HDF5 snapshots in one process: resharding reads, corruption and metadata errors,
// crash safety, disk full, retention, the async writer, FindLatestValid and DescribeSnapshot.
// Multi-rank commits run under mpirun in snapshot_mpi_test.cc.
#include <hdf5.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cerrno>
#include <cstring>
#include <random>

#include "checkpoint/async_shard_writer.h"
#include "checkpoint/hyperslab.h"
#include "checkpoint/snapshot_dir.h"
#include "checkpoint/snapshot_inspect.h"
#include "checkpoint/snapshot_reader.h"
#include "checkpoint/snapshot_writer.h"
#include "core/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/checkpoint/snapshot_test_util.h"

namespace moetrain::checkpoint {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ContentsOf;
using testing::Extract;
using testing::Key;
using testing::MakeTable;
using testing::RecordsFor;
using testing::Table;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/snapshot_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  // A snapshot of `world` simulated ranks written file by file (no communicator needed).
  std::string WriteLayout(const Table& t, int world, int64_t step, const std::string& name = "") {
    const std::string dir = root_ + "/" + (name.empty() ? StepDirName(step) : name);
    fs::create_directories(dir);
    for (int r = 0; r < world; ++r) {
      EXPECT_TRUE(WriteShardFile(dir + "/" + ShardFileName(r), RecordsFor(t, r, world),
                                 {{"rng", "rank" + std::to_string(r)}})
                      .ok());
    }
    const nlohmann::json meta =
        MakeSnapshotMeta(step, world, ContentsOf(t), {{"layout", {{"dp", world}}}});
    std::ofstream(dir + "/meta.json") << meta.dump(2);
    return dir;
  }

  // Commits `t` as step `step` with the real writer (world of one).
  absl::Status Commit(const Table& t, int64_t step, int keep, bool async) {
    SnapshotWriter w(nullptr, keep);
    RETURN_IF_ERROR(w.Begin(root_, step));
    auto records = RecordsFor(t, 0, 1);
    if (async) {
      RETURN_IF_ERROR(w.StartShardWrite(std::move(records), {{"rng", "state"}}));
    } else {
      RETURN_IF_ERROR(w.WriteShard(records, {{"rng", "state"}}));
    }
    return w.Commit(ContentsOf(t), {{"layout", {{"dp", 1}}}});
  }

  std::string root_;
};

// Every tensor read whole and as random sub-slabs equals the reference bitwise.
void ExpectReadsMatch(const SnapshotReader& reader, const Table& t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (const auto& [key, full] : t) {
    const std::string field = key.substr(0, key.find('|'));
    const std::string name = key.substr(key.find('|') + 1);
    std::vector<float> got(full.values.size());
    ASSERT_TRUE(reader.ReadSlab(field, name, std::vector<int64_t>(full.shape.size(), 0),
                                full.shape, got.data())
                    .ok());
    EXPECT_EQ(got, full.values) << key;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<int64_t> off(full.shape.size()), cnt(full.shape.size());
      for (size_t d = 0; d < full.shape.size(); ++d) {
        off[d] = std::uniform_int_distribution<int64_t>(0, full.shape[d] - 1)(rng);
        cnt[d] = std::uniform_int_distribution<int64_t>(1, full.shape[d] - off[d])(rng);
      }
      const std::vector<float> want = Extract(full, off, cnt);
      std::vector<float> slab(want.size(), -1.0f);
      ASSERT_TRUE(reader.ReadSlab(field, name, off, cnt, slab.data()).ok());
      EXPECT_EQ(slab, want) << key << " trial " << trial;
    }
    auto step = reader.StepCount(name);
    ASSERT_TRUE(step.ok());
    EXPECT_EQ(*step, full.step);
  }
}

TEST_F(SnapshotTest, ReshardedReadsEqualTheOriginalTensors) {
  const Table t = MakeTable(1);
  for (int world : {2, 3}) {
    const std::string dir = WriteLayout(t, world, world);
    auto reader = SnapshotReader::Open(dir);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(reader->world_size(), world);
    EXPECT_EQ(reader->step(), world);
    EXPECT_TRUE(reader->Verify().ok());
    ExpectReadsMatch(*reader, t, world);
    for (int r = 0; r < world; ++r) {
      auto blob = reader->ReadBlob(r, "rng");
      ASSERT_TRUE(blob.ok());
      EXPECT_EQ(*blob, "rank" + std::to_string(r));
    }
    EXPECT_EQ(reader->ReadBlob(0, "nope").status().code(), absl::StatusCode::kNotFound);
  }
}

TEST(FlatRangeToHyperslabs, CoversExactlyTheRangeInOrder) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int64_t> shape(std::uniform_int_distribution<int>(0, 4)(rng));
    int64_t n = 1;
    for (auto& d : shape) n *= (d = std::uniform_int_distribution<int64_t>(1, 5)(rng));
    const int64_t b = std::uniform_int_distribution<int64_t>(0, n)(rng);
    const int64_t e = std::uniform_int_distribution<int64_t>(b, n)(rng);
    // Enumerate each box's flat indices row-major: concatenated they must be exactly b..e-1.
    std::vector<int64_t> flat;
    for (const Hyperslab& h : FlatRangeToHyperslabs(shape, b, e)) {
      testing::FullTensor iota{shape, std::vector<float>(n)};
      for (int64_t i = 0; i < n; ++i) iota.values[i] = static_cast<float>(i);
      for (float v : Extract(iota, h.offset, h.count)) flat.push_back(static_cast<int64_t>(v));
    }
    std::vector<int64_t> want;
    for (int64_t i = b; i < e; ++i) want.push_back(i);
    EXPECT_EQ(flat, want) << "trial " << trial;
  }
}

// Flips one byte in the middle of the first chunk of `dataset`, found through HDF5 itself.
void FlipByteInDataset(const std::string& path, const std::string& dataset) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dset = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  ASSERT_GE(dset, 0);
  hsize_t chunk_offset[1];
  unsigned filter_mask = 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  // Chunked datasets have no single H5Dget_offset; the chunk index gives the chunk's address.
  hid_t space = H5Dget_space(dset);
  ASSERT_GE(H5Dget_chunk_info(dset, space, 0, chunk_offset, &filter_mask, &addr, &size), 0);
  H5Sclose(space);
  H5Dclose(dset);
  H5Fclose(file);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(addr + size / 2));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(addr + size / 2));
  f.put(static_cast<char>(c ^ 0x5a));
}

TEST_F(SnapshotTest, FlippedByteIsDataLossNamingFileAndDataset) {
  const Table t = MakeTable(2);
  const std::string dir = WriteLayout(t, 2, 5);
  const std::string shard = dir + "/shard-00001.h5";
  FlipByteInDataset(shard, "/param/model.layers.0.w1.weight/0");
  auto reader = SnapshotReader::Open(dir);  // attributes are intact: the index opens
  ASSERT_TRUE(reader.ok()) << reader.status();
  const absl::Status v = reader->Verify();
  EXPECT_EQ(v.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(v.message(), HasSubstr(shard));
  EXPECT_THAT(v.message(), HasSubstr("/param/model.layers.0.w1.weight/0"));
  EXPECT_THAT(v.message(), HasSubstr("checksum"));
  std::vector<float> row(5);
  const absl::Status r =
      reader->ReadSlab("param", "model.layers.0.w1.weight", {4, 0}, {1, 5}, row.data());
  EXPECT_EQ(r.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.message(), HasSubstr(shard));
  // Rows held by the intact shard still read.
  EXPECT_TRUE(reader->ReadSlab("param", "model.layers.0.w1.weight", {0, 0}, {1, 5}, row.data()).ok());
}

TEST_F(SnapshotTest, FindLatestValidFallsBackPastCorruptAndTruncatedSnapshots) {
  const Table t = MakeTable(3);
  WriteLayout(t, 2, 1);
  const std::string dir2 = WriteLayout(t, 2, 2);
  const std::string dir3 = WriteLayout(t, 2, 3);
  ASSERT_TRUE(WriteLatest(root_, StepDirName(3)).ok());
  FlipByteInDataset(dir2 + "/shard-00000.h5", "/param/model.norm.weight/0");
  const std::string truncated = dir3 + "/shard-00001.h5";
  fs::resize_file(truncated, fs::file_size(truncated) / 2);

  auto open3 = SnapshotReader::Open(dir3);
  ASSERT_FALSE(open3.ok());
  EXPECT_THAT(open3.status().message(), HasSubstr(truncated));

  std::vector<std::string> skipped;
  auto found = FindLatestValid(root_, &skipped);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, root_ + "/" + StepDirName(1));
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_THAT(skipped[0], HasSubstr(truncated));
  EXPECT_THAT(skipped[1], HasSubstr("/param/model.norm.weight/0"));

  fs::remove_all(root_ + "/" + StepDirName(1));
  auto none = FindLatestValid(root_, nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr(truncated));
}

TEST_F(SnapshotTest, MetadataMismatchListsEveryProblem) {
  const Table t = MakeTable(4);
  const std::string dir = WriteLayout(t, 2, 9);
  nlohmann::json meta;
  std::ifstream(dir + "/meta.json") >> meta;
  meta["tensors"].erase("model.norm.weight");              // in the shards: extra
  meta["tensors"]["model.missing"] = {3, 3};               // in no shard: missing
  meta["tensors"]["model.layers.0.w1.weight"] = {6, 4};    // wrong shape
  std::ofstream(dir + "/meta.json") << meta.dump();
  auto reader = SnapshotReader::Open(dir);
  ASSERT_FALSE(reader.ok());
  const std::string msg(reader.status().message());
  EXPECT_THAT(msg, HasSubstr("extra tensor model.norm.weight"));
  EXPECT_THAT(msg, HasSubstr("missing tensor model.missing"));
  EXPECT_THAT(msg, HasSubstr("shape mismatch for tensor model.layers.0.w1.weight"));
  EXPECT_THAT(msg, HasSubstr("[6,5]"));
  EXPECT_THAT(msg, HasSubstr("shard-00000.h5"));
  EXPECT_THAT(msg, HasSubstr("shard-00001.h5"));
}

TEST_F(SnapshotTest, OverlapsGapsAndMissingShardsAreReported) {
  const Table t = MakeTable(5);
  const std::string dir = root_ + "/bad";
  fs::create_directories(dir);
  // Rank 0's pieces written twice (overlap), rank 1's never (a gap), and shard 2 listed but absent.
  ASSERT_TRUE(WriteShardFile(dir + "/shard-00000.h5", RecordsFor(t, 0, 2), {}).ok());
  ASSERT_TRUE(WriteShardFile(dir + "/shard-00001.h5", RecordsFor(t, 0, 2), {}).ok());
  std::ofstream(dir + "/meta.json") << MakeSnapshotMeta(1, 3, ContentsOf(t), {}).dump();
  auto reader = SnapshotReader::Open(dir);
  ASSERT_FALSE(reader.ok());
  const std::string msg(reader.status().message());
  EXPECT_THAT(msg, HasSubstr("missing shard file " + dir + "/shard-00002.h5"));
  EXPECT_THAT(msg, HasSubstr("overlap"));
  // A bad record never reaches the file.
  ShardRecord bad{"param", "x", {4}, {2}, {3}, {1, 2, 3}, 0};
  const absl::Status w = WriteShardFile(dir + "/bad.h5", {bad}, {});
  EXPECT_EQ(w.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(w.message(), HasSubstr(dir + "/bad.h5"));
  EXPECT_FALSE(fs::exists(dir + "/bad.h5"));
}

TEST_F(SnapshotTest, WriterThatDiedBeforeCommitLeavesLatestOnThePreviousSnapshot) {
  const Table t = MakeTable(6);
  ASSERT_TRUE(Commit(t, 100, 0, false).ok());
  {
    SnapshotWriter dying(nullptr, 0);
    ASSERT_TRUE(dying.Begin(root_, 200).ok());
    ASSERT_TRUE(dying.WriteShard(RecordsFor(t, 0, 1), {}).ok());
    // No Commit: the process "dies" here.
  }
  EXPECT_TRUE(fs::exists(root_ + "/.tmp-step-00000200/shard-00000.h5"));
  EXPECT_EQ(*ReadLatest(root_), "step-00000100");
  EXPECT_EQ(ListCompleteSnapshots(root_).size(), 1u);
  auto found = FindLatestValid(root_, nullptr);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, root_ + "/step-00000100");
  // The next successful commit sweeps the stale tmp dir.
  ASSERT_TRUE(Commit(t, 300, 0, false).ok());
  EXPECT_FALSE(fs::exists(root_ + "/.tmp-step-00000200"));
  EXPECT_EQ(*ReadLatest(root_), "step-00000300");
}

TEST_F(SnapshotTest, DiskFullNamesThePathAndMarksNothingComplete) {
  const std::string small = root_ + "/small";
  fs::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a 64 KiB tmpfs (needs root): " << std::strerror(errno);
  }
  Table t;
  t[Key("param", "big")] = {{256, 256}, moetrain::testing::RandomVector<float>(65536, 1), 1};
  SnapshotWriter w(nullptr, 0);
  absl::Status s = w.Begin(small, 1);
  if (s.ok()) {
    s = w.WriteShard(RecordsFor(t, 0, 1), {});
    const absl::Status c = w.Commit(ContentsOf(t), {});
    EXPECT_FALSE(c.ok());
    EXPECT_THAT(c.message(), HasSubstr("latest is unchanged"));
  }
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(small + "/.tmp-step-00000001/shard-00000.h5"));
  EXPECT_THAT(s.message(), HasSubstr("No space left on device"));
  EXPECT_FALSE(fs::exists(small + "/latest"));
  EXPECT_TRUE(ListCompleteSnapshots(small).empty());
  ::umount(small.c_str());
}

TEST_F(SnapshotTest, RetentionKeepsTheNewestK) {
  const Table t = MakeTable(7);
  for (int64_t step : {10, 20, 30, 40}) ASSERT_TRUE(Commit(t, step, 2, false).ok());
  const auto kept = ListCompleteSnapshots(root_);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].second, "step-00000040");
  EXPECT_EQ(kept[1].second, "step-00000030");
  EXPECT_EQ(*ReadLatest(root_), "step-00000040");
}

TEST_F(SnapshotTest, AsyncWriteEqualsSyncWrite) {
  const Table t = MakeTable(8);
  ASSERT_TRUE(Commit(t, 1, 0, false).ok());
  ASSERT_TRUE(Commit(t, 2, 0, true).ok());
  auto sync = SnapshotReader::Open(root_ + "/step-00000001");
  auto async = SnapshotReader::Open(root_ + "/step-00000002");
  ASSERT_TRUE(sync.ok() && async.ok());
  EXPECT_EQ(sync->num_datasets(), async->num_datasets());
  EXPECT_EQ(*sync->ReadBlob(0, "rng"), *async->ReadBlob(0, "rng"));
  for (const auto& [key, full] : t) {
    const std::string field = key.substr(0, key.find('|'));
    const std::string name = key.substr(key.find('|') + 1);
    std::vector<float> a(full.values.size()), b(full.values.size());
    const std::vector<int64_t> zero(full.shape.size(), 0);
    ASSERT_TRUE(sync->ReadSlab(field, name, zero, full.shape, a.data()).ok());
    ASSERT_TRUE(async->ReadSlab(field, name, zero, full.shape, b.data()).ok());
    EXPECT_EQ(a, b) << key;
    EXPECT_EQ(a, full.values) << key;
  }
}

TEST_F(SnapshotTest, AsyncWriteErrorsReachWaitAndCommit) {
  AsyncShardWriter writer;
  const std::string nowhere = root_ + "/no/such/dir/shard-00000.h5";
  ASSERT_TRUE(writer.Start(nowhere, RecordsFor(MakeTable(9), 0, 1), {}).ok());
  const absl::Status s = writer.Wait();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(nowhere));
  EXPECT_TRUE(writer.Done());

  const Table t = MakeTable(9);
  ASSERT_TRUE(Commit(t, 1, 0, false).ok());
  SnapshotWriter w(nullptr, 0);
  ASSERT_TRUE(w.Begin(root_, 2).ok());
  auto records = RecordsFor(t, 0, 1);
  records[0].data.pop_back();  // fails validation on the background thread
  ASSERT_TRUE(w.StartShardWrite(std::move(records), {}).ok());
  const absl::Status c = w.Commit(ContentsOf(t), {});
  EXPECT_EQ(c.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.message(), HasSubstr("shard-00000.h5"));
  EXPECT_EQ(*ReadLatest(root_), "step-00000001");
  EXPECT_FALSE(fs::exists(root_ + "/step-00000002"));
  EXPECT_FALSE(fs::exists(root_ + "/.tmp-step-00000002"));
}

TEST_F(SnapshotTest, DescribeSnapshotSummarisesAndVerifies) {
  const Table t = MakeTable(10);
  const std::string dir = WriteLayout(t, 2, 7);
  auto text = DescribeSnapshot(dir);
  ASSERT_TRUE(text.ok()) << text.status();
  // Independent counts: records of both simulated ranks plus one blob per rank.
  const size_t datasets = RecordsFor(t, 0, 2).size() + RecordsFor(t, 1, 2).size() + 2;
  int64_t param_bytes = 0;
  for (const auto& [key, full] : t) {
    if (key.rfind("param|", 0) == 0) param_bytes += 4 * static_cast<int64_t>(full.values.size());
  }
  EXPECT_THAT(*text, HasSubstr("moetrain-snapshot version 1"));
  EXPECT_THAT(*text, HasSubstr("step:       7"));
  EXPECT_THAT(*text, HasSubstr("world size: 2"));
  EXPECT_THAT(*text, HasSubstr("{\"dp\":2}"));
  EXPECT_THAT(*text, HasSubstr("field param: 4 tensors, " + std::to_string(param_bytes) + " bytes"));
  EXPECT_THAT(*text, HasSubstr("field exp_avg: 2 tensors"));
  EXPECT_THAT(*text, HasSubstr("all " + std::to_string(datasets) + " datasets verified"));
  FlipByteInDataset(dir + "/shard-00000.h5", "/exp_avg/model.layers.0.w1.weight/0");
  EXPECT_EQ(DescribeSnapshot(dir).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace moetrain::checkpoint

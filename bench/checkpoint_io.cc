// Snapshot I/O of the bench-small training state, one process (a world of one), fp32, ZeRO stage 0.
//
// bench-small (as bench/train_throughput.cc): vocab 8192, hidden 256, 4 layers, 8 heads / 4 KV
// heads, 8 routed experts top-2 of width 512; the state is master weights + both AdamW moments
// (after one real optimizer step, so the moments are not zero).
// Measures, each the median of --reps repetitions:
//   save:      CollectShardRecords (host copy) + SnapshotWriter Begin + WriteShard (sync; fsync) +
//              Commit (meta.json, renames, `latest`, retention); payload bytes / s.
//   load warm: SnapshotReader::Open + LoadTrainState, the shard still in the page cache.
//   load cold: the same after posix_fadvise(DONTNEED) evicted the shard file's pages.
//   verify:    SnapshotReader::Verify (every checksum), warm.
//   step cost: the extra wall time a save adds to training. A window is one step with a save at
//              its end plus --after plain steps; cost = window - the same window without a save
//              (timed right before it, in each repetition). Sync writes inside the save; async hands the host copy to the background
//              writer and commits at the first step boundary where the write is done (as
//              trainer/train_loop.cc does), so its cost is the host copy plus the contention of
//              the writer thread with the training steps.
// The machine may be shared: medians, and "other_cpu" (CPU share used by OTHER processes during
// the run, as in train_throughput). Last line: "RESULT key=value ..." (machine-readable).
// Usage: checkpoint_io [--threads N] [--reps N] [--after N] [--batch N] [--seq N] [--dir DIR]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "checkpoint/snapshot_dir.h"
#include "checkpoint/snapshot_reader.h"
#include "checkpoint/snapshot_writer.h"
#include "core/threads.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
#include "trainer/train_snapshot.h"

namespace {

using moetrain::bench::BenchSmallConfig;
using moetrain::bench::Clock;
using moetrain::bench::MachineBusySeconds;
using moetrain::bench::Median;
using moetrain::bench::Seconds;
using moetrain::bench::SelfCpuSeconds;
namespace ckpt = moetrain::checkpoint;
using moetrain::model::Model;
using moetrain::model::ModelConfig;
using moetrain::optim::ZeroOptimizer;

struct Options {
  int threads = 2, reps = 5, after = 3;
  int64_t batch = 8, seq = 256;
  std::string dir;  // "" = a fresh directory under /tmp
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--threads") o->threads = std::atoi(v);
    else if (a == "--reps") o->reps = std::atoi(v);
    else if (a == "--after") o->after = std::atoi(v);
    else if (a == "--batch") o->batch = std::atoll(v);
    else if (a == "--seq") o->seq = std::atoll(v);
    else if (a == "--dir") o->dir = v;
    else return false;
  }
  return o->threads > 0 && o->reps > 0 && o->after >= 0 && o->batch > 0 && o->seq > 0;
}

void Check(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

class Bench {
 public:
  Bench(Model<float>* model, ZeroOptimizer<float>* zero, const Options& o, std::string root)
      : model_(model), zero_(zero), root_(std::move(root)), writer_(nullptr, /*keep=*/1),
        contents_(moetrain::trainer::ContentsOf(model->table())),
        tokens_(o.batch * o.seq), targets_(o.batch * o.seq), dist_(0, BenchSmallConfig().vocab_size - 1) {}

  // One training step on fresh random tokens.
  void TrainStep() {
    for (auto& t : tokens_) t = dist_(rng_);
    for (auto& t : targets_) t = dist_(rng_);
    zero_->BeginStep();
    model_->Forward(tokens_.data(), targets_.data());
    model_->Backward(1.0);
    Check(zero_->Step(1e-4).status(), "optimizer step");
    // An async save completes at the first step boundary where its write is done.
    if (pending_ && writer_.ShardWriteDone()) Commit();
  }
  // Starts a snapshot of the current state (sync: written and committed before returning).
  // Returns the payload bytes (fp32 values of every record).
  size_t Save(bool async) {
    if (pending_) Commit();  // the previous save first
    std::vector<ckpt::ShardRecord> records =
        moetrain::trainer::CollectShardRecords(*model_, *zero_, {});
    size_t bytes = 0;
    for (const auto& r : records) bytes += r.data.size() * sizeof(float);
    Check(writer_.Begin(root_, ++step_), "begin");
    pending_ = true;
    if (async) {
      Check(writer_.StartShardWrite(std::move(records), {}), "start shard write");
    } else {
      Check(writer_.WriteShard(records, {}), "write shard");
      Commit();
    }
    return bytes;
  }
  void Finish() {
    if (pending_) Commit();
  }
  std::string LastDir() const { return root_ + "/" + ckpt::StepDirName(step_); }

 private:
  void Commit() {
    pending_ = false;
    Check(writer_.Commit(contents_, nlohmann::json::object()), "commit");
  }

  Model<float>* model_;
  ZeroOptimizer<float>* zero_;
  std::string root_;
  ckpt::SnapshotWriter writer_;
  ckpt::SnapshotContents contents_;
  std::vector<int32_t> tokens_, targets_;
  std::mt19937 rng_{1234};
  std::uniform_int_distribution<int32_t> dist_;
  int64_t step_ = 0;
  bool pending_ = false;
};

void EvictFromPageCache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: %s [--threads N] [--reps N] [--after N] [--batch N] [--seq N] [--dir DIR]\n",
                 argv[0]);
    return 2;
  }
  moetrain::SetNumThreads(opt.threads);
  std::string root = opt.dir;
  bool remove_root = false;
  if (root.empty()) {
    char tmpl[] = "/tmp/moetrain-ckpt-bench.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    root = tmpl;
    remove_root = true;
  }
  auto model_or = Model<float>::Create(BenchSmallConfig(), opt.batch, opt.seq, opt.threads);
  Check(model_or.status(), "model");
  auto model = std::move(model_or).value();
  auto zero_or = ZeroOptimizer<float>::Create(model.get(), moetrain::optim::ZeroOptions{}, {});
  Check(zero_or.status(), "optimizer");
  auto zero = std::move(zero_or).value();
  zero->InitFromSeed(42);
  Bench bench(model.get(), zero.get(), opt, root);
  const double busy0 = MachineBusySeconds(), self0 = SelfCpuSeconds();
  const auto run0 = Clock::now();

  // Plain steps: the reference step time (the first one warms up and makes the moments non-zero).
  bench.TrainStep();
  std::vector<double> steps;
  for (int i = 0; i < std::max(opt.reps, 3); ++i) {
    const auto t0 = Clock::now();
    bench.TrainStep();
    steps.push_back(Seconds(t0, Clock::now()));
  }
  const double step_s = Median(steps);

  // Save (sync) and load.
  std::vector<double> save_s, load_warm_s, load_cold_s, verify_s;
  size_t bytes = 0, file_bytes = 0;
  for (int r = 0; r < opt.reps; ++r) {
    const auto t0 = Clock::now();
    bytes = bench.Save(/*async=*/false);
    save_s.push_back(Seconds(t0, Clock::now()));
    const std::string dir = bench.LastDir(), shard = dir + "/" + ckpt::ShardFileName(0);
    file_bytes = std::filesystem::file_size(shard);
    for (bool cold : {false, true}) {
      if (cold) EvictFromPageCache(shard);
      const auto t1 = Clock::now();
      auto reader = ckpt::SnapshotReader::Open(dir);
      Check(reader.status(), "open");
      Check(moetrain::trainer::LoadTrainState(*reader, *model, *zero, true), "load");
      (cold ? load_cold_s : load_warm_s).push_back(Seconds(t1, Clock::now()));
      if (!cold) {
        const auto t2 = Clock::now();
        Check(reader->Verify(), "verify");
        verify_s.push_back(Seconds(t2, Clock::now()));
      }
    }
  }

  // Step-time cost of a save step, sync vs async: each repetition times a plain window of
  // 1 + after steps next to a sync and an async window (so slow drifts of a shared machine hit
  // both sides of the difference alike).
  std::vector<double> cost_sync, cost_async;
  for (int r = 0; r < opt.reps; ++r) {
    double plain = 0;
    for (int mode : {0, 1, 2}) {  // 0: no save, 1: sync, 2: async
      const auto t0 = Clock::now();
      bench.TrainStep();
      if (mode > 0) bench.Save(/*async=*/mode == 2);
      for (int i = 0; i < opt.after; ++i) bench.TrainStep();
      bench.Finish();  // an async write still in flight after the window counts against it
      const double t = Seconds(t0, Clock::now());
      if (mode == 0) plain = t;
      else (mode == 2 ? cost_async : cost_sync).push_back(t - plain);
    }
  }
  const double wall = Seconds(run0, Clock::now());
  const double other = MachineBusySeconds() - busy0 - (SelfCpuSeconds() - self0);
  const double other_cpu = busy0 < 0 ? -1 : std::max(0.0, other) / (wall * sysconf(_SC_NPROCESSORS_ONLN));
  if (remove_root) std::filesystem::remove_all(root);

  const double mb = 1e6;
  std::printf("bench-small state: %zu payload bytes (%.1f MB: master + exp_avg + exp_avg_sq), shard file %zu bytes\n",
              bytes, bytes / mb, file_bytes);
  std::printf("plain step (batch %lld x seq %lld, %d threads): %.1f ms\n",
              static_cast<long long>(opt.batch), static_cast<long long>(opt.seq), opt.threads, 1e3 * step_s);
  std::printf("save (sync, fsync, commit): %.1f ms, %.0f MB/s\n", 1e3 * Median(save_s), bytes / mb / Median(save_s));
  std::printf("load warm (open + LoadTrainState): %.1f ms, %.0f MB/s\n", 1e3 * Median(load_warm_s),
              bytes / mb / Median(load_warm_s));
  std::printf("load cold (page cache evicted): %.1f ms, %.0f MB/s\n", 1e3 * Median(load_cold_s),
              bytes / mb / Median(load_cold_s));
  std::printf("verify (every checksum, warm): %.1f ms\n", 1e3 * Median(verify_s));
  std::printf("save-step cost over %d steps: sync %.1f ms, async %.1f ms\n", 1 + opt.after,
              1e3 * Median(cost_sync), 1e3 * Median(cost_async));
  std::printf("other processes used %.1f%% of all cores during the run\n", 100 * other_cpu);
  std::printf("RESULT bytes=%zu step_ms=%.2f save_ms=%.2f save_mb_s=%.1f load_warm_ms=%.2f "
              "load_warm_mb_s=%.1f load_cold_ms=%.2f load_cold_mb_s=%.1f verify_ms=%.2f "
              "cost_sync_ms=%.2f cost_async_ms=%.2f other_cpu=%.3f\n",
              bytes, 1e3 * step_s, 1e3 * Median(save_s), bytes / mb / Median(save_s),
              1e3 * Median(load_warm_s), bytes / mb / Median(load_warm_s), 1e3 * Median(load_cold_s),
              bytes / mb / Median(load_cold_s), 1e3 * Median(verify_s), 1e3 * Median(cost_sync),
              1e3 * Median(cost_async), other_cpu);
  return 0;
}

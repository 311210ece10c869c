// Training throughput and MFU of one process on the CPU, config "bench-small".
//
// bench-small: vocab 8192, hidden 256, 4 layers, 8 heads / 4 KV heads (head_dim 32), 8 routed
// experts top-2 of width 512, no shared experts, seq 256, micro-batch 8, fp32.
// Each iteration is one full training step: BeginStep (zeroes the gradients) + Forward + Backward +
// Step of optim::ZeroOptimizer at ZeRO stage 0 in a world of one (the training loop's optimizer;
// fp32, so its master is the model's parameter buffer): global-norm clipping and AdamW. Tokens and targets are uniform random ids (fresh each step from
// a fixed seed), so routing is roughly balanced.
//
// Reports tokens/s, model FLOPs per token (trainer::TrainingFlopsPerToken: matmul FLOPs only,
// forward x 3), achieved model FLOP/s, the sgemm peak measured in the same process with the same
// threads (trainer::MeasureSgemmPeakFlops, 1024^3, kernels::Matmul on the OpenMP threads), and
// MFU = achieved / peak. The machine is a shared VM whose speed drifts by up to ~30% within
// minutes (other VMs on the host), so the peak is measured right after EVERY timed step (median of
// 3, outside the step's time) and MFU is the median over steps of (step FLOPs / step time) / (the
// peak measured next to it): both sides of the ratio see the same machine. Also printed: the
// conservative MFU against the largest peak seen anywhere in the run (including plain cblas_sgemm
// with OpenBLAS's own thread pool, before and after the loop). With --phases, a second timed loop
// runs with the model's phase hooks (core/phase_timer.h) enabled and prints the per-phase
// breakdown (ms per step, share of the step).
// The machine is shared, so the bench also reports how much CPU time OTHER processes used during the
// timed loop (machine busy time from /proc/stat minus this process's own CPU time; "other_cpu", in
// percent of all cores): a run with more than a few percent was disturbed and its numbers are low.
// The last line is machine-readable: "RESULT tokens_per_s=... mfu=... step_ms=... peak_gflops=...
// achieved_gflops=... mfu_vs_best_peak=... other_cpu=...".
//
// Usage: train_throughput [--threads N] [--iters N] [--warmup N] [--phases] [--batch N] [--seq N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <cblas.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/phase_timer.h"
#include "core/threads.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
#include "trainer/flops.h"

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);

namespace {

using moetrain::bench::BenchSmallConfig;
using moetrain::bench::Clock;
using moetrain::bench::MachineBusySeconds;
using moetrain::bench::Median;
using moetrain::bench::Seconds;
using moetrain::bench::SelfCpuSeconds;
using moetrain::PhaseTimer;
using moetrain::model::Model;
using moetrain::model::ModelConfig;
using moetrain::optim::ZeroOptimizer;

struct Options {
  int threads = 2;
  int iters = 10;
  int warmup = 2;
  bool phases = false;
  int64_t batch = 8;
  int64_t seq = 256;
};

// cblas_sgemm 1024^3 with OpenBLAS's own `threads` threads (median of 5); restores BLAS's thread
// count afterwards (SetNumThreads made it 1).
double NativeSgemmPeak(int threads) {
  const int saved = openblas_get_num_threads();
  const int n = 1024;
  std::vector<float> a(static_cast<size_t>(n) * n, 1.0f), b(a.size(), 0.5f), c(a.size());
  openblas_set_num_threads(threads);
  std::vector<double> secs;
  for (int r = 0; r < 6; ++r) {
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    if (r > 0) secs.push_back(Seconds(t0, Clock::now()));  // r = 0 warms up
  }
  openblas_set_num_threads(saved);
  return 2.0 * n * n * static_cast<double>(n) / Median(secs);
}

struct StepTimes {
  double zero = 0, forward = 0, backward = 0, optimizer = 0;
  double Total() const { return zero + forward + backward + optimizer; }
};

class Runner {
 public:
  Runner(Model<float>* model, ZeroOptimizer<float>* opt, int64_t n, int64_t vocab)
      : model_(model), opt_(opt), tokens_(n), targets_(n), rng_(1234), dist_(0, vocab - 1) {}

  StepTimes Step() {
    for (auto& t : tokens_) t = dist_(rng_);
    for (auto& t : targets_) t = dist_(rng_);
    StepTimes s;
    const auto t0 = Clock::now();
    opt_->BeginStep();  // zeroes the model's gradients
    const auto t1 = Clock::now();
    last_loss_ = model_->Forward(tokens_.data(), targets_.data()).total;
    const auto t2 = Clock::now();
    model_->Backward(1.0);
    const auto t3 = Clock::now();
    const auto stats = opt_->Step(1e-4);
    if (!stats.ok()) {  // a world of one has no collective that can fail: a broken invariant
      std::fprintf(stderr, "optimizer step: %s\n", stats.status().ToString().c_str());
      std::abort();
    }
    const auto t4 = Clock::now();
    s.zero = Seconds(t0, t1);
    s.forward = Seconds(t1, t2);
    s.backward = Seconds(t2, t3);
    s.optimizer = Seconds(t3, t4);
    return s;
  }
  double last_loss() const { return last_loss_; }

 private:
  Model<float>* model_;
  ZeroOptimizer<float>* opt_;
  std::vector<int32_t> tokens_, targets_;
  std::mt19937 rng_;
  std::uniform_int_distribution<int32_t> dist_;
  double last_loss_ = 0;
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](int64_t* v) {
      if (i + 1 >= argc) return false;
      *v = std::atoll(argv[++i]);
      return true;
    };
    int64_t v = 0;
    if (a == "--phases") {
      o->phases = true;
    } else if (a == "--threads" && next(&v)) {
      o->threads = static_cast<int>(v);
    } else if (a == "--iters" && next(&v)) {
      o->iters = static_cast<int>(v);
    } else if (a == "--warmup" && next(&v)) {
      o->warmup = static_cast<int>(v);
    } else if (a == "--batch" && next(&v)) {
      o->batch = v;
    } else if (a == "--seq" && next(&v)) {
      o->seq = v;
    } else {
      return false;
    }
  }
  return o->threads >= 1 && o->iters >= 1 && o->warmup >= 0 && o->batch >= 1 && o->seq >= 1;
}

// Phase name -> which row of the breakdown it belongs to.
const char* Group(const std::string& phase) {
  static const std::map<std::string, const char*> kGroups = {
      {"fwd.attn.proj", "attention projections (q,k,v,o GEMMs)"},
      {"bwd.attn.proj", "attention projections (q,k,v,o GEMMs)"},
      {"fwd.attn.core", "attention core (flash kernel)"},
      {"bwd.attn.core", "attention core (flash kernel)"},
      {"fwd.attn.rope", "rope"},
      {"bwd.attn.rope", "rope"},
      {"fwd.experts.gemm", "expert grouped GEMMs"},
      {"bwd.experts.gemm", "expert grouped GEMMs"},
      {"fwd.router", "router (gate GEMM, top-k, stats)"},
      {"bwd.router", "router (gate GEMM, top-k, stats)"},
      {"fwd.permute", "permute / unpermute"},
      {"bwd.permute", "permute / unpermute"},
      {"fwd.head.gemm", "lm head GEMM"},
      {"bwd.head.gemm", "lm head GEMM"},
      {"fwd.ce", "cross-entropy"},
      {"bwd.ce", "cross-entropy"},
      {"fwd.norm", "rmsnorm"},
      {"bwd.norm", "rmsnorm"},
      {"fwd.swiglu", "swiglu"},
      {"bwd.swiglu", "swiglu"},
      {"fwd.residual", "residual adds"},
      {"bwd.residual", "residual adds"},
      {"fwd.embed", "embedding"},
      {"bwd.embed", "embedding"},
      {"zero.sync", "optimizer: gradient sync"},
      {"zero.grad_norm", "optimizer: grad norm"},
      {"zero.adamw", "optimizer: adamw"},
      {"zero.gather", "optimizer: parameter gather"},
  };
  auto it = kGroups.find(phase);
  return it == kGroups.end() ? "other" : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: %s [--threads N] [--iters N>=1] [--warmup N] [--phases] [--batch N] "
                 "[--seq N]\n",
                 argv[0]);
    return 2;
  }
  moetrain::SetNumThreads(opt.threads);
  const ModelConfig config = BenchSmallConfig();
  auto model_or = Model<float>::Create(config, opt.batch, opt.seq, opt.threads);
  if (!model_or.ok()) {
    std::fprintf(stderr, "model: %s\n", model_or.status().ToString().c_str());
    return 1;
  }
  auto model = std::move(model_or).value();
  auto opt_or = ZeroOptimizer<float>::Create(model.get(), moetrain::optim::ZeroOptions{},
                                             moetrain::optim::ZeroComms{});
  if (!opt_or.ok()) {
    std::fprintf(stderr, "optimizer: %s\n", opt_or.status().ToString().c_str());
    return 1;
  }
  auto optimizer = std::move(opt_or).value();
  optimizer->InitFromSeed(42);  // the numbers of Model::InitParams(42)

  const int64_t n = opt.batch * opt.seq;
  const double flops_per_token = moetrain::trainer::TrainingFlopsPerToken(config, opt.seq);
  std::printf(
      "bench-small: vocab %lld hidden %lld layers %lld heads %lld/%lld (D %lld) experts %lld "
      "top-%lld width %lld | batch %lld seq %lld fp32 | %d threads\n",
      static_cast<long long>(config.vocab_size), static_cast<long long>(config.hidden_size),
      static_cast<long long>(config.num_hidden_layers),
      static_cast<long long>(config.num_attention_heads),
      static_cast<long long>(config.num_key_value_heads), static_cast<long long>(config.HeadDim()),
      static_cast<long long>(config.num_local_experts),
      static_cast<long long>(config.num_experts_per_tok),
      static_cast<long long>(config.ExpertWidth()), static_cast<long long>(opt.batch),
      static_cast<long long>(opt.seq), opt.threads);
  std::printf("trainable params %lld, model FLOPs/token (training, matmul only) %.4g\n",
              static_cast<long long>(model->table().NumTrainable()), flops_per_token);

  const double peak_before = moetrain::trainer::MeasureSgemmPeakFlops();
  const double native_before = NativeSgemmPeak(opt.threads);

  Runner runner(model.get(), optimizer.get(), n, config.vocab_size);
  for (int i = 0; i < opt.warmup; ++i) runner.Step();
  const double step_flops = flops_per_token * static_cast<double>(n);
  std::vector<double> total, fwd, bwd, optim, zero, step_peak, step_mfu;
  const double busy0 = MachineBusySeconds(), self0 = SelfCpuSeconds();
  const auto loop0 = Clock::now();
  for (int i = 0; i < opt.iters; ++i) {
    const StepTimes s = runner.Step();
    total.push_back(s.Total());
    fwd.push_back(s.forward);
    bwd.push_back(s.backward);
    optim.push_back(s.optimizer);
    zero.push_back(s.zero);
    step_peak.push_back(moetrain::trainer::MeasureSgemmPeakFlops(1024, 3));
    step_mfu.push_back(step_flops / s.Total() / step_peak.back());
  }
  const double loop_wall = Seconds(loop0, Clock::now());
  const double busy1 = MachineBusySeconds(), self1 = SelfCpuSeconds();
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  // Other processes' share of all cores during the timed loop, in percent (-1: unknown).
  const double other_cpu =
      busy0 < 0 || busy1 < 0
          ? -1.0
          : std::max(0.0, 100.0 * ((busy1 - busy0) - (self1 - self0)) / (loop_wall * cores));
  const double peak_after = moetrain::trainer::MeasureSgemmPeakFlops();
  const double native_after = NativeSgemmPeak(opt.threads);
  const double best_peak =
      std::max({peak_before, peak_after, native_before, native_after,
                *std::max_element(step_peak.begin(), step_peak.end())});

  const double step = Median(total);
  const double tokens_per_s = static_cast<double>(n) / step;
  const double achieved = tokens_per_s * flops_per_token;
  const double peak = Median(step_peak);
  const double mfu = Median(step_mfu);
  const double mfu_vs_best = achieved / best_peak;
  std::printf("loss after %d steps: %.4f\n", opt.warmup + opt.iters, runner.last_loss());
  std::printf("other processes used %.1f%% of the %ld cores during the timed loop%s\n", other_cpu,
              cores, other_cpu > 5 ? " (DISTURBED: numbers are low)" : "");
  std::printf("step (median of %d): %.1f ms  [min %.1f, max %.1f]\n", opt.iters, step * 1e3,
              *std::min_element(total.begin(), total.end()) * 1e3,
              *std::max_element(total.begin(), total.end()) * 1e3);
  std::printf("  zero_grads %.1f ms | forward %.1f ms | backward %.1f ms | optimizer %.1f ms\n",
              Median(zero) * 1e3, Median(fwd) * 1e3, Median(bwd) * 1e3, Median(optim) * 1e3);
  std::printf("sgemm 1024^3 GFLOP/s: MeasureSgemmPeakFlops after each step median %.2f [min %.2f, "
              "max %.2f], before the loop %.2f, after %.2f | OpenBLAS %d threads before %.2f "
              "after %.2f\n",
              peak * 1e-9, *std::min_element(step_peak.begin(), step_peak.end()) * 1e-9,
              *std::max_element(step_peak.begin(), step_peak.end()) * 1e-9, peak_before * 1e-9,
              peak_after * 1e-9, opt.threads, native_before * 1e-9, native_after * 1e-9);
  std::printf("tokens/s %.0f | achieved %.2f GFLOP/s | sgemm peak %.2f GFLOP/s | MFU %.1f%% "
              "(median of per-step MFU) | MFU vs the best peak of the run %.1f%%\n",
              tokens_per_s, achieved * 1e-9, peak * 1e-9, 100.0 * mfu, 100.0 * mfu_vs_best);

  if (opt.phases) {
    // A second loop with the hooks on (they add two clock reads per phase, ~100 per step).
    PhaseTimer::Reset();
    PhaseTimer::SetEnabled(true);
    double loop = 0;
    for (int i = 0; i < opt.iters; ++i) loop += runner.Step().Total();
    PhaseTimer::SetEnabled(false);
    const double per = 1e3 / opt.iters;
    std::printf("\nper-phase breakdown (mean over %d steps with hooks on; step %.1f ms)\n",
                opt.iters, loop * per);
    std::printf("| phase | ms/step | share |\n|---|---:|---:|\n");
    double fwd_sum = 0, bwd_sum = 0, opt_sum = 0;
    std::map<std::string, double> groups;
    for (const auto& [name, secs] : PhaseTimer::Snapshot()) {
      std::printf("| %s | %.2f | %.1f%% |\n", name.c_str(), secs * per, 100.0 * secs / loop);
      (name.rfind("fwd.", 0) == 0 ? fwd_sum : name.rfind("bwd.", 0) == 0 ? bwd_sum : opt_sum) +=
          secs;
      groups[Group(name)] += secs;
    }
    std::printf("\nby kind (forward + backward)\n| kind | ms/step | share |\n|---|---:|---:|\n");
    std::vector<std::pair<double, std::string>> sorted;
    for (const auto& [g, secs] : groups) sorted.emplace_back(secs, g);
    std::sort(sorted.rbegin(), sorted.rend());
    for (const auto& [secs, g] : sorted)
      std::printf("| %s | %.2f | %.1f%% |\n", g.c_str(), secs * per, 100.0 * secs / loop);
    const double hooked = fwd_sum + bwd_sum + opt_sum;
    std::printf("| (not covered by a hook: zero_grads, loss sums, call overhead) | %.2f | %.1f%% |\n",
                (loop - hooked) * per, 100.0 * (loop - hooked) / loop);
  }
  std::printf(
      "RESULT tokens_per_s=%.1f mfu=%.4f step_ms=%.2f peak_gflops=%.2f achieved_gflops=%.2f "
      "mfu_vs_best_peak=%.4f other_cpu=%.1f\n",
      tokens_per_s, mfu, step * 1e3, peak * 1e-9, achieved * 1e-9, mfu_vs_best, other_cpu);
  return 0;
}

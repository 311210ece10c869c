// Memory and time of activation checkpointing (ModelOptions::checkpointing), one training step.
//
// Config (mid-size MoE, float): hidden 512, 8 layers (MoE), 8 experts top-2 of width 512, 8 heads
// (4 KV), vocab 8192, batch 4 x seq 512 (2048 tokens). For each mode (none, selective, full, full
// every 2nd layer) and each repeat, a fresh child process (fork):
//   1. creates the model (all arenas are planned, allocated and zero-filled here) and initialises it,
//   2. runs one Forward + Backward, timing each,
//   3. reads its peak RSS (VmHWM in /proc/self/status) — the whole process: parameters, gradients,
//      activations, workspace, code and libraries.
// Printed per mode: the planned activation bytes, the planned total of all arenas, the measured peak
// RSS, the measured peak saving against "none" (next to the planned activation saving) and the
// forward / backward times, each the median over the repeats.
//
// Usage: activation_checkpointing [num_threads] [repeats]   (defaults 2 and 3)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/bench_util.h"
#include "core/threads.h"
#include "model/model.h"

namespace {

using moetrain::bench::MeasureInChild;
using moetrain::bench::PositionalInt;
using moetrain::bench::ReadStatusKib;
using moetrain::model::ActivationCheckpointing;
using moetrain::model::Model;
using moetrain::model::ModelConfig;
using moetrain::model::ModelOptions;

constexpr int64_t kBatch = 4, kSeq = 512;

ModelConfig BenchConfig() {
  ModelConfig c;
  c.vocab_size = 8192;
  c.hidden_size = 512;
  c.intermediate_size = 1024;
  c.moe_intermediate_size = 512;
  c.num_hidden_layers = 8;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.num_local_experts = 8;
  c.num_experts_per_tok = 2;
  c.max_position_embeddings = kSeq;
  return c;
}

struct Mode {
  const char* label;
  ActivationCheckpointing mode;
  int every;
};

struct Measurement {
  int64_t planned_activations = 0, planned_total = 0, peak_rss_kib = 0;
  double forward_ms = 0, backward_ms = 0;
  double loss = 0;
};

// Runs in the child: one step of one mode.
Measurement Child(const Mode& mode, int threads) {
  moetrain::SetNumThreads(threads);
  const ModelConfig c = BenchConfig();
  ModelOptions o;
  o.checkpointing = mode.mode;
  o.checkpoint_every = mode.every;
  auto created = Model<float>::Create(c, kBatch, kSeq, threads, {}, o);
  if (!created.ok()) {
    std::fprintf(stderr, "%s: %s\n", mode.label, created.status().ToString().c_str());
    _exit(1);
  }
  Model<float>& m = **created;
  m.InitParams(1);
  m.ZeroGrads();
  const int64_t n = kBatch * kSeq;
  std::vector<int32_t> tokens(n), targets(n);
  for (int64_t i = 0; i < n; ++i) {  // a fixed pseudo-random sequence (same in every mode)
    tokens[i] = static_cast<int32_t>((i * 2654435761u) % c.vocab_size);
    targets[i] = static_cast<int32_t>(((i + 1) * 2654435761u) % c.vocab_size);
  }
  Measurement r;
  for (const auto& [category, bytes] : m.MemoryPlan()) {
    r.planned_total += static_cast<int64_t>(bytes);
    if (category == "activations") r.planned_activations = static_cast<int64_t>(bytes);
  }
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  r.loss = m.Forward(tokens.data(), targets.data()).total;
  const auto t1 = Clock::now();
  m.Backward(1.0);
  const auto t2 = Clock::now();
  r.forward_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.backward_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  r.peak_rss_kib = ReadStatusKib("VmHWM");
  return r;
}

template <typename F>
double Median(std::vector<Measurement>& v, F field) {
  std::vector<double> x;
  for (const Measurement& m : v) x.push_back(static_cast<double>(field(m)));
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

double MiB(double bytes) { return bytes / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  const int threads = PositionalInt(argc, argv, 1, 2);
  const int repeats = PositionalInt(argc, argv, 2, 3);
  if (threads < 1 || repeats < 1) {
    std::fprintf(stderr, "usage: %s [num_threads >= 1] [repeats >= 1]\n", argv[0]);
    return 2;
  }
  const Mode modes[] = {{"none", ActivationCheckpointing::kNone, 1},
                        {"selective", ActivationCheckpointing::kSelective, 1},
                        {"full", ActivationCheckpointing::kFull, 1},
                        {"full, every 2nd layer", ActivationCheckpointing::kFull, 2}};
  const ModelConfig c = BenchConfig();
  std::printf(
      "one fwd+bwd step, float, hidden %lld, %lld MoE layers, %lld experts top-%lld (width %lld), "
      "vocab %lld, batch %lld x seq %lld, %d threads, median of %d fresh processes\n",
      static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_hidden_layers),
      static_cast<long long>(c.num_local_experts), static_cast<long long>(c.num_experts_per_tok),
      static_cast<long long>(c.moe_intermediate_size), static_cast<long long>(c.vocab_size),
      static_cast<long long>(kBatch), static_cast<long long>(kSeq), threads, repeats);
  std::printf(
      "| mode | planned activations MiB | planned total MiB | peak RSS MiB | planned activation "
      "saving MiB | measured peak saving MiB | forward ms | backward ms | step ms | loss |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  double none_acts = 0, none_rss = 0;
  for (const Mode& mode : modes) {
    std::vector<Measurement> runs(repeats);
    for (Measurement& m : runs)
      if (!MeasureInChild([&] { return Child(mode, threads); }, &m)) {
        std::fprintf(stderr, "measurement for mode '%s' failed\n", mode.label);
        return 1;
      }
    const double acts = Median(runs, [](const Measurement& m) { return m.planned_activations; });
    const double total = Median(runs, [](const Measurement& m) { return m.planned_total; });
    const double rss = Median(runs, [](const Measurement& m) { return m.peak_rss_kib; }) * 1024.0;
    const double fwd = Median(runs, [](const Measurement& m) { return m.forward_ms; });
    const double bwd = Median(runs, [](const Measurement& m) { return m.backward_ms; });
    const double step = Median(runs, [](const Measurement& m) { return m.forward_ms + m.backward_ms; });
    if (mode.mode == ActivationCheckpointing::kNone) {
      none_acts = acts;
      none_rss = rss;
    }
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %.6f |\n", mode.label,
                MiB(acts), MiB(total), MiB(rss), MiB(none_acts - acts), MiB(none_rss - rss), fwd, bwd,
                step, runs[0].loss);
  }
  return 0;
}

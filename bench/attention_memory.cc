// Peak memory (and time) of causal GQA flash attention, forward + backward (kernels/attention.h).
//
// For each S in {512, 1024, 2048} (B=1, Hq=8, Hkv=4, D=64, float) a fresh child process (fork):
//   1. warms up (a tiny attention call, so OpenMP threads and code pages are already resident;
//      malloc_trim then returns its freed heap pages, so the buffers below start from nothing),
//   2. resets its peak RSS (writes "5" to /proc/self/clear_refs) and reads VmHWM,
//   3. allocates and touches q, k, v, dout, out, lse, dq, dk, dv and the workspace, runs forward
//      and backward, and reads VmHWM again.
// The increase in VmHWM is everything the attention needed at its peak. It is printed next to the
// bytes of those buffers and the bytes a naive implementation would need for just one S x S
// probability matrix per head (B*Hq*S*S floats; its backward would need another for dS).
//
// Usage: attention_memory [num_threads]   (default 2)
#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/attention.h"

namespace {

using moetrain::bench::MeasureInChild;
using moetrain::bench::PositionalInt;
using moetrain::bench::ReadStatusKib;
using moetrain::bench::ResetPeakRss;
using moetrain::kernels::AttentionBackward;
using moetrain::kernels::AttentionForward;
using moetrain::kernels::AttentionWorkspaceElems;

constexpr int64_t kB = 1, kHq = 8, kHkv = 4, kD = 64;

struct Measurement {
  int64_t hwm_before_kib = 0, hwm_after_kib = 0;
  bool peak_reset = false;
  double forward_ms = 0, backward_ms = 0;
};

// Allocates every buffer of one forward + backward and runs both.
void RunAttention(int64_t s, int threads, Measurement* m) {
  const int64_t nq = kB * s * kHq * kD, nkv = kB * s * kHkv * kD;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> q(nq), k(nkv), v(nkv), dout(nq);
  for (auto* x : {&q, &k, &v, &dout})
    for (float& e : *x) e = dist(rng);
  std::vector<float> out(nq), lse(kB * kHq * s), dq(nq), dk(nkv), dv(nkv);
  std::vector<float> ws(AttentionWorkspaceElems(s, kHq, kD, threads));

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  AttentionForward(out.data(), lse.data(), q.data(), k.data(), v.data(), kB, s, kHq, kHkv, kD,
                   ws.data(), threads);
  const auto t1 = Clock::now();
  AttentionBackward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                    out.data(), lse.data(), kB, s, kHq, kHkv, kD, ws.data(), threads);
  const auto t2 = Clock::now();
  if (m != nullptr) {
    m->forward_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    m->backward_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  }
}

// Runs in the child: measures one S.
Measurement Child(int64_t s, int threads) {
  RunAttention(16, threads, nullptr);  // warm-up
  malloc_trim(0);                      // hand freed warm-up pages back, so none are reused
  Measurement m;
  m.peak_reset = ResetPeakRss();
  m.hwm_before_kib = ReadStatusKib("VmHWM");
  RunAttention(s, threads, &m);
  m.hwm_after_kib = ReadStatusKib("VmHWM");
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = PositionalInt(argc, argv, 1, 2);
  if (threads < 1) {
    std::fprintf(stderr, "usage: %s [num_threads >= 1]\n", argv[0]);
    return 2;
  }
  std::printf("causal GQA attention fwd+bwd, float, B=%lld Hq=%lld Hkv=%lld D=%lld, %d threads\n",
              static_cast<long long>(kB), static_cast<long long>(kHq), static_cast<long long>(kHkv),
              static_cast<long long>(kD), threads);
  std::printf(
      "| S | buffers (theory) KiB | measured peak increase KiB | naive S*S probs KiB"
      " (B*Hq*S*S floats) | forward ms | backward ms |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  bool all_reset = true;
  for (int64_t s : {512, 1024, 2048}) {
    Measurement m;
    if (!MeasureInChild([&] { return Child(s, threads); }, &m)) {
      std::fprintf(stderr, "measurement for S=%lld failed\n", static_cast<long long>(s));
      return 1;
    }
    all_reset = all_reset && m.peak_reset;
    const int64_t elems = 4 * kB * s * kHq * kD     // q, dout, out, dq
                          + 4 * kB * s * kHkv * kD  // k, v, dk, dv
                          + kB * kHq * s            // lse
                          + AttentionWorkspaceElems(s, kHq, kD, threads);
    const int64_t naive = kB * kHq * s * s;
    std::printf("| %lld | %lld | %lld | %lld | %.1f | %.1f |\n", static_cast<long long>(s),
                static_cast<long long>(elems * 4 / 1024),
                static_cast<long long>(m.hwm_after_kib - m.hwm_before_kib),
                static_cast<long long>(naive * 4 / 1024), m.forward_ms, m.backward_ms);
  }
  if (!all_reset)
    std::printf(
        "note: /proc/self/clear_refs could not reset the peak; the increase is measured "
        "from the child's inherited VmHWM and may be an underestimate\n");
  return 0;
}

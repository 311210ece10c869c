// Helpers shared by the benchmarks in bench/ (header only; the benches are single-file programs).
//   BenchSmallConfig       the "bench-small" MoE of docs/PERF.md (train_throughput, checkpoint_io).
//   Seconds, Median        wall-time arithmetic; Median of an even count is the mean of the middle two.
//   MachineBusySeconds, SelfCpuSeconds   CPU time of all cores / of this process, to tell how much
//                          OTHER processes used during a timed loop (the machine is shared).
//   ReadStatusKib, ResetPeakRss          /proc/self/status fields (VmHWM) and the peak-RSS reset.
//   MeasureInChild         runs a measurement in a fresh fork()ed process (its own peak RSS) and
//                          brings its trivially copyable result back through a pipe.
//   PositionalInt          argv[i] as an int, or a default when absent.
#ifndef MOETRAIN_BENCH_BENCH_UTIL_H_
#define MOETRAIN_BENCH_BENCH_UTIL_H_

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "model/config.h"

namespace moetrain::bench {

using Clock = std::chrono::steady_clock;

inline model::ModelConfig BenchSmallConfig() {
  model::ModelConfig c;
  c.vocab_size = 8192;
  c.hidden_size = 256;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;  // head_dim = 256 / 8 = 32
  c.num_local_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 512;
  c.intermediate_size = 512;  // unused: every layer is MoE
  c.num_shared_experts = 0;
  c.max_position_embeddings = 4096;
  return c;
}

inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// All cores busy: user+nice+system+irq+softirq+steal from /proc/stat (not idle, iowait); -1 if
// unreadable.
inline double MachineBusySeconds() {
  FILE* f = std::fopen("/proc/stat", "r");
  if (f == nullptr) return -1;
  unsigned long long v[8] = {};
  const int got = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                              &v[3], &v[4], &v[5], &v[6], &v[7]);
  std::fclose(f);
  if (got != 8) return -1;
  const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// This process's own CPU time (user+system, all threads).
inline double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// A "VmHWM:   1234 kB" style field of /proc/self/status, in KiB (-1 if missing).
inline int64_t ReadStatusKib(const char* field) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  int64_t kib = -1;
  const size_t n = std::strlen(field);
  while (std::fgets(line, sizeof(line), f) != nullptr)
    if (std::strncmp(line, field, n) == 0 && line[n] == ':') {
      kib = std::atoll(line + n + 1);
      break;
    }
  std::fclose(f);
  return kib;
}

// Resets VmHWM to the current RSS (writes "5" to /proc/self/clear_refs); false where not permitted.
inline bool ResetPeakRss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// Forks; the child runs `measure()` (returning a Result; it may _exit(1) on failure), writes the
// bytes of the Result to a pipe and _exits. True when the parent read a whole Result into *out and
// the child exited 0.
template <typename Result, typename Measure>
bool MeasureInChild(Measure measure, Result* out) {
  static_assert(std::is_trivially_copyable_v<Result>, "the result crosses a pipe as raw bytes");
  int fds[2];
  if (pipe(fds) != 0) return false;
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    close(fds[0]);
    const Result r = measure();
    const bool ok = write(fds[1], &r, sizeof(r)) == static_cast<ssize_t>(sizeof(r));
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  const bool got = read(fds[0], out, sizeof(*out)) == static_cast<ssize_t>(sizeof(*out));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return got && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// argv[index] as an int (atoi), or `fallback` when there are not that many arguments.
inline int PositionalInt(int argc, char** argv, int index, int fallback) {
  return argc > index ? std::atoi(argv[index]) : fallback;
}

}  // namespace moetrain::bench

#endif  // MOETRAIN_BENCH_BENCH_UTIL_H_

// Optional wall-clock accounting of named phases (benchmarks, profiling). Off by default.
//
//   PhaseScope ph("fwd.norm");   // starts charging phase "fwd.norm"
//   RmsNormForward(...);
//   ph.Next("fwd.attn.proj");    // charges the time so far to "fwd.norm", starts "fwd.attn.proj"
//   LinearForward(...);
//   ph.Next(nullptr);            // charges "fwd.attn.proj"; nothing runs until the next Next
//   block.Forward(...);          // (a callee with its own PhaseScope: not double counted)
//                                // the destructor charges the running phase, if any
//
// While disabled (PhaseTimer::SetEnabled(false), the default) a PhaseScope reads one relaxed atomic
// and records nothing, so the hooks can stay in the model's orchestration code. Phases are charged
// wall time (steady_clock), which is what matters for a step whose kernels are themselves parallel.
// Names must be string literals (or otherwise outlive the process's use of the timer).
// Thread-safety: open scopes and call Snapshot/Reset only from the thread that drives the model,
// never inside an OpenMP parallel region.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace moetrain {

class PhaseTimer {
 public:
  static void SetEnabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }
  static bool Enabled() { return enabled_.load(std::memory_order_relaxed); }
  // Adds `seconds` to phase `name` (created on first use; order of first use is kept).
  static void Add(const char* name, double seconds);
  // (name, total seconds) per phase, in order of first use.
  static std::vector<std::pair<std::string, double>> Snapshot();
  static void Reset();

 private:
  static std::atomic<bool> enabled_;
};

class PhaseScope {
 public:
  explicit PhaseScope(const char* name) {
    if (PhaseTimer::Enabled()) Start(name);
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;
  ~PhaseScope() { Stop(); }

  // Charges the running phase and starts `name` (nullptr: start nothing).
  void Next(const char* name) {
    Stop();
    if (name != nullptr && PhaseTimer::Enabled()) Start(name);
  }

 private:
  using Clock = std::chrono::steady_clock;
  void Start(const char* name) {
    name_ = name;
    t0_ = Clock::now();
  }
  void Stop() {
    if (name_ == nullptr) return;
    PhaseTimer::Add(name_, std::chrono::duration<double>(Clock::now() - t0_).count());
    name_ = nullptr;
  }
  const char* name_ = nullptr;
  Clock::time_point t0_{};
};

}  // namespace moetrain

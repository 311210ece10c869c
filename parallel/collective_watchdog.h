// CollectiveWatchdog: ends the job when a collective waits longer than a timeout.
//
// A rank that dies or stalls (a hung GPU, a deadlocked peer, a lost node) leaves the others blocked
// in a collective forever; MPI notices a dead process but not a live one that never arrives. Every
// Communicator collective (the blocking calls, Split, and CommHandle::Wait of the non-blocking
// ones) opens a Watch for the time it blocks; one thread per process wakes a few times per timeout
// and, if any open Watch is older than the timeout, runs the action once with
//   "rank R: <collective> on group <name> did not complete within Ns"
// The default action logs that line as an ERROR and calls
// Launcher::AbortJob(kCollectiveTimeoutExitCode) (MPI_Abort: mpirun / srun then end every rank).
// Time spent computing between a non-blocking call and its Wait is not counted: only blocking time
// is.
//
// Global() is the process's watchdog that Communicator uses; it is off (timeout 0) until Configure.
// Separate instances (tests) are independent. Watch is cheap when off (no lock, no clock read).
// Thread-safety: Configure, Watch and the destructor may be called from any thread; the action
// runs on the watchdog thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace moetrain::parallel {

// The exit status of a job ended by the watchdog (the `timeout` command's convention).
inline constexpr int kCollectiveTimeoutExitCode = 124;

class CollectiveWatchdog {
 public:
  using Action = std::function<void(const std::string& message)>;

  // Off until Configure. The default action logs and aborts the job (see above).
  CollectiveWatchdog();
  ~CollectiveWatchdog();  // stops and joins the thread
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  static CollectiveWatchdog& Global();

  // timeout_s <= 0 turns the watchdog off (collectives may wait forever). `rank` is the world rank
  // named in the message. A null action keeps the current one. Starts the thread on first use.
  void Configure(double timeout_s, int rank, Action action = nullptr);
  double timeout_s() const;

  // An open wait: from construction to destruction. Movable.
  class Watch {
   public:
    Watch() = default;
    Watch(Watch&& o) noexcept : owner_(o.owner_), id_(o.id_) { o.owner_ = nullptr; }
    Watch& operator=(Watch&&) = delete;
    Watch(const Watch&) = delete;
    ~Watch();

   private:
    friend class CollectiveWatchdog;
    Watch(CollectiveWatchdog* owner, uint64_t id) : owner_(owner), id_(id) {}
    CollectiveWatchdog* owner_ = nullptr;
    uint64_t id_ = 0;
  };
  // `collective` must outlive the Watch (a string literal); `group` is copied.
  Watch Begin(const char* collective, const std::string& group);

 private:
  using Clock = std::chrono::steady_clock;
  struct Open {
    const char* collective;
    std::string group;
    Clock::time_point start;
  };
  void End(uint64_t id);
  void Run();  // the watchdog thread

  mutable std::mutex mu_;
  std::condition_variable cv_;
  double timeout_s_ = 0;  // guarded by mu_; also mirrored in enabled_ for the lock-free fast path
  std::atomic<bool> enabled_{false};
  int rank_ = 0;
  Action action_;
  bool fired_ = false;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Open> open_;
  std::thread thread_;
};

}  // namespace moetrain::parallel

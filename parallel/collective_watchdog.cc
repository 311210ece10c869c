#include "parallel/collective_watchdog.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "core/logging.h"
#include "parallel/launcher.h"

namespace moetrain::parallel {

CollectiveWatchdog::CollectiveWatchdog() {
  action_ = [](const std::string& message) {
    MT_LOG(ERROR) << message << "; aborting the job (parallel.collective_timeout_s)";
    Launcher::AbortJob(kCollectiveTimeoutExitCode);
  };
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

CollectiveWatchdog& CollectiveWatchdog::Global() {
  // Never destroyed: collectives may still run from static destructors, and joining a thread at
  // exit() is best avoided.
  static CollectiveWatchdog* global = new CollectiveWatchdog();
  return *global;
}

void CollectiveWatchdog::Configure(double timeout_s, int rank, Action action) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    timeout_s_ = timeout_s > 0 ? timeout_s : 0;
    rank_ = rank;
    if (action) action_ = std::move(action);
    fired_ = false;
    enabled_ = timeout_s_ > 0;
    if (enabled_ && !thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }
  cv_.notify_all();
}

double CollectiveWatchdog::timeout_s() const {
  std::lock_guard<std::mutex> lock(mu_);
  return timeout_s_;
}

CollectiveWatchdog::Watch CollectiveWatchdog::Begin(const char* collective,
                                                    const std::string& group) {
  if (!enabled_.load(std::memory_order_relaxed)) return Watch();
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  open_.emplace(id, Open{collective, group, Clock::now()});
  return Watch(this, id);
}

void CollectiveWatchdog::End(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(id);
}

CollectiveWatchdog::Watch::~Watch() {
  if (owner_ != nullptr) owner_->End(id_);
}

void CollectiveWatchdog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Wake often enough to act within ~10% of the timeout (at most every second).
    const double period = timeout_s_ > 0 ? std::min(1.0, timeout_s_ / 10) : 1.0;
    cv_.wait_for(lock, std::chrono::duration<double>(period));
    if (stop_ || timeout_s_ <= 0 || fired_ || open_.empty()) continue;
    const auto now = Clock::now();
    // The oldest open wait (ids grow with time, but a Watch opened earlier may be on another
    // thread): scan all, there are a handful at most.
    const Open* oldest = nullptr;
    for (const auto& [id, open] : open_)
      if (oldest == nullptr || open.start < oldest->start) oldest = &open;
    if (std::chrono::duration<double>(now - oldest->start).count() < timeout_s_) continue;
    fired_ = true;
    const std::string message =
        absl::StrFormat("rank %d: %s on group %s did not complete within %gs", rank_,
                        oldest->collective, oldest->group, timeout_s_);
    Action action = action_;
    lock.unlock();  // the action may abort the process or call back into Begin/End
    action(message);
    lock.lock();
  }
}

}  // namespace moetrain::parallel

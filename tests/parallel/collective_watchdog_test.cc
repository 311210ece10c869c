// CollectiveWatchdog in one process: the watchdog thread runs its action (here: record the
// message) for a wait longer than the timeout, names the rank, collective and group, fires once,
// and stays quiet for short waits and when off. The MPI abort path is tested with real ranks by
// watchdog_test.sh.
#include "parallel/collective_watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace moetrain::parallel {
namespace {

struct Recorder {
  std::mutex mu;
  std::vector<std::string> messages;
  CollectiveWatchdog::Action Action() {
    return [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu);
      messages.push_back(m);
    };
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mu);
    return messages;
  }
};

void Sleep(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

TEST(CollectiveWatchdog, LongWaitFiresOnceWithRankCollectiveAndGroup) {
  Recorder rec;
  CollectiveWatchdog dog;
  dog.Configure(0.2, 3, rec.Action());
  {
    auto w = dog.Begin("AllToAllV", "ep");
    Sleep(0.8);  // four timeouts: must still fire only once
  }
  const std::vector<std::string> m = rec.Get();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], "rank 3: AllToAllV on group ep did not complete within 0.2s");
}

TEST(CollectiveWatchdog, ShortWaitsDoNotFire) {
  Recorder rec;
  CollectiveWatchdog dog;
  dog.Configure(0.3, 0, rec.Action());
  // 0.6 s of collectives in total, each far shorter than the timeout.
  for (int i = 0; i < 30; ++i) {
    auto w = dog.Begin("AllReduce", "dp");
    Sleep(0.02);
  }
  Sleep(0.1);
  EXPECT_TRUE(rec.Get().empty());
}

TEST(CollectiveWatchdog, OffNeverFiresAndReconfigureRearms) {
  Recorder rec;
  CollectiveWatchdog dog;
  dog.Configure(0, 0, rec.Action());
  EXPECT_EQ(dog.timeout_s(), 0);
  {
    auto w = dog.Begin("Barrier", "world");
    Sleep(0.3);
  }
  EXPECT_TRUE(rec.Get().empty());
  dog.Configure(0.1, 1);  // keeps the action
  {
    auto w = dog.Begin("IAllGather", "edp");
    Sleep(0.4);
  }
  const std::vector<std::string> m = rec.Get();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], "rank 1: IAllGather on group edp did not complete within 0.1s");
}

TEST(CollectiveWatchdog, TheOldestOpenWaitIsNamed) {
  Recorder rec;
  CollectiveWatchdog dog;
  dog.Configure(0.3, 0, rec.Action());
  auto outer = dog.Begin("Broadcast", "world");
  Sleep(0.1);
  {
    auto inner = dog.Begin("AllReduce", "tp");
    Sleep(0.5);
  }
  ASSERT_EQ(rec.Get().size(), 1u);
  EXPECT_EQ(rec.Get()[0], "rank 0: Broadcast on group world did not complete within 0.3s");
}

}  // namespace
}  // namespace moetrain::parallel

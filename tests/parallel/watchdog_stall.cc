// A test-only MPI program for the collective watchdog (tests/parallel/watchdog_test.sh): every rank
// but the last calls one collective on the ep group while the last rank sleeps first, so the others
// block. With the watchdog on (timeout < sleep) the job must die with the watchdog's message; with
// it off (timeout 0) the collective completes after the sleep and the program exits 0.
//   watchdog_stall MODE TIMEOUT_S SLEEP_S   (MODE: blocking | nonblocking)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/logging.h"
#include "parallel/collective_watchdog.h"
#include "parallel/launcher.h"
#include "parallel/process_groups.h"
#include "parallel/rank_grid.h"

using namespace moetrain::parallel;

namespace {
int Run(int argc, char** argv, const Launch& launch) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: watchdog_stall blocking|nonblocking TIMEOUT_S SLEEP_S\n");
    return 2;
  }
  const std::string mode = argv[1];
  const double timeout_s = std::atof(argv[2]), sleep_s = std::atof(argv[3]);
  CollectiveWatchdog::Global().Configure(timeout_s, launch.rank);
  auto grid = RankGrid::Create(launch.world_size, 1, launch.world_size);  // ep = world
  if (!grid.ok()) return 2;
  auto groups = ProcessGroups::Create(launch, *grid);
  if (!groups.ok()) return 2;
  if (launch.rank == launch.world_size - 1)
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
  double x = launch.rank;
  if (mode == "blocking") {
    if (!groups->ep().AllReduce(&x, &x, 1, moetrain::DType::kF64).ok()) return 3;
  } else {
    auto h = groups->ep().IAllReduce(&x, &x, 1, moetrain::DType::kF64);
    if (!h.ok() || !h->Wait().ok()) return 3;
  }
  const double n = launch.world_size;
  if (x != n * (n - 1) / 2) return 4;  // sum of the ranks
  std::printf("rank %d: collective done\n", launch.rank);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  auto launch = Launcher::Init(&argc, &argv);
  if (!launch.ok()) return 2;
  const int rc = Run(argc, argv, *launch);
  if (!Launcher::Finalize().ok()) return 5;
  return rc;
}

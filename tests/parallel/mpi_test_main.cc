// gtest main for the multi-rank parallel tests. Initialises MPI through parallel::Launcher (or runs
// as a world of one without a launcher), runs every test on every rank, prints the normal gtest
// report on rank 0 and only failures (tagged with the rank) elsewhere, then MPI_Allreduces the
// failure flag so the exit code of EVERY rank is non-zero when any rank failed.
#include <mpi.h>

#include <cstdio>
#include <memory>

#include "gtest/gtest.h"
#include "parallel/launcher.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"
#include "tests/parallel/mpi_test_env.h"

namespace moetrain::parallel::testing {
namespace {

Launch g_launch;
std::unique_ptr<Communicator> g_world;

// Non-zero ranks: print failed assertions only, tagged with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }

 private:
  int rank_;
};

absl::StatusOr<std::unique_ptr<Communicator>> MakeWorld(const Launch& launch) {
  if (!launch.mpi) return std::unique_ptr<Communicator>(new LocalCommunicator());
  MPI_Comm comm = MPI_COMM_NULL;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &comm) != MPI_SUCCESS) {
    return absl::InternalError("MPI_Comm_dup failed");
  }
  auto c = MpiCommunicator::Create(comm, /*owned=*/true);
  if (!c.ok()) return c.status();
  return std::unique_ptr<Communicator>(std::move(*c));
}

}  // namespace

const Launch& TestLaunch() { return g_launch; }
Communicator& TestWorld() { return *g_world; }

}  // namespace moetrain::parallel::testing

int main(int argc, char** argv) {
  namespace mp = moetrain::parallel;
  namespace mpt = moetrain::parallel::testing;
  using mp::Launcher;
  mp::LaunchOptions options;
  options.quiet_nonzero_ranks = true;
  auto launch = Launcher::Init(&argc, &argv, options);
  if (!launch.ok()) {
    std::fprintf(stderr, "Launcher::Init failed: %s\n", launch.status().ToString().c_str());
    (void)Launcher::Finalize();
    return 2;
  }
  mpt::g_launch = *launch;
  auto world = mpt::MakeWorld(*launch);
  if (!world.ok()) {
    std::fprintf(stderr, "world communicator: %s\n", world.status().ToString().c_str());
    Launcher::AbortJob(2);
  }
  mpt::g_world = std::move(*world);

  ::testing::InitGoogleTest(&argc, argv);
  if (launch->rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new mpt::RankFailurePrinter(launch->rank));
  }
  const int rc = RUN_ALL_TESTS();

  int failed = rc != 0 ? 1 : 0;
  if (launch->mpi) MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed && rc == 0 && launch->rank == 0) {
    std::fprintf(stderr, "FAILED on another rank (see the [rank N] lines)\n");
  }
  mpt::g_world.reset();
  const absl::Status f1 = Launcher::Finalize();
  const absl::Status f2 = Launcher::Finalize();  // must be a harmless no-op
  if (!f1.ok() || !f2.ok()) {
    std::fprintf(stderr, "Launcher::Finalize: %s / %s\n", f1.ToString().c_str(),
                 f2.ToString().c_str());
    return 3;
  }
  return failed;
}

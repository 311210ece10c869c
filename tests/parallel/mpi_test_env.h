// Shared state of the parallel test binary that runs as real MPI ranks (mpirun -np N) and as a
// plain process (a world of one without MPI). Set up by mpi_test_main.cc.
//
// Rules for tests in that binary: every rank runs every test in the same order; tests must issue
// the same collectives on every rank, so prefer EXPECT_* over ASSERT_* after a collective (an early
// return on one rank would leave the others blocked until the ctest TIMEOUT).
#pragma once

#include "parallel/communicator.h"
#include "parallel/launcher.h"

namespace moetrain::parallel::testing {

const Launch& TestLaunch();
// A communicator over the whole world: MPI (a dup of MPI_COMM_WORLD) under a launcher, else local.
Communicator& TestWorld();

}  // namespace moetrain::parallel::testing

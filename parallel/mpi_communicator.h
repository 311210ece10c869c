// MpiCommunicator: the Communicator over an MPI communicator, for host memory (C API only).
//
// Blocking calls map to MPI_Allreduce, MPI_Reduce_scatter_block, MPI_Allgather, MPI_Alltoallv,
// MPI_Bcast and MPI_Barrier; non-blocking ones to their MPI-3 twins (MPI_Iallreduce, ...). In-place
// calls use MPI_IN_PLACE. An in-place ReduceScatter leaves the rest of the buffer (the chunks of
// other ranks) unspecified. bf16/f16 move as 16-bit words; their reductions use user-defined MPI
// ops (each pairwise step computed in float and rounded to nearest even).
// Counts and displacements above INT_MAX elements return OutOfRange (the MPI-3 C API takes int).
//
// Ownership: owns the MPI_Comm when created with owned=true (MPI_Comm_free in the destructor,
// skipped once MPI is finalized -- destroy communicators before Launcher::Finalize()).
// Thread-safety: as Communicator; every call must come from the thread that initialised MPI.
#pragma once

#include <mpi.h>

#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace moetrain::parallel {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps `comm` and sets MPI_ERRORS_RETURN on it. REQUIRES: MPI is initialised and comm is a
  // valid intracommunicator (not MPI_COMM_NULL).
  static absl::StatusOr<std::unique_ptr<MpiCommunicator>> Create(MPI_Comm comm, bool owned);
  ~MpiCommunicator() override;

  const char* backend() const override { return "mpi"; }
  MemorySpace memory_space() const override { return MemorySpace::kHost; }
  MPI_Comm comm() const { return comm_; }

 protected:
  absl::Status DoAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                           ReduceOp op) override;
  absl::Status DoReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                               ReduceOp op) override;
  absl::Status DoAllGather(const void* send, void* recv, int64_t send_count, DType dtype) override;
  absl::Status DoAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                           absl::Span<const int64_t> send_displs, void* recv,
                           absl::Span<const int64_t> recv_counts,
                           absl::Span<const int64_t> recv_displs, DType dtype) override;
  absl::Status DoBroadcast(void* buffer, int64_t count, DType dtype, int root) override;
  absl::Status DoBarrier() override;
  // MPI_Comm_split(comm(), color, key); the new MpiCommunicator owns its MPI_Comm.
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key) override;
  absl::StatusOr<CommHandle> DoIAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                          ReduceOp op) override;
  absl::StatusOr<CommHandle> DoIReduceScatter(const void* send, void* recv, int64_t recv_count,
                                              DType dtype, ReduceOp op) override;
  absl::StatusOr<CommHandle> DoIAllGather(const void* send, void* recv, int64_t send_count,
                                          DType dtype) override;
  absl::StatusOr<CommHandle> DoIAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                          absl::Span<const int64_t> send_displs, void* recv,
                                          absl::Span<const int64_t> recv_counts,
                                          absl::Span<const int64_t> recv_displs,
                                          DType dtype) override;

 private:
  MpiCommunicator(MPI_Comm comm, bool owned, int rank, int size);
  // The MPI_Op for (dtype, op): builtin for native types, user-defined (created once) for 16-bit.
  absl::StatusOr<MPI_Op> Op(DType dtype, ReduceOp op);
  // Fills `ints` with the four AllToAllV arrays as int (counts, displs, counts, displs).
  absl::Status ToIntLayout(absl::Span<const int64_t> send_counts,
                           absl::Span<const int64_t> send_displs,
                           absl::Span<const int64_t> recv_counts,
                           absl::Span<const int64_t> recv_displs, std::vector<int>& ints) const;

  MPI_Comm comm_;
  bool owned_;
  MPI_Op ops16_[2][3];       // [bf16, f16][sum, max, min]; MPI_OP_NULL until first use
  std::vector<int> layout_;  // scratch for blocking AllToAllV (4 * size ints)
};

}  // namespace moetrain::parallel

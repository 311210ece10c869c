// LocalCommunicator: the Communicator of a group of one, without MPI (copy semantics).
//
// Used for every group of a world of one when the process was not started by a launcher (plain
// `./moetrain train ...`), so single-process users need neither mpirun nor an MPI runtime. Each
// collective over one rank is a copy of the input to the output (nothing when they alias):
// reductions of any ReduceOp are the identity, so every DType is accepted. AllToAllV requires
// send_counts[0] == recv_counts[0] (InvalidArgument otherwise). Non-blocking variants complete
// before returning and hand back an already-complete CommHandle. Split returns a new
// LocalCommunicator. Host memory only.
// Thread-safety: as Communicator (not thread-safe).
#pragma once

#include "parallel/communicator.h"

namespace moetrain::parallel {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator() : Communicator(/*rank=*/0, /*size=*/1) {}

  const char* backend() const override { return "local"; }
  MemorySpace memory_space() const override { return MemorySpace::kHost; }

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
  // A group of one splits into a new LocalCommunicator.
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
};

}  // namespace moetrain::parallel

// NcclCommunicator: the Communicator for DEVICE memory, over NCCL (CUDA builds only; target
// mt_parallel_nccl, built when MOETRAIN_HAVE_CUDA and NCCL are found).
//
// Semantics on top of the Communicator contract:
//   * Every collective is enqueued on the communicator's own CUDA stream (stream()).
//   * REQUIRES: whatever wrote the input buffers on other streams has completed (synchronise that
//     stream, or make stream() wait on an event) before the call.
//   * Blocking calls enqueue and then cudaStreamSynchronize(stream()): on return the output is
//     complete. Non-blocking calls record a CUDA event after the enqueue; CommHandle::Wait()
//     synchronises that event and then checks ncclCommGetAsyncError.
//   * AllToAllV is a ncclGroupStart/End of ncclSend/ncclRecv per peer (zero counts skipped).
//   * Reductions are native in every DType, bf16 and f16 included (NCCL accumulates in the type).
//   * NCCL and CUDA errors become InternalError naming the call, file:line, ncclGetErrorString and
//     ncclGetLastError.
// Ownership: owns the ncclComm_t (ncclCommDestroy), its stream and a 4-byte device scratch for
// Barrier. Not copyable or movable. Thread-safety: as Communicator; the device set by Create must
// be current (cudaSetDevice) on the calling thread.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>

#include "parallel/communicator.h"

namespace moetrain::parallel {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap`'s group (a host-memory communicator: mpi or local, whose members
  // are the ranks of the new communicator): rank 0 creates the ncclUniqueId, bootstrap.Broadcast
  // sends it, and every rank calls cudaSetDevice(device) and ncclCommInitRank. The NCCL rank equals
  // bootstrap.rank(). REQUIRES: 0 <= device < cudaGetDeviceCount() (else InternalError from CUDA).
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(Communicator& bootstrap,
                                                                  int device);
  ~NcclCommunicator() override;

  const char* backend() const override { return "nccl"; }
  MemorySpace memory_space() const override { return MemorySpace::kDevice; }
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  ncclComm_t comm() const { return comm_; }

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
  NcclCommunicator(int rank, int size, int device) : Communicator(rank, size), device_(device) {}
  // Enqueue-only versions shared by the blocking and non-blocking entry points.
  absl::Status EnqueueAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                ReduceOp op);
  absl::Status EnqueueReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                    ReduceOp op);
  absl::Status EnqueueAllGather(const void* send, void* recv, int64_t send_count, DType dtype);
  absl::Status EnqueueAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                absl::Span<const int64_t> send_displs, void* recv,
                                absl::Span<const int64_t> recv_counts,
                                absl::Span<const int64_t> recv_displs, DType dtype);
  absl::Status Synchronize();                 // cudaStreamSynchronize + async error check
  absl::StatusOr<CommHandle> RecordHandle();  // event after the enqueued work

  int device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  float* scratch_ = nullptr;  // device, 1 float, for Barrier
};

}  // namespace moetrain::parallel

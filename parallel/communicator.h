// Communicator: collectives over one group of ranks, on raw buffers described by a DType.
//
// Backends: MpiCommunicator (host memory, any group size), LocalCommunicator (host memory, a group
// of one without MPI: copy semantics) and NcclCommunicator (device memory, CUDA builds only).
// Buffers live in the backend's memory space (memory_space()).
//
// Contract shared by every backend:
//   * Collective: every rank of the group calls the same collectives in the same order with
//     matching counts, dtype, op and root; otherwise the behaviour is undefined (usually a hang or
//     an MPI error). Counts and displacements are in ELEMENTS of `dtype`.
//   * Blocking calls return when this rank's output is complete and its input may be reused.
//   * Non-blocking calls (I*) return a CommHandle; the data buffers belong to the operation until
//     CommHandle::Wait() returns. IAllToAllV copies its count/displacement spans, which may be
//     released as soon as the call returns.
//   * Reductions: ReduceOp::kSum / kMax / kMin on f32, f64, i32, i64, bf16 and f16 (16-bit floats
//   are
//     reduced through float with round-to-nearest-even after each pairwise step). The summation
//     order is the backend's; float sums may differ from a sequential sum by reassociation.
//   * Non-reducing collectives (AllGather, AllToAllV, Broadcast) move bits and accept every DType.
//   * In place: AllReduce with send == recv; AllGather with send == recv + rank*send_count (the
//     rank's own chunk of the output); ReduceScatter with recv == send + rank*recv_count. Any other
//     overlap of input and output, and any overlap in AllToAllV, is InvalidArgument.
//   * Errors are Statuses: InvalidArgument for bad arguments (negative counts, null buffers with a
//     non-zero count, wrong span lengths, root out of range, forbidden overlap), OutOfRange for
//     counts the backend cannot express (MPI: > INT_MAX elements), and the backend's own failures
//     (MPI / NCCL error codes) with the call, file:line and the library's error string. A failed
//     call may leave the output partially written.
//   * Counters: every successful call is counted in counters() (see comm_counters.h for the
//     byte formulas).
//   * Split (MPI_Comm_split semantics) makes a new, independent communicator of a subgroup; it is
//     collective and not a counted collective.
//
// Ownership: a Communicator owns its backend handle (MPI_Comm, ncclComm_t); ProcessGroups owns the
// communicators of a training run. Not copyable, not movable (layers keep references).
// Watchdog: every blocking call, Split and the Wait of a non-blocking call is timed by
// CollectiveWatchdog::Global() under name() (collective_watchdog.h; off unless configured).
// Thread-safety: not thread-safe. Call every method from the thread that initialised MPI
// (MPI_THREAD_FUNNELED); different communicators need no locking between them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "parallel/comm_counters.h"
#include "parallel/comm_handle.h"

namespace moetrain::parallel {

enum class ReduceOp { kSum, kMax, kMin };
const char* ReduceOpName(ReduceOp op);  // "sum", "max", "min"

enum class MemorySpace { kHost, kDevice };

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }  // this rank's position in the group, in [0, size())
  int size() const { return size_; }
  virtual const char* backend() const = 0;  // "mpi", "local", "nccl"
  virtual MemorySpace memory_space() const = 0;
  // The group's name in watchdog messages ("world", "dp", ...); "unnamed" unless set.
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // recv[i] = op over ranks of send[i], i in [0, count). send (count,), recv (count,).
  absl::Status AllReduce(const void* send, void* recv, int64_t count, DType dtype,
                         ReduceOp op = ReduceOp::kSum);
  // send (size()*recv_count,) in size() equal chunks; recv (recv_count,) = op over ranks of chunk
  // rank() of every rank's send.
  absl::Status ReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                             ReduceOp op = ReduceOp::kSum);
  // send (send_count,); recv (size()*send_count,): chunk r is rank r's send.
  absl::Status AllGather(const void* send, void* recv, int64_t send_count, DType dtype);
  // Rank i sends send[send_displs[j] .. + send_counts[j]) to rank j, which stores it at
  // recv[recv_displs[i] .. + recv_counts[i]). Every span has size() entries; counts may be zero and
  // differ per peer; recv_counts[i] on rank j must equal send_counts[j] on rank i.
  absl::Status AllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                         absl::Span<const int64_t> send_displs, void* recv,
                         absl::Span<const int64_t> recv_counts,
                         absl::Span<const int64_t> recv_displs, DType dtype);
  // buffer (count,): root's contents are copied to every rank. REQUIRES 0 <= root < size().
  absl::Status Broadcast(void* buffer, int64_t count, DType dtype, int root);
  absl::Status Barrier();

  // Splits the group like MPI_Comm_split: the ranks passing the same `color` form one new group,
  // ranked by (key, rank()). Collective: every rank of this group calls it. REQUIRES: color >= 0
  // (InvalidArgument otherwise; there is no MPI_UNDEFINED). The result is owned by the caller,
  // independent of this communicator (either may be destroyed first; MPI ones before
  // Launcher::Finalize()), has zeroed counters and the same backend and memory space. Backends
  // that cannot split (nccl) return Unimplemented.
  absl::StatusOr<std::unique_ptr<Communicator>> Split(int color, int key);

  // Non-blocking twins (MPI-3 non-blocking collectives / NCCL on the communicator's stream). Same
  // arguments and results, available after CommHandle::Wait().
  absl::StatusOr<CommHandle> IAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                        ReduceOp op = ReduceOp::kSum);
  absl::StatusOr<CommHandle> IReduceScatter(const void* send, void* recv, int64_t recv_count,
                                            DType dtype, ReduceOp op = ReduceOp::kSum);
  absl::StatusOr<CommHandle> IAllGather(const void* send, void* recv, int64_t send_count,
                                        DType dtype);
  absl::StatusOr<CommHandle> IAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                        absl::Span<const int64_t> send_displs, void* recv,
                                        absl::Span<const int64_t> recv_counts,
                                        absl::Span<const int64_t> recv_displs, DType dtype);

  const CommCounters& counters() const { return counters_; }
  void ResetCounters() { counters_ = CommCounters(); }

 protected:
  // REQUIRES: 0 <= rank < size.
  Communicator(int rank, int size);

  // Backend hooks. Called only with validated arguments (see the contract above); the public
  // methods count successful calls.
  virtual absl::Status DoAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                   ReduceOp op) = 0;
  virtual absl::Status DoReduceScatter(const void* send, void* recv, int64_t recv_count,
                                       DType dtype, ReduceOp op) = 0;
  virtual absl::Status DoAllGather(const void* send, void* recv, int64_t send_count,
                                   DType dtype) = 0;
  virtual absl::Status DoAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                   absl::Span<const int64_t> send_displs, void* recv,
                                   absl::Span<const int64_t> recv_counts,
                                   absl::Span<const int64_t> recv_displs, DType dtype) = 0;
  virtual absl::Status DoBroadcast(void* buffer, int64_t count, DType dtype, int root) = 0;
  virtual absl::Status DoBarrier() = 0;
  // Default: Unimplemented. Called with color >= 0.
  virtual absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key);
  virtual absl::StatusOr<CommHandle> DoIAllReduce(const void* send, void* recv, int64_t count,
                                                  DType dtype, ReduceOp op) = 0;
  virtual absl::StatusOr<CommHandle> DoIReduceScatter(const void* send, void* recv,
                                                      int64_t recv_count, DType dtype,
                                                      ReduceOp op) = 0;
  virtual absl::StatusOr<CommHandle> DoIAllGather(const void* send, void* recv, int64_t send_count,
                                                  DType dtype) = 0;
  virtual absl::StatusOr<CommHandle> DoIAllToAllV(const void* send,
                                                  absl::Span<const int64_t> send_counts,
                                                  absl::Span<const int64_t> send_displs, void* recv,
                                                  absl::Span<const int64_t> recv_counts,
                                                  absl::Span<const int64_t> recv_displs,
                                                  DType dtype) = 0;

 private:
  absl::Status CheckAllReduce(const void* send, const void* recv, int64_t count, DType dtype) const;
  absl::Status CheckReduceScatter(const void* send, const void* recv, int64_t recv_count,
                                  DType dtype) const;
  absl::Status CheckAllGather(const void* send, const void* recv, int64_t send_count,
                              DType dtype) const;
  absl::Status CheckAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                              absl::Span<const int64_t> send_displs, const void* recv,
                              absl::Span<const int64_t> recv_counts,
                              absl::Span<const int64_t> recv_displs, DType dtype) const;
  void Count(CollectiveCounter& counter, int64_t payload_bytes, int64_t bus_bytes);

  // A non-blocking call's handle whose Wait is timed by the watchdog (pending handles only).
  CommHandle Watched(CommHandle handle, const char* collective) const;

  int rank_;
  int size_;
  std::string name_ = "unnamed";
  CommCounters counters_;
};

}  // namespace moetrain::parallel

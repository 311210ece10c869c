// CommHandle: the completion handle of a non-blocking collective (Communicator::IAllReduce, ...).
//
// Usage:
//   ASSIGN_OR_RETURN(CommHandle h, comm.IAllReduce(buf, buf, n, DType::kF32));
//   ... compute that touches neither buffer ...
//   RETURN_IF_ERROR(h.Wait());   // now buf holds the result
//
// Until Wait() returns, the operation owns its buffers: do not read the output or modify the input.
// Wait() is idempotent: later calls return the first call's Status. A default-constructed handle is
// already complete. Destroying (or move-assigning over) a pending handle waits for it first -- the
// buffers must not be released while MPI/NCCL still uses them -- and logs a failure as an ERROR.
// Movable, not copyable. Thread-safety: not thread-safe; call Wait() on the thread that issued the
// operation (MPI_THREAD_FUNNELED).
#pragma once

#include <memory>

#include "absl/status/status.h"

namespace moetrain::parallel {

class CommHandle {
 public:
  // A backend's in-flight operation. Wait() is called exactly once.
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual absl::Status Wait() = 0;
  };

  CommHandle() = default;
  explicit CommHandle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
  CommHandle(CommHandle&& other) noexcept = default;
  CommHandle& operator=(CommHandle&& other) noexcept;
  CommHandle(const CommHandle&) = delete;
  CommHandle& operator=(const CommHandle&) = delete;
  ~CommHandle();

  // Blocks until the operation completes; returns its Status.
  absl::Status Wait();
  bool pending() const { return impl_ != nullptr; }

 private:
  void WaitAndLog();

  std::unique_ptr<Impl> impl_;
  absl::Status status_;
};

}  // namespace moetrain::parallel

#include "parallel/local_communicator.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/status.h"

namespace moetrain::parallel {
namespace {

void Copy(const void* src, void* dst, int64_t count, DType dtype) {
  if (src == dst || count == 0) return;
  std::memmove(dst, src, static_cast<size_t>(count) * DTypeSize(dtype));
}

}  // namespace

absl::Status LocalCommunicator::DoAllReduce(const void* send, void* recv, int64_t count,
                                            DType dtype, ReduceOp) {
  Copy(send, recv, count, dtype);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::DoReduceScatter(const void* send, void* recv, int64_t recv_count,
                                                DType dtype, ReduceOp) {
  Copy(send, recv, recv_count, dtype);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::DoAllGather(const void* send, void* recv, int64_t send_count,
                                            DType dtype) {
  Copy(send, recv, send_count, dtype);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::DoAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                            absl::Span<const int64_t> send_displs, void* recv,
                                            absl::Span<const int64_t> recv_counts,
                                            absl::Span<const int64_t> recv_displs, DType dtype) {
  if (send_counts[0] != recv_counts[0]) {
    return absl::InvalidArgumentError(
        absl::StrFormat("AllToAllV: send_counts[0]=%d != recv_counts[0]=%d in a group of one",
                        send_counts[0], recv_counts[0]));
  }
  const int64_t e = static_cast<int64_t>(DTypeSize(dtype));
  Copy(static_cast<const char*>(send) + send_displs[0] * e,
       static_cast<char*>(recv) + recv_displs[0] * e, send_counts[0], dtype);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::DoBroadcast(void*, int64_t, DType, int) { return absl::OkStatus(); }

absl::Status LocalCommunicator::DoBarrier() { return absl::OkStatus(); }

absl::StatusOr<std::unique_ptr<Communicator>> LocalCommunicator::DoSplit(int, int) {
  return std::unique_ptr<Communicator>(new LocalCommunicator());
}

absl::StatusOr<CommHandle> LocalCommunicator::DoIAllReduce(const void* send, void* recv,
                                                           int64_t count, DType dtype,
                                                           ReduceOp op) {
  RETURN_IF_ERROR(DoAllReduce(send, recv, count, dtype, op));
  return CommHandle();
}

absl::StatusOr<CommHandle> LocalCommunicator::DoIReduceScatter(const void* send, void* recv,
                                                               int64_t recv_count, DType dtype,
                                                               ReduceOp op) {
  RETURN_IF_ERROR(DoReduceScatter(send, recv, recv_count, dtype, op));
  return CommHandle();
}

absl::StatusOr<CommHandle> LocalCommunicator::DoIAllGather(const void* send, void* recv,
                                                           int64_t send_count, DType dtype) {
  RETURN_IF_ERROR(DoAllGather(send, recv, send_count, dtype));
  return CommHandle();
}

absl::StatusOr<CommHandle> LocalCommunicator::DoIAllToAllV(
    const void* send, absl::Span<const int64_t> send_counts, absl::Span<const int64_t> send_displs,
    void* recv, absl::Span<const int64_t> recv_counts, absl::Span<const int64_t> recv_displs,
    DType dtype) {
  RETURN_IF_ERROR(
      DoAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, dtype));
  return CommHandle();
}

}  // namespace moetrain::parallel

#include "parallel/communicator.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "parallel/collective_watchdog.h"

namespace moetrain::parallel {
namespace {

bool Overlap(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + static_cast<uintptr_t>(b_bytes) && pb < pa + static_cast<uintptr_t>(a_bytes);
}

const void* Offset(const void* p, int64_t bytes) { return static_cast<const char*>(p) + bytes; }

absl::Status CheckCount(const char* call, const char* name, int64_t count) {
  if (count < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s=%d must be >= 0", call, name, count));
  }
  return absl::OkStatus();
}

absl::Status CheckBuffer(const char* call, const char* name, const void* p, int64_t bytes) {
  if (p == nullptr && bytes > 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s is null but %d bytes are needed", call, name, bytes));
  }
  return absl::OkStatus();
}

// Checks one side of an AllToAllV and returns its extent in elements (max displ + count).
absl::StatusOr<int64_t> CheckLayout(const char* call, const char* side, int size,
                                    absl::Span<const int64_t> counts,
                                    absl::Span<const int64_t> displs) {
  if (static_cast<int>(counts.size()) != size || static_cast<int>(displs.size()) != size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s_counts has %d and %s_displs %d entries; the group size is %d", call,
                        side, counts.size(), side, displs.size(), size));
  }
  int64_t extent = 0;
  for (int j = 0; j < size; ++j) {
    if (counts[j] < 0 || displs[j] < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s_counts[%d]=%d and %s_displs[%d]=%d must be >= 0", call, side, j,
                          counts[j], side, j, displs[j]));
    }
    if (counts[j] > 0) extent = std::max(extent, displs[j] + counts[j]);
  }
  return extent;
}

void AppendCounter(std::string& out, const char* name, const CollectiveCounter& c) {
  if (c.calls == 0) return;
  if (!out.empty()) out += ", ";
  absl::StrAppendFormat(&out, "%s %d calls %.3f MB (bus %.3f MB)", name, c.calls,
                        c.payload_bytes / 1e6, c.bus_bytes / 1e6);
}

}  // namespace

const char* ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

int64_t CommCounters::TotalBusBytes() const {
  return all_reduce.bus_bytes + reduce_scatter.bus_bytes + all_gather.bus_bytes +
         all_to_all_v.bus_bytes + broadcast.bus_bytes + barrier.bus_bytes;
}

int64_t CommCounters::TotalPayloadBytes() const {
  return all_reduce.payload_bytes + reduce_scatter.payload_bytes + all_gather.payload_bytes +
         all_to_all_v.payload_bytes + broadcast.payload_bytes + barrier.payload_bytes;
}

std::string CommCounters::ToString() const {
  std::string out;
  AppendCounter(out, "all_reduce", all_reduce);
  AppendCounter(out, "reduce_scatter", reduce_scatter);
  AppendCounter(out, "all_gather", all_gather);
  AppendCounter(out, "all_to_all_v", all_to_all_v);
  AppendCounter(out, "broadcast", broadcast);
  AppendCounter(out, "barrier", barrier);
  return out.empty() ? "no collectives" : out;
}

Communicator::Communicator(int rank, int size) : rank_(rank), size_(size) {
  MT_CHECK_MSG(size >= 1 && rank >= 0 && rank < size, "rank ", rank, " size ", size);
}

void Communicator::Count(CollectiveCounter& counter, int64_t payload_bytes, int64_t bus_bytes) {
  counter.calls += 1;
  counter.payload_bytes += payload_bytes;
  counter.bus_bytes += bus_bytes;
}

// ---- argument checks
// ------------------------------------------------------------------------------

absl::Status Communicator::CheckAllReduce(const void* send, const void* recv, int64_t count,
                                          DType dtype) const {
  RETURN_IF_ERROR(CheckCount("AllReduce", "count", count));
  const int64_t bytes = count * static_cast<int64_t>(DTypeSize(dtype));
  RETURN_IF_ERROR(CheckBuffer("AllReduce", "send", send, bytes));
  RETURN_IF_ERROR(CheckBuffer("AllReduce", "recv", recv, bytes));
  if (send != recv && Overlap(send, bytes, recv, bytes)) {
    return absl::InvalidArgumentError("AllReduce: send and recv overlap without being equal");
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckReduceScatter(const void* send, const void* recv,
                                              int64_t recv_count, DType dtype) const {
  RETURN_IF_ERROR(CheckCount("ReduceScatter", "recv_count", recv_count));
  const int64_t chunk = recv_count * static_cast<int64_t>(DTypeSize(dtype));
  RETURN_IF_ERROR(CheckBuffer("ReduceScatter", "send", send, chunk * size_));
  RETURN_IF_ERROR(CheckBuffer("ReduceScatter", "recv", recv, chunk));
  if (recv != Offset(send, chunk * rank_) && Overlap(send, chunk * size_, recv, chunk)) {
    return absl::InvalidArgumentError(
        "ReduceScatter: recv overlaps send; in place requires recv == send + rank*recv_count");
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckAllGather(const void* send, const void* recv, int64_t send_count,
                                          DType dtype) const {
  RETURN_IF_ERROR(CheckCount("AllGather", "send_count", send_count));
  const int64_t chunk = send_count * static_cast<int64_t>(DTypeSize(dtype));
  RETURN_IF_ERROR(CheckBuffer("AllGather", "send", send, chunk));
  RETURN_IF_ERROR(CheckBuffer("AllGather", "recv", recv, chunk * size_));
  if (send != Offset(recv, chunk * rank_) && Overlap(send, chunk, recv, chunk * size_)) {
    return absl::InvalidArgumentError(
        "AllGather: send overlaps recv; in place requires send == recv + rank*send_count");
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                          absl::Span<const int64_t> send_displs, const void* recv,
                                          absl::Span<const int64_t> recv_counts,
                                          absl::Span<const int64_t> recv_displs,
                                          DType dtype) const {
  ASSIGN_OR_RETURN(int64_t send_extent,
                   CheckLayout("AllToAllV", "send", size_, send_counts, send_displs));
  ASSIGN_OR_RETURN(int64_t recv_extent,
                   CheckLayout("AllToAllV", "recv", size_, recv_counts, recv_displs));
  const int64_t e = static_cast<int64_t>(DTypeSize(dtype));
  RETURN_IF_ERROR(CheckBuffer("AllToAllV", "send", send, send_extent * e));
  RETURN_IF_ERROR(CheckBuffer("AllToAllV", "recv", recv, recv_extent * e));
  if (Overlap(send, send_extent * e, recv, recv_extent * e)) {
    return absl::InvalidArgumentError(
        "AllToAllV: send and recv overlap (in place is not supported)");
  }
  return absl::OkStatus();
}

// ---- blocking
// -------------------------------------------------------------------------------------

absl::Status Communicator::AllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                     ReduceOp op) {
  RETURN_IF_ERROR(CheckAllReduce(send, recv, count, dtype));
  {
    auto watch = CollectiveWatchdog::Global().Begin("AllReduce", name_);
    RETURN_IF_ERROR(DoAllReduce(send, recv, count, dtype, op));
  }
  const int64_t s = count * static_cast<int64_t>(DTypeSize(dtype));
  Count(counters_.all_reduce, s, 2 * (size_ - 1) * s / size_);
  return absl::OkStatus();
}

absl::Status Communicator::ReduceScatter(const void* send, void* recv, int64_t recv_count,
                                         DType dtype, ReduceOp op) {
  RETURN_IF_ERROR(CheckReduceScatter(send, recv, recv_count, dtype));
  {
    auto watch = CollectiveWatchdog::Global().Begin("ReduceScatter", name_);
    RETURN_IF_ERROR(DoReduceScatter(send, recv, recv_count, dtype, op));
  }
  const int64_t chunk = recv_count * static_cast<int64_t>(DTypeSize(dtype));
  Count(counters_.reduce_scatter, chunk * size_, chunk * (size_ - 1));
  return absl::OkStatus();
}

absl::Status Communicator::AllGather(const void* send, void* recv, int64_t send_count,
                                     DType dtype) {
  RETURN_IF_ERROR(CheckAllGather(send, recv, send_count, dtype));
  {
    auto watch = CollectiveWatchdog::Global().Begin("AllGather", name_);
    RETURN_IF_ERROR(DoAllGather(send, recv, send_count, dtype));
  }
  const int64_t chunk = send_count * static_cast<int64_t>(DTypeSize(dtype));
  Count(counters_.all_gather, chunk * size_, chunk * (size_ - 1));
  return absl::OkStatus();
}

namespace {
void AllToAllBytes(absl::Span<const int64_t> send_counts, int rank, int64_t e, int64_t* payload,
                   int64_t* bus) {
  *payload = 0;
  *bus = 0;
  for (int j = 0; j < static_cast<int>(send_counts.size()); ++j) {
    *payload += send_counts[j] * e;
    if (j != rank) *bus += send_counts[j] * e;
  }
}
}  // namespace

absl::Status Communicator::AllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                     absl::Span<const int64_t> send_displs, void* recv,
                                     absl::Span<const int64_t> recv_counts,
                                     absl::Span<const int64_t> recv_displs, DType dtype) {
  RETURN_IF_ERROR(
      CheckAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, dtype));
  {
    auto watch = CollectiveWatchdog::Global().Begin("AllToAllV", name_);
    RETURN_IF_ERROR(
        DoAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, dtype));
  }
  int64_t payload, bus;
  AllToAllBytes(send_counts, rank_, static_cast<int64_t>(DTypeSize(dtype)), &payload, &bus);
  Count(counters_.all_to_all_v, payload, bus);
  return absl::OkStatus();
}

absl::Status Communicator::Broadcast(void* buffer, int64_t count, DType dtype, int root) {
  RETURN_IF_ERROR(CheckCount("Broadcast", "count", count));
  const int64_t s = count * static_cast<int64_t>(DTypeSize(dtype));
  RETURN_IF_ERROR(CheckBuffer("Broadcast", "buffer", buffer, s));
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Broadcast: root=%d outside the group of size %d", root, size_));
  }
  {
    auto watch = CollectiveWatchdog::Global().Begin("Broadcast", name_);
    RETURN_IF_ERROR(DoBroadcast(buffer, count, dtype, root));
  }
  Count(counters_.broadcast, s, size_ > 1 ? s : 0);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(int color, int key) {
  if (color < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Split: color=%d must be >= 0 (every rank joins a subgroup)", color));
  }
  auto watch = CollectiveWatchdog::Global().Begin("Split", name_);
  return DoSplit(color, key);
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::DoSplit(int, int) {
  return absl::UnimplementedError(
      absl::StrFormat("Split: the %s backend cannot split a communicator", backend()));
}

absl::Status Communicator::Barrier() {
  {
    auto watch = CollectiveWatchdog::Global().Begin("Barrier", name_);
    RETURN_IF_ERROR(DoBarrier());
  }
  Count(counters_.barrier, 0, 0);
  return absl::OkStatus();
}

// ---- non-blocking
// ---------------------------------------------------------------------------------

namespace {
// Times the Wait of an in-flight operation (issuing it does not block).
class WatchedWait : public CommHandle::Impl {
 public:
  WatchedWait(CommHandle inner, const char* collective, std::string group)
      : inner_(std::move(inner)), collective_(collective), group_(std::move(group)) {}
  absl::Status Wait() override {
    auto watch = CollectiveWatchdog::Global().Begin(collective_, group_);
    return inner_.Wait();
  }

 private:
  CommHandle inner_;
  const char* collective_;
  std::string group_;
};
}  // namespace

CommHandle Communicator::Watched(CommHandle handle, const char* collective) const {
  if (!handle.pending()) return handle;
  return CommHandle(std::make_unique<WatchedWait>(std::move(handle), collective, name_));
}

absl::StatusOr<CommHandle> Communicator::IAllReduce(const void* send, void* recv, int64_t count,
                                                    DType dtype, ReduceOp op) {
  RETURN_IF_ERROR(CheckAllReduce(send, recv, count, dtype));
  ASSIGN_OR_RETURN(CommHandle handle, DoIAllReduce(send, recv, count, dtype, op));
  const int64_t s = count * static_cast<int64_t>(DTypeSize(dtype));
  Count(counters_.all_reduce, s, 2 * (size_ - 1) * s / size_);
  return Watched(std::move(handle), "IAllReduce");
}

absl::StatusOr<CommHandle> Communicator::IReduceScatter(const void* send, void* recv,
                                                        int64_t recv_count, DType dtype,
                                                        ReduceOp op) {
  RETURN_IF_ERROR(CheckReduceScatter(send, recv, recv_count, dtype));
  ASSIGN_OR_RETURN(CommHandle handle, DoIReduceScatter(send, recv, recv_count, dtype, op));
  const int64_t chunk = recv_count * static_cast<int64_t>(DTypeSize(dtype));
  Count(counters_.reduce_scatter, chunk * size_, chunk * (size_ - 1));
  return Watched(std::move(handle), "IReduceScatter");
}

absl::StatusOr<CommHandle> Communicator::IAllGather(const void* send, void* recv,
                                                    int64_t send_count, DType dtype) {
  RETURN_IF_ERROR(CheckAllGather(send, recv, send_count, dtype));
  ASSIGN_OR_RETURN(CommHandle handle, DoIAllGather(send, recv, send_count, dtype));
  const int64_t chunk = send_count * static_cast<int64_t>(DTypeSize(dtype));
  Count(counters_.all_gather, chunk * size_, chunk * (size_ - 1));
  return Watched(std::move(handle), "IAllGather");
}

absl::StatusOr<CommHandle> Communicator::IAllToAllV(
    const void* send, absl::Span<const int64_t> send_counts, absl::Span<const int64_t> send_displs,
    void* recv, absl::Span<const int64_t> recv_counts, absl::Span<const int64_t> recv_displs,
    DType dtype) {
  RETURN_IF_ERROR(
      CheckAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, dtype));
  ASSIGN_OR_RETURN(CommHandle handle, DoIAllToAllV(send, send_counts, send_displs, recv,
                                                   recv_counts, recv_displs, dtype));
  int64_t payload, bus;
  AllToAllBytes(send_counts, rank_, static_cast<int64_t>(DTypeSize(dtype)), &payload, &bus);
  Count(counters_.all_to_all_v, payload, bus);
  return Watched(std::move(handle), "IAllToAllV");
}

}  // namespace moetrain::parallel

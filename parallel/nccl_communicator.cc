#include "parallel/nccl_communicator.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "kernels/cuda/cuda_check.h"

namespace moetrain::parallel {
namespace {

absl::Status NcclStatus(ncclResult_t r, const char* call, const char* file, int line) {
  if (r == ncclSuccess) return absl::OkStatus();
  const char* last = ncclGetLastError(nullptr);  // the comm argument is unused by NCCL
  return absl::InternalError(absl::StrFormat(
      "%s failed at %s:%d: %s (%s). HINT: NCCL_DEBUG=WARN shows NCCL's view; another rank may have "
      "failed, or the ranks called different collectives",
      call, file, line, ncclGetErrorString(r), last != nullptr ? last : ""));
}

#define NCCL_RETURN_IF_ERROR(call) RETURN_IF_ERROR(NcclStatus((call), #call, __FILE__, __LINE__))

ncclDataType_t NcclType(DType t) {
  switch (t) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kF64:
      return ncclFloat64;
    case DType::kI32:
      return ncclInt32;
    case DType::kI64:
      return ncclInt64;
    case DType::kI8:
      return ncclInt8;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
  }
  MT_CHECK_MSG(false, "unknown DType ", static_cast<int>(t));
  return ncclFloat32;
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

// Completion of enqueued NCCL work: an event recorded on the communicator's stream.
class NcclEvent final : public CommHandle::Impl {
 public:
  NcclEvent(cudaEvent_t event, ncclComm_t comm) : event_(event), comm_(comm) {}
  ~NcclEvent() override { cudaEventDestroy(event_); }
  absl::Status Wait() override {
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(event_));
    ncclResult_t async = ncclSuccess;
    NCCL_RETURN_IF_ERROR(ncclCommGetAsyncError(comm_, &async));
    NCCL_RETURN_IF_ERROR(async);
    return absl::OkStatus();
  }

 private:
  cudaEvent_t event_;
  ncclComm_t comm_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(Communicator& bootstrap,
                                                                           int device) {
  if (bootstrap.memory_space() != MemorySpace::kHost) {
    return absl::InvalidArgumentError("NcclCommunicator::Create: bootstrap must use host memory");
  }
  static_assert(sizeof(ncclUniqueId) % sizeof(int32_t) == 0, "ncclUniqueId size");
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (bootstrap.rank() == 0) NCCL_RETURN_IF_ERROR(ncclGetUniqueId(&id));
  RETURN_IF_ERROR(bootstrap.Broadcast(&id, sizeof(id) / sizeof(int32_t), DType::kI32, /*root=*/0));

  CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  std::unique_ptr<NcclCommunicator> c(
      new NcclCommunicator(bootstrap.rank(), bootstrap.size(), device));
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&c->stream_, cudaStreamNonBlocking));
  CUDA_RETURN_IF_ERROR(cudaMalloc(&c->scratch_, sizeof(float)));
  NCCL_RETURN_IF_ERROR(ncclCommInitRank(&c->comm_, bootstrap.size(), id, bootstrap.rank()));
  return c;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::Status NcclCommunicator::Synchronize() {
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  ncclResult_t async = ncclSuccess;
  NCCL_RETURN_IF_ERROR(ncclCommGetAsyncError(comm_, &async));
  NCCL_RETURN_IF_ERROR(async);
  return absl::OkStatus();
}

absl::StatusOr<CommHandle> NcclCommunicator::RecordHandle() {
  cudaEvent_t event = nullptr;
  CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  absl::Status s =
      cuda::CudaStatus(cudaEventRecord(event, stream_), "cudaEventRecord", __FILE__, __LINE__);
  if (!s.ok()) {
    cudaEventDestroy(event);
    return s;
  }
  return CommHandle(std::make_unique<NcclEvent>(event, comm_));
}

// ---- enqueue
// --------------------------------------------------------------------------------------

absl::Status NcclCommunicator::EnqueueAllReduce(const void* send, void* recv, int64_t count,
                                                DType dtype, ReduceOp op) {
  NCCL_RETURN_IF_ERROR(ncclAllReduce(send, recv, static_cast<size_t>(count), NcclType(dtype),
                                     NcclOp(op), comm_, stream_));
  return absl::OkStatus();
}

absl::Status NcclCommunicator::EnqueueReduceScatter(const void* send, void* recv,
                                                    int64_t recv_count, DType dtype, ReduceOp op) {
  NCCL_RETURN_IF_ERROR(ncclReduceScatter(send, recv, static_cast<size_t>(recv_count),
                                         NcclType(dtype), NcclOp(op), comm_, stream_));
  return absl::OkStatus();
}

absl::Status NcclCommunicator::EnqueueAllGather(const void* send, void* recv, int64_t send_count,
                                                DType dtype) {
  NCCL_RETURN_IF_ERROR(
      ncclAllGather(send, recv, static_cast<size_t>(send_count), NcclType(dtype), comm_, stream_));
  return absl::OkStatus();
}

absl::Status NcclCommunicator::EnqueueAllToAllV(const void* send,
                                                absl::Span<const int64_t> send_counts,
                                                absl::Span<const int64_t> send_displs, void* recv,
                                                absl::Span<const int64_t> recv_counts,
                                                absl::Span<const int64_t> recv_displs,
                                                DType dtype) {
  const size_t e = DTypeSize(dtype);
  const ncclDataType_t t = NcclType(dtype);
  NCCL_RETURN_IF_ERROR(ncclGroupStart());
  absl::Status s;
  for (int peer = 0; peer < size() && s.ok(); ++peer) {
    if (send_counts[peer] > 0) {
      s = NcclStatus(ncclSend(static_cast<const char*>(send) + send_displs[peer] * e,
                              static_cast<size_t>(send_counts[peer]), t, peer, comm_, stream_),
                     "ncclSend", __FILE__, __LINE__);
    }
    if (s.ok() && recv_counts[peer] > 0) {
      s = NcclStatus(ncclRecv(static_cast<char*>(recv) + recv_displs[peer] * e,
                              static_cast<size_t>(recv_counts[peer]), t, peer, comm_, stream_),
                     "ncclRecv", __FILE__, __LINE__);
    }
  }
  const absl::Status end = NcclStatus(ncclGroupEnd(), "ncclGroupEnd", __FILE__, __LINE__);
  RETURN_IF_ERROR(s);
  return end;
}

// ---- blocking
// -------------------------------------------------------------------------------------

absl::Status NcclCommunicator::DoAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                           ReduceOp op) {
  RETURN_IF_ERROR(EnqueueAllReduce(send, recv, count, dtype, op));
  return Synchronize();
}

absl::Status NcclCommunicator::DoReduceScatter(const void* send, void* recv, int64_t recv_count,
                                               DType dtype, ReduceOp op) {
  RETURN_IF_ERROR(EnqueueReduceScatter(send, recv, recv_count, dtype, op));
  return Synchronize();
}

absl::Status NcclCommunicator::DoAllGather(const void* send, void* recv, int64_t send_count,
                                           DType dtype) {
  RETURN_IF_ERROR(EnqueueAllGather(send, recv, send_count, dtype));
  return Synchronize();
}

absl::Status NcclCommunicator::DoAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                           absl::Span<const int64_t> send_displs, void* recv,
                                           absl::Span<const int64_t> recv_counts,
                                           absl::Span<const int64_t> recv_displs, DType dtype) {
  RETURN_IF_ERROR(
      EnqueueAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, dtype));
  return Synchronize();
}

absl::Status NcclCommunicator::DoBroadcast(void* buffer, int64_t count, DType dtype, int root) {
  NCCL_RETURN_IF_ERROR(ncclBroadcast(buffer, buffer, static_cast<size_t>(count), NcclType(dtype),
                                     root, comm_, stream_));
  return Synchronize();
}

absl::Status NcclCommunicator::DoBarrier() {
  RETURN_IF_ERROR(EnqueueAllReduce(scratch_, scratch_, 1, DType::kF32, ReduceOp::kSum));
  return Synchronize();
}

// ---- non-blocking
// ---------------------------------------------------------------------------------

absl::StatusOr<CommHandle> NcclCommunicator::DoIAllReduce(const void* send, void* recv,
                                                          int64_t count, DType dtype, ReduceOp op) {
  RETURN_IF_ERROR(EnqueueAllReduce(send, recv, count, dtype, op));
  return RecordHandle();
}

absl::StatusOr<CommHandle> NcclCommunicator::DoIReduceScatter(const void* send, void* recv,
                                                              int64_t recv_count, DType dtype,
                                                              ReduceOp op) {
  RETURN_IF_ERROR(EnqueueReduceScatter(send, recv, recv_count, dtype, op));
  return RecordHandle();
}

absl::StatusOr<CommHandle> NcclCommunicator::DoIAllGather(const void* send, void* recv,
                                                          int64_t send_count, DType dtype) {
  RETURN_IF_ERROR(EnqueueAllGather(send, recv, send_count, dtype));
  return RecordHandle();
}

absl::StatusOr<CommHandle> NcclCommunicator::DoIAllToAllV(
    const void* send, absl::Span<const int64_t> send_counts, absl::Span<const int64_t> send_displs,
    void* recv, absl::Span<const int64_t> recv_counts, absl::Span<const int64_t> recv_displs,
    DType dtype) {
  RETURN_IF_ERROR(
      EnqueueAllToAllV(send, send_counts, send_displs, recv, recv_counts, recv_displs, dtype));
  return RecordHandle();
}

}  // namespace moetrain::parallel

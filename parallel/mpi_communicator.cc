#include "parallel/mpi_communicator.h"

#include <climits>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "parallel/mpi_check.h"

namespace moetrain::parallel {
namespace {

MPI_Datatype MpiType(DType t) {
  switch (t) {
    case DType::kF32:
      return MPI_FLOAT;
    case DType::kF64:
      return MPI_DOUBLE;
    case DType::kI32:
      return MPI_INT32_T;
    case DType::kI64:
      return MPI_INT64_T;
    case DType::kI8:
      return MPI_INT8_T;
    case DType::kBF16:
    case DType::kF16:
      return MPI_UINT16_T;
  }
  MT_CHECK_MSG(false, "unknown DType ", static_cast<int>(t));
  return MPI_DATATYPE_NULL;
}

absl::StatusOr<int> ToInt(int64_t v, const char* what) {
  if (v > INT_MAX) {
    return absl::OutOfRangeError(absl::StrFormat(
        "MPI backend: %s=%d exceeds INT_MAX elements. HINT: split the buffer into pieces", what,
        v));
  }
  return static_cast<int>(v);
}

// User-defined reductions for 16-bit floats: inout[i] = op(in[i], inout[i]), through float.
template <bool kBf16, int kOp>
void Reduce16(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = kBf16 ? Bf16ToFloat(a[i]) : F16ToFloat(a[i]);
    const float y = kBf16 ? Bf16ToFloat(b[i]) : F16ToFloat(b[i]);
    const float r = kOp == 0 ? x + y : kOp == 1 ? (x > y ? x : y) : (x < y ? x : y);
    b[i] = kBf16 ? FloatToBf16(r) : FloatToF16(r);
  }
}

MPI_User_function* const kReduce16[2][3] = {
    {&Reduce16<true, 0>, &Reduce16<true, 1>, &Reduce16<true, 2>},
    {&Reduce16<false, 0>, &Reduce16<false, 1>, &Reduce16<false, 2>}};

bool MpiFinalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

// An in-flight MPI request. Owns the int layout arrays of a non-blocking AllToAllV (MPI reads them
// until completion) and, for an in-place ReduceScatter, the move of the result into place.
class MpiRequest final : public CommHandle::Impl {
 public:
  explicit MpiRequest(const char* call) : call_(call) {}
  absl::Status Wait() override {
    RETURN_IF_ERROR(MpiStatus(MPI_Wait(&request, MPI_STATUS_IGNORE), call_, __FILE__, __LINE__));
    if (move_bytes > 0 && move_dst != move_src) std::memmove(move_dst, move_src, move_bytes);
    return absl::OkStatus();
  }

  MPI_Request request = MPI_REQUEST_NULL;
  std::vector<int> layout;
  void* move_dst = nullptr;
  const void* move_src = nullptr;
  size_t move_bytes = 0;

 private:
  const char* call_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(MPI_Comm comm,
                                                                         bool owned) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized || MpiFinalized()) {
    return absl::FailedPreconditionError(
        "MpiCommunicator::Create: MPI is not initialised (or already finalized). HINT: call "
        "parallel::Launcher::Init first; without a launcher use LocalCommunicator");
  }
  if (comm == MPI_COMM_NULL) {
    return absl::InvalidArgumentError("MpiCommunicator::Create: comm is MPI_COMM_NULL");
  }
  MPI_RETURN_IF_ERROR(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  int rank = 0, size = 0;
  MPI_RETURN_IF_ERROR(MPI_Comm_rank(comm, &rank));
  MPI_RETURN_IF_ERROR(MPI_Comm_size(comm, &size));
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(comm, owned, rank, size));
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned, int rank, int size)
    : Communicator(rank, size), comm_(comm), owned_(owned) {
  for (auto& row : ops16_)
    for (MPI_Op& op : row) op = MPI_OP_NULL;
}

MpiCommunicator::~MpiCommunicator() {
  if (MpiFinalized()) return;  // handles died with MPI
  for (auto& row : ops16_)
    for (MPI_Op& op : row)
      if (op != MPI_OP_NULL) MPI_Op_free(&op);
  if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

absl::StatusOr<MPI_Op> MpiCommunicator::Op(DType dtype, ReduceOp op) {
  const int o = op == ReduceOp::kSum ? 0 : op == ReduceOp::kMax ? 1 : 2;
  if (dtype != DType::kBF16 && dtype != DType::kF16) {
    static const MPI_Op kBuiltin[3] = {MPI_SUM, MPI_MAX, MPI_MIN};
    return kBuiltin[o];
  }
  const int t = dtype == DType::kBF16 ? 0 : 1;
  if (ops16_[t][o] == MPI_OP_NULL) {
    MPI_RETURN_IF_ERROR(MPI_Op_create(kReduce16[t][o], /*commute=*/1, &ops16_[t][o]));
  }
  return ops16_[t][o];
}

absl::Status MpiCommunicator::ToIntLayout(absl::Span<const int64_t> send_counts,
                                          absl::Span<const int64_t> send_displs,
                                          absl::Span<const int64_t> recv_counts,
                                          absl::Span<const int64_t> recv_displs,
                                          std::vector<int>& ints) const {
  const int n = size();
  ints.resize(4 * static_cast<size_t>(n));
  const absl::Span<const int64_t> parts[4] = {send_counts, send_displs, recv_counts, recv_displs};
  const char* names[4] = {"send_counts", "send_displs", "recv_counts", "recv_displs"};
  for (int p = 0; p < 4; ++p) {
    for (int j = 0; j < n; ++j) {
      // A displacement is fine up to INT_MAX; so is the end of a chunk (MPI computes it in bytes).
      ASSIGN_OR_RETURN(ints[p * n + j], ToInt(parts[p][j], names[p]));
      if (p == 0 || p == 2)
        RETURN_IF_ERROR(ToInt(parts[p + 1][j] + parts[p][j], names[p]).status());
    }
  }
  return absl::OkStatus();
}

// ---- blocking
// -------------------------------------------------------------------------------------

absl::Status MpiCommunicator::DoAllReduce(const void* send, void* recv, int64_t count, DType dtype,
                                          ReduceOp op) {
  ASSIGN_OR_RETURN(int n, ToInt(count, "count"));
  ASSIGN_OR_RETURN(MPI_Op mpi_op, Op(dtype, op));
  const void* in = send == recv ? MPI_IN_PLACE : send;
  MPI_RETURN_IF_ERROR(MPI_Allreduce(in, recv, n, MpiType(dtype), mpi_op, comm_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::DoReduceScatter(const void* send, void* recv, int64_t recv_count,
                                              DType dtype, ReduceOp op) {
  ASSIGN_OR_RETURN(int n, ToInt(recv_count, "recv_count"));
  RETURN_IF_ERROR(ToInt(recv_count * size(), "size*recv_count").status());
  ASSIGN_OR_RETURN(MPI_Op mpi_op, Op(dtype, op));
  const size_t chunk = static_cast<size_t>(recv_count) * DTypeSize(dtype);
  if (recv == static_cast<const char*>(send) + chunk * rank()) {
    // In place: MPI takes the input from (and leaves the result at the start of) the whole buffer.
    void* buffer = const_cast<void*>(send);
    MPI_RETURN_IF_ERROR(
        MPI_Reduce_scatter_block(MPI_IN_PLACE, buffer, n, MpiType(dtype), mpi_op, comm_));
    if (recv != buffer) std::memmove(recv, buffer, chunk);
    return absl::OkStatus();
  }
  MPI_RETURN_IF_ERROR(MPI_Reduce_scatter_block(send, recv, n, MpiType(dtype), mpi_op, comm_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::DoAllGather(const void* send, void* recv, int64_t send_count,
                                          DType dtype) {
  ASSIGN_OR_RETURN(int n, ToInt(send_count, "send_count"));
  RETURN_IF_ERROR(ToInt(send_count * size(), "size*send_count").status());
  const size_t chunk = static_cast<size_t>(send_count) * DTypeSize(dtype);
  const bool in_place = send == static_cast<const char*>(recv) + chunk * rank();
  const MPI_Datatype t = MpiType(dtype);
  MPI_RETURN_IF_ERROR(MPI_Allgather(in_place ? MPI_IN_PLACE : send, n, t, recv, n, t, comm_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::DoAllToAllV(const void* send, absl::Span<const int64_t> send_counts,
                                          absl::Span<const int64_t> send_displs, void* recv,
                                          absl::Span<const int64_t> recv_counts,
                                          absl::Span<const int64_t> recv_displs, DType dtype) {
  RETURN_IF_ERROR(ToIntLayout(send_counts, send_displs, recv_counts, recv_displs, layout_));
  const int n = size();
  const MPI_Datatype t = MpiType(dtype);
  MPI_RETURN_IF_ERROR(MPI_Alltoallv(send, layout_.data(), layout_.data() + n, t, recv,
                                    layout_.data() + 2 * n, layout_.data() + 3 * n, t, comm_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::DoBroadcast(void* buffer, int64_t count, DType dtype, int root) {
  ASSIGN_OR_RETURN(int n, ToInt(count, "count"));
  MPI_RETURN_IF_ERROR(MPI_Bcast(buffer, n, MpiType(dtype), root, comm_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::DoBarrier() {
  MPI_RETURN_IF_ERROR(MPI_Barrier(comm_));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::DoSplit(int color, int key) {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_RETURN_IF_ERROR(MPI_Comm_split(comm_, color, key, &comm));
  ASSIGN_OR_RETURN(std::unique_ptr<MpiCommunicator> c, Create(comm, /*owned=*/true));
  return std::unique_ptr<Communicator>(std::move(c));
}

// ---- non-blocking
// ---------------------------------------------------------------------------------

absl::StatusOr<CommHandle> MpiCommunicator::DoIAllReduce(const void* send, void* recv,
                                                         int64_t count, DType dtype, ReduceOp op) {
  ASSIGN_OR_RETURN(int n, ToInt(count, "count"));
  ASSIGN_OR_RETURN(MPI_Op mpi_op, Op(dtype, op));
  auto req = std::make_unique<MpiRequest>("MPI_Iallreduce");
  const void* in = send == recv ? MPI_IN_PLACE : send;
  MPI_RETURN_IF_ERROR(MPI_Iallreduce(in, recv, n, MpiType(dtype), mpi_op, comm_, &req->request));
  return CommHandle(std::move(req));
}

absl::StatusOr<CommHandle> MpiCommunicator::DoIReduceScatter(const void* send, void* recv,
                                                             int64_t recv_count, DType dtype,
                                                             ReduceOp op) {
  ASSIGN_OR_RETURN(int n, ToInt(recv_count, "recv_count"));
  RETURN_IF_ERROR(ToInt(recv_count * size(), "size*recv_count").status());
  ASSIGN_OR_RETURN(MPI_Op mpi_op, Op(dtype, op));
  auto req = std::make_unique<MpiRequest>("MPI_Ireduce_scatter_block");
  const size_t chunk = static_cast<size_t>(recv_count) * DTypeSize(dtype);
  if (recv == static_cast<const char*>(send) + chunk * rank()) {
    void* buffer = const_cast<void*>(send);
    MPI_RETURN_IF_ERROR(MPI_Ireduce_scatter_block(MPI_IN_PLACE, buffer, n, MpiType(dtype), mpi_op,
                                                  comm_, &req->request));
    req->move_dst = recv;
    req->move_src = buffer;
    req->move_bytes = chunk;
  } else {
    MPI_RETURN_IF_ERROR(
        MPI_Ireduce_scatter_block(send, recv, n, MpiType(dtype), mpi_op, comm_, &req->request));
  }
  return CommHandle(std::move(req));
}

absl::StatusOr<CommHandle> MpiCommunicator::DoIAllGather(const void* send, void* recv,
                                                         int64_t send_count, DType dtype) {
  ASSIGN_OR_RETURN(int n, ToInt(send_count, "send_count"));
  RETURN_IF_ERROR(ToInt(send_count * size(), "size*send_count").status());
  const size_t chunk = static_cast<size_t>(send_count) * DTypeSize(dtype);
  const bool in_place = send == static_cast<const char*>(recv) + chunk * rank();
  const MPI_Datatype t = MpiType(dtype);
  auto req = std::make_unique<MpiRequest>("MPI_Iallgather");
  MPI_RETURN_IF_ERROR(
      MPI_Iallgather(in_place ? MPI_IN_PLACE : send, n, t, recv, n, t, comm_, &req->request));
  return CommHandle(std::move(req));
}

absl::StatusOr<CommHandle> MpiCommunicator::DoIAllToAllV(
    const void* send, absl::Span<const int64_t> send_counts, absl::Span<const int64_t> send_displs,
    void* recv, absl::Span<const int64_t> recv_counts, absl::Span<const int64_t> recv_displs,
    DType dtype) {
  auto req = std::make_unique<MpiRequest>("MPI_Ialltoallv");
  RETURN_IF_ERROR(ToIntLayout(send_counts, send_displs, recv_counts, recv_displs, req->layout));
  const int n = size();
  const int* l = req->layout.data();
  const MPI_Datatype t = MpiType(dtype);
  MPI_RETURN_IF_ERROR(
      MPI_Ialltoallv(send, l, l + n, t, recv, l + 2 * n, l + 3 * n, t, comm_, &req->request));
  return CommHandle(std::move(req));
}

}  // namespace moetrain::parallel

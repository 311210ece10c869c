#include "parallel/expert_dispatcher.h"

#include <unistd.h>

#include <climits>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/status.h"

namespace moetrain::parallel {
namespace {

using CopyPlan = ExpertDispatcher::CopyPlan;
using Exchange = ExpertDispatcher::Exchange;

constexpr int64_t kAlign = 64;    // offset alignment of the buffers inside the arena (bytes)
constexpr int kHostBytes = 256;   // hostname slot in the node-discovery AllGather
constexpr int32_t kInvalid = -1;  // count marker of a rank whose Prepare arguments were bad

int64_t AlignUp(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

void ResizeExchange(Exchange& x, int n) {
  x.send_counts.assign(n, 0);
  x.send_displs.assign(n, 0);
  x.recv_counts.assign(n, 0);
  x.recv_displs.assign(n, 0);
}

// Every peer sends and receives `per_peer` elements, chunks in peer order.
void UniformExchange(Exchange& x, int n, int64_t per_peer) {
  ResizeExchange(x, n);
  for (int j = 0; j < n; ++j) {
    x.send_counts[j] = x.recv_counts[j] = per_peer;
    x.send_displs[j] = x.recv_displs[j] = j * per_peer;
  }
}

void ClearPlan(CopyPlan& p) {
  p.blocks.clear();
  p.identity = true;
}

// Appends rows [src, src+rows) -> [dst, dst+rows), merging with the previous block when both
// sides continue it. Never allocates: the capacity was reserved at Create.
void AddBlock(CopyPlan& p, int64_t src, int64_t dst, int64_t rows) {
  if (rows == 0) return;
  if (!p.blocks.empty()) {
    ExpertDispatcher::RowBlock& b = p.blocks.back();
    if (b.src + b.rows == src && b.dst + b.rows == dst) {
      b.rows += rows;
      return;
    }
  }
  MT_CHECK_MSG(p.blocks.size() < p.blocks.capacity(), "copy plan capacity ", p.blocks.capacity());
  p.blocks.push_back({src, dst, rows});
}

void FinishPlan(CopyPlan& p) {
  p.identity =
      p.blocks.empty() || (p.blocks.size() == 1 && p.blocks[0].src == 0 && p.blocks[0].dst == 0);
}

// dst[b.dst + i] = src[b.src + i] for every block.
void Apply(const CopyPlan& p, const char* src, char* dst, int64_t row_bytes) {
  for (const ExpertDispatcher::RowBlock& b : p.blocks) {
    std::memcpy(dst + b.dst * row_bytes, src + b.src * row_bytes,
                static_cast<size_t>(b.rows * row_bytes));
  }
}

// The inverse move: dst[b.src + i] = src[b.dst + i].
void ApplyReverse(const CopyPlan& p, const char* src, char* dst, int64_t row_bytes) {
  for (const ExpertDispatcher::RowBlock& b : p.blocks) {
    std::memcpy(dst + b.src * row_bytes, src + b.dst * row_bytes,
                static_cast<size_t>(b.rows * row_bytes));
  }
}

// One message of `bytes` from this rank: to itself, to another rank of its node, or across.
void AddHop(DispatchTraffic& t, int64_t bytes, bool self, bool same_node) {
  if (self) {
    t.self_bytes += bytes;
  } else if (same_node) {
    t.intra_node_bytes += bytes;
    if (bytes > 0) t.intra_node_messages += 1;
  } else {
    t.inter_node_bytes += bytes;
    if (bytes > 0) t.inter_node_messages += 1;
  }
}

bool IsIota(const std::vector<int>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != static_cast<int>(i)) return false;
  return true;
}

void AppendTraffic(std::string& out, const char* name, const DispatchTraffic& t) {
  if (t.calls == 0) return;
  if (!out.empty()) out += ", ";
  absl::StrAppendFormat(&out, "%s %d calls inter %d B (%d msgs) intra %d B (%d msgs) self %d B",
                        name, t.calls, t.inter_node_bytes, t.inter_node_messages,
                        t.intra_node_bytes, t.intra_node_messages, t.self_bytes);
}

}  // namespace

const char* DispatchModeName(DispatchMode mode) {
  switch (mode) {
    case DispatchMode::kFlat:
      return "flat";
    case DispatchMode::kHierarchical:
      return "hierarchical";
  }
  return "?";
}

DispatchTraffic& DispatchTraffic::operator+=(const DispatchTraffic& o) {
  calls += o.calls;
  inter_node_bytes += o.inter_node_bytes;
  intra_node_bytes += o.intra_node_bytes;
  self_bytes += o.self_bytes;
  inter_node_messages += o.inter_node_messages;
  intra_node_messages += o.intra_node_messages;
  return *this;
}

std::string DispatcherCounters::ToString() const {
  std::string out;
  AppendTraffic(out, "prepare", prepare);
  AppendTraffic(out, "dispatch", dispatch);
  AppendTraffic(out, "combine", combine);
  return out.empty() ? "no exchanges" : out;
}

ExpertDispatcher::ExpertDispatcher(ExpertDispatcher&&) noexcept = default;
ExpertDispatcher& ExpertDispatcher::operator=(ExpertDispatcher&&) noexcept = default;
ExpertDispatcher::~ExpertDispatcher() = default;

int64_t ExpertDispatcher::RowBytes() const {
  return options_.hidden * static_cast<int64_t>(DTypeSize(options_.dtype));
}

absl::StatusOr<ExpertDispatcher> ExpertDispatcher::Create(Communicator& ep,
                                                          const ExpertDispatcherOptions& options) {
  ExpertDispatcher d;
  RETURN_IF_ERROR(d.Init(ep, options));
  return d;
}

// ---- Create
// ---------------------------------------------------------------------------------------

absl::Status ExpertDispatcher::Init(Communicator& ep, const ExpertDispatcherOptions& options) {
  ep_ = &ep;
  options_ = options;
  num_ranks_ = ep.size();
  rank_ = ep.rank();
  const int P = num_ranks_;
  const int64_t E = options.num_experts;
  if (ep.memory_space() != MemorySpace::kHost) {  // the same on every rank: no collective yet
    return absl::InvalidArgumentError(absl::StrFormat(
        "ExpertDispatcher: the %s communicator works on device memory; the dispatcher stages rows "
        "in host memory. HINT: use an MPI (or local) EP communicator",
        ep.backend()));
  }
  RETURN_IF_ERROR(CheckSameOptions());
  if (E < 1 || E % P != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ExpertDispatcher: num_experts=%d must be a positive multiple of the EP size %d", E, P));
  }
  if (options.hidden < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ExpertDispatcher: hidden=%d must be >= 1", options.hidden));
  }
  if (options.max_local_rows < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ExpertDispatcher: max_local_rows=%d must be >= 0", options.max_local_rows));
  }
  if (options.ranks_per_node < 0 ||
      (options.ranks_per_node > 0 && P % options.ranks_per_node != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ExpertDispatcher: ranks_per_node=%d must be 0 (from hostnames) or divide the EP size %d",
        options.ranks_per_node, P));
  }
  const int64_t worst_rows = static_cast<int64_t>(P) * options.max_local_rows;
  if (options.max_local_rows > INT32_MAX / P) {
    return absl::OutOfRangeError(
        absl::StrFormat("ExpertDispatcher: P*max_local_rows=%d*%d exceeds the int32 row offsets", P,
                        options.max_local_rows));
  }
  // Four buffers of at most P*max_local_rows rows each must be addressable in bytes.
  if (worst_rows > 0 && RowBytes() > std::numeric_limits<int64_t>::max() / (8 * worst_rows)) {
    return absl::OutOfRangeError(
        absl::StrFormat("ExpertDispatcher: hidden=%d with %d rows overflows the buffer size",
                        options.hidden, worst_rows));
  }
  num_local_ = E / P;
  const int64_t L = num_local_;

  RETURN_IF_ERROR(FindNodes());
  const bool hier = options.mode == DispatchMode::kHierarchical;
  const int G = ranks_per_node_, N = num_nodes_;
  if (hier) {
    if (G < 1) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "ExpertDispatcher: hierarchical mode needs nodes of equal size, but the %d EP ranks "
          "sit unevenly on %d hosts. HINT: use kFlat, or set ranks_per_node",
          P, num_nodes_));
    }
    ASSIGN_OR_RETURN(node_comm_, ep.Split(node_of_[rank_], local_of_[rank_]));
    ASSIGN_OR_RETURN(cross_comm_, ep.Split(local_of_[rank_], node_of_[rank_]));
    if (node_comm_->size() != G || node_comm_->rank() != local_of_[rank_] ||
        cross_comm_->size() != N || cross_comm_->rank() != node_of_[rank_]) {
      return absl::InternalError(absl::StrFormat(
          "ExpertDispatcher: split communicators node %d/%d cross %d/%d, expected %d/%d and %d/%d",
          node_comm_->rank(), node_comm_->size(), cross_comm_->rank(), cross_comm_->size(),
          local_of_[rank_], G, node_of_[rank_], N));
    }
  }

  // Buffer orders: flat sends straight from xs and receives by source rank; hierarchical packs
  // destinations by (local index, node) and receives by (node, local index).
  send_order_.resize(P);
  recv_order_.resize(P);
  for (int i = 0; i < P; ++i) send_order_[i] = recv_order_[i] = i;
  if (hier) {
    for (int j = 0; j < G; ++j)
      for (int m = 0; m < N; ++m) send_order_[j * N + m] = rank_at_[m * G + j];
    recv_order_ = rank_at_;
  }

  // Count exchange: L ints per (source, destination) pair, routed like the rows.
  counts_send_.assign(E, 0);
  counts_mid_recv_.assign(hier ? E : 0, 0);
  counts_mid_send_.assign(hier ? E : 0, 0);
  counts_recv_.assign(E, 0);
  plan_prepare_ = DispatchTraffic();
  plan_prepare_.calls = 1;
  if (hier) {
    UniformExchange(counts_stage1_, G, N * L);
    UniformExchange(counts_stage2_, N, G * L);
    for (int j = 0; j < G; ++j)
      AddHop(plan_prepare_, N * L * 4, j == local_of_[rank_], /*same_node=*/true);
    for (int m = 0; m < N; ++m)
      AddHop(plan_prepare_, G * L * 4, m == node_of_[rank_], /*same_node=*/m == node_of_[rank_]);
  } else {
    UniformExchange(counts_flat_, P, L);
    for (int d = 0; d < P; ++d)
      AddHop(plan_prepare_, L * 4, d == rank_, node_of_[d] == node_of_[rank_]);
  }

  // Plan storage, sized once.
  local_counts_.assign(L, 0);
  local_offsets_.assign(L + 1, 0);
  source_counts_.assign(E, 0);
  scratch_a_.assign(E, 0);
  scratch_b_.assign(E, 0);
  if (hier) {
    ResizeExchange(stage1_, G);
    ResizeExchange(stage2_, N);
  } else {
    ResizeExchange(flat_, P);
  }
  pack_.blocks.reserve(hier ? P : 0);
  regroup_.blocks.reserve(hier ? P : 0);
  unpack_.blocks.reserve(E);

  // Buffers: skip those whose copy is the identity for every routing on this layout.
  const bool need_pack = hier && !IsIota(send_order_);
  const bool need_regroup = hier && G > 1 && N > 1;
  const bool need_unpack = !(L == 1 && IsIota(recv_order_));
  const int64_t rb = RowBytes(), M = options.max_local_rows;
  const int64_t pack_bytes = need_pack ? AlignUp(M * rb) : 0;
  const int64_t mid_recv_bytes = hier ? AlignUp(G * M * rb) : 0;
  const int64_t mid_send_bytes = need_regroup ? AlignUp(G * M * rb) : 0;
  const int64_t recv_bytes = need_unpack ? AlignUp(P * M * rb) : 0;
  buffer_bytes_ = pack_bytes + mid_recv_bytes + mid_send_bytes + recv_bytes;
  if (buffer_bytes_ > 0) {
    arena_.reset(new char[buffer_bytes_]);  // uninitialised: pages are touched on use
    char* p = arena_.get();
    if (pack_bytes > 0) pack_buf_ = p;
    p += pack_bytes;
    if (mid_recv_bytes > 0) mid_recv_buf_ = p;
    p += mid_recv_bytes;
    if (mid_send_bytes > 0) mid_send_buf_ = p;
    p += mid_send_bytes;
    if (recv_bytes > 0) recv_buf_ = p;
  }
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::CheckSameOptions() {
  constexpr int kFields = 6;
  static const char* const kNames[kFields] = {"num_experts", "hidden", "max_local_rows",
                                              "dtype",       "mode",   "ranks_per_node"};
  const int64_t mine[kFields] = {options_.num_experts,
                                 options_.hidden,
                                 options_.max_local_rows,
                                 static_cast<int64_t>(options_.dtype),
                                 static_cast<int64_t>(options_.mode),
                                 options_.ranks_per_node};
  std::vector<int64_t> all(static_cast<size_t>(kFields) * num_ranks_);
  RETURN_IF_ERROR(ep_->AllGather(mine, all.data(), kFields, DType::kI64));
  for (int r = 1; r < num_ranks_; ++r)
    for (int f = 0; f < kFields; ++f)
      if (all[r * kFields + f] != all[f]) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "ExpertDispatcher: EP rank %d passed %s=%d but EP rank 0 passed %d; every rank must "
            "pass the same options",
            r, kNames[f], all[r * kFields + f], all[f]));
      }
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::FindNodes() {
  const int P = num_ranks_;
  node_of_.assign(P, 0);
  local_of_.assign(P, 0);
  rank_at_.assign(P, 0);
  if (options_.ranks_per_node > 0) {
    ranks_per_node_ = options_.ranks_per_node;
    num_nodes_ = P / ranks_per_node_;
    for (int r = 0; r < P; ++r) {
      node_of_[r] = r / ranks_per_node_;
      local_of_[r] = r % ranks_per_node_;
      rank_at_[r] = r;
    }
    return absl::OkStatus();
  }
  // Hostnames: a fixed-size slot per rank, gathered as int64 words (AllGather moves bits).
  static_assert(kHostBytes % 8 == 0, "hostname slot must be whole int64 words");
  std::vector<char> mine(kHostBytes, 0), all(static_cast<size_t>(kHostBytes) * P, 0);
  if (gethostname(mine.data(), kHostBytes - 1) != 0) {
    return absl::InternalError("ExpertDispatcher: gethostname failed");
  }
  mine[kHostBytes - 1] = 0;
  RETURN_IF_ERROR(ep_->AllGather(mine.data(), all.data(), kHostBytes / 8, DType::kI64));
  std::vector<std::string> hosts;
  std::vector<int> sizes;
  for (int r = 0; r < P; ++r) {
    const char* name = all.data() + static_cast<size_t>(r) * kHostBytes;
    const std::string host(name, strnlen(name, kHostBytes));
    int n = 0;
    while (n < static_cast<int>(hosts.size()) && hosts[n] != host) ++n;
    if (n == static_cast<int>(hosts.size())) {
      hosts.push_back(host);
      sizes.push_back(0);
    }
    node_of_[r] = n;
    local_of_[r] = sizes[n]++;
  }
  num_nodes_ = static_cast<int>(hosts.size());
  ranks_per_node_ = sizes[0];
  for (int s : sizes)
    if (s != sizes[0]) ranks_per_node_ = -1;
  if (ranks_per_node_ > 0) {
    for (int r = 0; r < P; ++r) rank_at_[node_of_[r] * ranks_per_node_ + local_of_[r]] = r;
  }
  return absl::OkStatus();
}

std::string ExpertDispatcher::ToString() const {
  const std::string nodes = ranks_per_node_ > 0
                                ? absl::StrFormat("%dx%d", num_nodes_, ranks_per_node_)
                                : absl::StrFormat("%d uneven", num_nodes_);
  return absl::StrFormat("%s P=%d E=%d L=%d C=%d %s nodes=%s buffers %.3f MB",
                         DispatchModeName(options_.mode), num_ranks_, options_.num_experts,
                         num_local_, options_.hidden, DTypeName(options_.dtype), nodes,
                         buffer_bytes_ / 1e6);
}

// ---- Prepare
// --------------------------------------------------------------------------------------

absl::Status ExpertDispatcher::CheckCounts(const int32_t* counts) const {
  if (counts == nullptr) return absl::InvalidArgumentError("Prepare: counts is null");
  int64_t total = 0;
  for (int64_t e = 0; e < options_.num_experts; ++e) {
    if (counts[e] < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("Prepare: counts[%d]=%d must be >= 0", e, counts[e]));
    }
    total += counts[e];
  }
  if (total > options_.max_local_rows) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Prepare: the counts sum to %d rows but the dispatcher was created for max_local_rows=%d",
        total, options_.max_local_rows));
  }
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::ExchangeCounts(const int32_t* counts, bool valid) {
  const int64_t E = options_.num_experts, L = num_local_;
  if (options_.mode == DispatchMode::kFlat) {
    for (int64_t e = 0; e < E; ++e) counts_send_[e] = valid ? counts[e] : kInvalid;
    const Exchange& x = counts_flat_;
    return ep_->AllToAllV(counts_send_.data(), x.send_counts, x.send_displs, counts_recv_.data(),
                          x.recv_counts, x.recv_displs, DType::kI32);
  }
  const int G = ranks_per_node_, N = num_nodes_;
  // Stage 1: to node peer j, the counts for destinations (m, j) of every node m: [j][m][l].
  for (int j = 0; j < G; ++j)
    for (int m = 0; m < N; ++m)
      for (int64_t l = 0; l < L; ++l)
        counts_send_[(j * N + m) * L + l] = valid ? counts[rank_at_[m * G + j] * L + l] : kInvalid;
  const Exchange& x1 = counts_stage1_;
  RETURN_IF_ERROR(node_comm_->AllToAllV(counts_send_.data(), x1.send_counts, x1.send_displs,
                                        counts_mid_recv_.data(), x1.recv_counts, x1.recv_displs,
                                        DType::kI32));
  // counts_mid_recv_ is [j][m][l] (source (n,j) -> destination (m, my j)); stage 2 wants [m][j][l].
  for (int j = 0; j < G; ++j)
    for (int m = 0; m < N; ++m)
      for (int64_t l = 0; l < L; ++l)
        counts_mid_send_[(m * G + j) * L + l] = counts_mid_recv_[(j * N + m) * L + l];
  const Exchange& x2 = counts_stage2_;
  return cross_comm_->AllToAllV(counts_mid_send_.data(), x2.send_counts, x2.send_displs,
                                counts_recv_.data(), x2.recv_counts, x2.recv_displs, DType::kI32);
}

absl::Status ExpertDispatcher::Prepare(const int32_t* counts) {
  if (state_ != State::kIdle) {
    return absl::FailedPreconditionError(
        "Prepare: an exchange is pending. HINT: call DispatchFinish / CombineFinish first");
  }
  prepared_ = false;
  const absl::Status mine = CheckCounts(counts);
  // Even with bad arguments this rank takes part, so that every rank learns of the error.
  RETURN_IF_ERROR(ExchangeCounts(counts, mine.ok()));
  if (!mine.ok()) return mine;
  const int P = num_ranks_;
  const int64_t L = num_local_;
  for (int i = 0; i < P; ++i) {
    const int s = recv_order_[i];
    for (int64_t l = 0; l < L; ++l) {
      const int32_t c = counts_recv_[i * L + l];
      if (c < 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "Prepare: EP rank %d passed invalid counts (see that rank's error)", s));
      }
      source_counts_[s * L + l] = c;
    }
  }
  for (int32_t c : counts_mid_recv_) {
    MT_CHECK_MSG(c >= 0, "an invalid count reached the stage-1 receiver but not the final one");
  }
  if (options_.mode == DispatchMode::kFlat) {
    PlanFlat(counts);
  } else {
    PlanHierarchical(counts);
  }
  prepared_ = true;
  counters_.prepare += plan_prepare_;
  return absl::OkStatus();
}

// local_counts/offsets, the unpack plan (final receive buffer -> local_rows) and R. The receive
// buffer holds, for i = 0..P-1, the rows of source recv_order[i] for local experts 0..L-1.
void ExpertDispatcher::PlanUnpack(absl::Span<const int> recv_order) {
  const int P = num_ranks_;
  const int64_t L = num_local_;
  local_offsets_[0] = 0;
  for (int64_t l = 0; l < L; ++l) {
    int64_t sum = 0;
    for (int s = 0; s < P; ++s) {
      scratch_a_[s * L + l] = local_offsets_[l] + sum;  // where (s, l) starts in local_rows
      sum += source_counts_[s * L + l];
    }
    local_counts_[l] = static_cast<int32_t>(sum);
    local_offsets_[l + 1] = static_cast<int32_t>(local_offsets_[l] + sum);
  }
  num_recv_rows_ = local_offsets_[L];
  MT_CHECK_MSG(num_recv_rows_ <= P * options_.max_local_rows, "receives ", num_recv_rows_,
               " rows, planned for ", P * options_.max_local_rows);
  ClearPlan(unpack_);
  int64_t pos = 0;
  for (int i = 0; i < P; ++i) {
    const int s = recv_order[i];
    for (int64_t l = 0; l < L; ++l) {
      const int64_t c = source_counts_[s * L + l];
      AddBlock(unpack_, pos, scratch_a_[s * L + l], c);
      pos += c;
    }
  }
  FinishPlan(unpack_);
  MT_CHECK_MSG(pos == num_recv_rows_, "unpack covers ", pos, " of ", num_recv_rows_, " rows");
  MT_CHECK_MSG(unpack_.identity || recv_buf_ != nullptr, "unpack needs the receive buffer");
}

void ExpertDispatcher::PlanFlat(const int32_t* counts) {
  const int P = num_ranks_, me = rank_;
  const int64_t L = num_local_, C = options_.hidden;
  Exchange& x = flat_;
  int64_t off = 0;
  for (int d = 0; d < P; ++d) {
    int64_t rows = 0;
    for (int64_t l = 0; l < L; ++l) rows += counts[d * L + l];
    x.send_counts[d] = rows * C;
    x.send_displs[d] = off * C;
    off += rows;
  }
  num_send_rows_ = off;
  int64_t pos = 0;
  for (int s = 0; s < P; ++s) {
    int64_t rows = 0;
    for (int64_t l = 0; l < L; ++l) rows += source_counts_[s * L + l];
    x.recv_counts[s] = rows * C;
    x.recv_displs[s] = pos * C;
    pos += rows;
  }
  PlanUnpack(recv_order_);

  plan_dispatch_ = DispatchTraffic();
  plan_combine_ = DispatchTraffic();
  plan_dispatch_.calls = plan_combine_.calls = 1;
  const int64_t e = static_cast<int64_t>(DTypeSize(options_.dtype));
  for (int d = 0; d < P; ++d) {
    const bool self = d == me, same = node_of_[d] == node_of_[me];
    AddHop(plan_dispatch_, x.send_counts[d] * e, self, same);
    AddHop(plan_combine_, x.recv_counts[d] * e, self, same);
  }
}

void ExpertDispatcher::PlanHierarchical(const int32_t* counts) {
  const int P = num_ranks_, G = ranks_per_node_, N = num_nodes_;
  const int me_node = node_of_[rank_], me_local = local_of_[rank_];
  const int64_t L = num_local_, C = options_.hidden;

  // Where each destination's block starts in xs, and its rows (first P entries of the scratch).
  std::vector<int64_t>& block_start = scratch_a_;
  std::vector<int64_t>& block_rows = scratch_b_;
  int64_t off = 0;
  for (int d = 0; d < P; ++d) {
    int64_t rows = 0;
    for (int64_t l = 0; l < L; ++l) rows += counts[d * L + l];
    block_start[d] = off;
    block_rows[d] = rows;
    off += rows;
  }
  num_send_rows_ = off;

  // Pack xs by (local index j of the destination, node m of the destination) = send_order_.
  ClearPlan(pack_);
  int64_t pos = 0;
  for (int j = 0; j < G; ++j) {
    const int64_t start = pos;
    for (int m = 0; m < N; ++m) {
      const int d = send_order_[j * N + m];
      AddBlock(pack_, block_start[d], pos, block_rows[d]);
      pos += block_rows[d];
    }
    stage1_.send_counts[j] = (pos - start) * C;
    stage1_.send_displs[j] = start * C;
  }
  FinishPlan(pack_);
  MT_CHECK_MSG(pack_.identity || pack_buf_ != nullptr, "pack needs its buffer");

  // Stage-1 receive: [j][m] chunks (source (me_node, j) -> destination (m, me_local)).
  std::vector<int64_t>& mid_pos = scratch_a_;   // reused: block_start is no longer needed
  std::vector<int64_t>& mid_rows = scratch_b_;  // [j * N + m]
  pos = 0;
  for (int j = 0; j < G; ++j) {
    const int64_t start = pos;
    for (int m = 0; m < N; ++m) {
      int64_t rows = 0;
      for (int64_t l = 0; l < L; ++l) rows += counts_mid_recv_[(j * N + m) * L + l];
      mid_pos[j * N + m] = pos;
      mid_rows[j * N + m] = rows;
      pos += rows;
    }
    stage1_.recv_counts[j] = (pos - start) * C;
    stage1_.recv_displs[j] = start * C;
  }
  MT_CHECK_MSG(pos <= G * options_.max_local_rows, "stage 1 receives ", pos, " rows, planned for ",
               G * options_.max_local_rows);
  // Regroup to [m][j]: one contiguous message per destination node.
  ClearPlan(regroup_);
  pos = 0;
  for (int m = 0; m < N; ++m) {
    const int64_t start = pos;
    for (int j = 0; j < G; ++j) {
      AddBlock(regroup_, mid_pos[j * N + m], pos, mid_rows[j * N + m]);
      pos += mid_rows[j * N + m];
    }
    stage2_.send_counts[m] = (pos - start) * C;
    stage2_.send_displs[m] = start * C;
  }
  FinishPlan(regroup_);
  MT_CHECK_MSG(regroup_.identity || mid_send_buf_ != nullptr, "regroup needs its buffer");

  // Stage-2 receive: [n][j][l] (source (n, j)), i.e. recv_order_.
  pos = 0;
  for (int n = 0; n < N; ++n) {
    const int64_t start = pos;
    for (int j = 0; j < G; ++j)
      for (int64_t l = 0; l < L; ++l) pos += counts_recv_[(n * G + j) * L + l];
    stage2_.recv_counts[n] = (pos - start) * C;
    stage2_.recv_displs[n] = start * C;
  }
  PlanUnpack(recv_order_);
  MT_CHECK_MSG(pos == num_recv_rows_, "stage 2 receives ", pos, " rows, unpack ", num_recv_rows_);

  plan_dispatch_ = DispatchTraffic();
  plan_combine_ = DispatchTraffic();
  plan_dispatch_.calls = plan_combine_.calls = 1;
  const int64_t e = static_cast<int64_t>(DTypeSize(options_.dtype));
  for (int j = 0; j < G; ++j) {
    AddHop(plan_dispatch_, stage1_.send_counts[j] * e, j == me_local, true);
    AddHop(plan_combine_, stage1_.recv_counts[j] * e, j == me_local, true);
  }
  for (int m = 0; m < N; ++m) {
    AddHop(plan_dispatch_, stage2_.send_counts[m] * e, m == me_node, m == me_node);
    AddHop(plan_combine_, stage2_.recv_counts[m] * e, m == me_node, m == me_node);
  }
}

// ---- Dispatch / Combine
// ---------------------------------------------------------------------------

absl::Status ExpertDispatcher::CheckStart(const char* call, const void* in, int64_t in_rows,
                                          const void* out, int64_t out_rows) const {
  if (state_ != State::kIdle) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: an exchange is pending. HINT: call DispatchFinish / CombineFinish first", call));
  }
  if (!prepared_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: no plan. HINT: call Prepare(counts) first (and check its Status)", call));
  }
  if (in == nullptr && in_rows > 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: the input is null but holds %d rows", call, in_rows));
  }
  if (out == nullptr && out_rows > 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: the output is null but receives %d rows", call, out_rows));
  }
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::DispatchStart(const void* xs, void* local_rows) {
  RETURN_IF_ERROR(CheckStart("DispatchStart", xs, num_send_rows_, local_rows, num_recv_rows_));
  const DType dt = options_.dtype;
  const int64_t rb = RowBytes();
  const char* in = static_cast<const char*>(xs);
  char* out = static_cast<char*>(local_rows);
  if (options_.mode == DispatchMode::kFlat) {
    char* target = unpack_.identity ? out : recv_buf_;
    const Exchange& x = flat_;
    ASSIGN_OR_RETURN(handle_, ep_->IAllToAllV(in, x.send_counts, x.send_displs, target,
                                              x.recv_counts, x.recv_displs, dt));
  } else {
    const char* src = in;
    if (!pack_.identity) {
      Apply(pack_, in, pack_buf_, rb);
      src = pack_buf_;
    }
    const Exchange& x = stage1_;
    ASSIGN_OR_RETURN(handle_,
                     node_comm_->IAllToAllV(src, x.send_counts, x.send_displs, mid_recv_buf_,
                                            x.recv_counts, x.recv_displs, dt));
  }
  out_ = out;
  state_ = State::kDispatching;
  counters_.dispatch += plan_dispatch_;
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::DispatchFinish() {
  if (state_ != State::kDispatching) {
    return absl::FailedPreconditionError(
        "DispatchFinish: no dispatch is pending. HINT: call DispatchStart first");
  }
  state_ = State::kIdle;
  RETURN_IF_ERROR(handle_.Wait());
  const int64_t rb = RowBytes();
  if (options_.mode == DispatchMode::kHierarchical) {
    const char* src = mid_recv_buf_;
    if (!regroup_.identity) {
      Apply(regroup_, mid_recv_buf_, mid_send_buf_, rb);
      src = mid_send_buf_;
    }
    char* dst = unpack_.identity ? out_ : recv_buf_;
    const Exchange& x = stage2_;
    RETURN_IF_ERROR(cross_comm_->AllToAllV(src, x.send_counts, x.send_displs, dst, x.recv_counts,
                                           x.recv_displs, options_.dtype));
  }
  if (!unpack_.identity) Apply(unpack_, recv_buf_, out_, rb);
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::CombineStart(const void* local_rows, void* ys) {
  RETURN_IF_ERROR(CheckStart("CombineStart", local_rows, num_recv_rows_, ys, num_send_rows_));
  const DType dt = options_.dtype;
  const int64_t rb = RowBytes();
  const char* in = static_cast<const char*>(local_rows);
  char* out = static_cast<char*>(ys);
  const char* src = in;
  if (!unpack_.identity) {
    ApplyReverse(unpack_, in, recv_buf_, rb);
    src = recv_buf_;
  }
  if (options_.mode == DispatchMode::kFlat) {
    const Exchange& x = flat_;  // reversed: receive-side layout sends, send-side layout receives
    ASSIGN_OR_RETURN(handle_, ep_->IAllToAllV(src, x.recv_counts, x.recv_displs, out, x.send_counts,
                                              x.send_displs, dt));
  } else {
    char* dst = regroup_.identity ? mid_recv_buf_ : mid_send_buf_;
    const Exchange& x = stage2_;
    ASSIGN_OR_RETURN(handle_, cross_comm_->IAllToAllV(src, x.recv_counts, x.recv_displs, dst,
                                                      x.send_counts, x.send_displs, dt));
  }
  out_ = out;
  state_ = State::kCombining;
  counters_.combine += plan_combine_;
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::CombineFinish() {
  if (state_ != State::kCombining) {
    return absl::FailedPreconditionError(
        "CombineFinish: no combine is pending. HINT: call CombineStart first");
  }
  state_ = State::kIdle;
  RETURN_IF_ERROR(handle_.Wait());
  if (options_.mode == DispatchMode::kFlat) return absl::OkStatus();
  const int64_t rb = RowBytes();
  if (!regroup_.identity) ApplyReverse(regroup_, mid_send_buf_, mid_recv_buf_, rb);
  char* dst = pack_.identity ? out_ : pack_buf_;
  const Exchange& x = stage1_;
  RETURN_IF_ERROR(node_comm_->AllToAllV(mid_recv_buf_, x.recv_counts, x.recv_displs, dst,
                                        x.send_counts, x.send_displs, options_.dtype));
  if (!pack_.identity) ApplyReverse(pack_, pack_buf_, out_, rb);
  return absl::OkStatus();
}

absl::Status ExpertDispatcher::Dispatch(const void* xs, void* local_rows) {
  RETURN_IF_ERROR(DispatchStart(xs, local_rows));
  return DispatchFinish();
}

absl::Status ExpertDispatcher::Combine(const void* local_rows, void* ys) {
  RETURN_IF_ERROR(CombineStart(local_rows, ys));
  return CombineFinish();
}

}  // namespace moetrain::parallel

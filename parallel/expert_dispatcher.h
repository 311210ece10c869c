// ExpertDispatcher: the expert-parallel token exchange of an MoE layer. Dispatch sends every
// expert-sorted row to the EP rank that owns its expert; Combine sends the expert outputs back.
// Both are split into Start / Finish so the exchange can overlap compute (STYLE.md section 7).
//
// Setting: an EP group of P ranks (a Communicator), E experts, L = E / P local experts per rank;
// expert e lives on EP rank e / L as local expert e % L (contiguous blocks). Every rank has
// permuted its own rows into expert-sorted order (kernels/permute.h):
//
//   xs (M,C)          rows of expert 0, then expert 1, ..., counts (E,) int32, M = sum(counts)
//   local_rows (R,C)  rows of local expert 0 from source rank 0, 1, ..., P-1, then local expert 1
//                     from ranks 0..P-1, ... (grouped by local expert, sources ascending inside),
//                     local_counts() (L,), local_offsets() (L+1,) int32; R = local_offsets()[L]
//
// Inside one (source, expert) chunk the rows keep the source's order, so the layout is fully
// deterministic and identical in both modes. Dropped rows (capacity) simply are not in counts.
//
// Modes (docs/parallel.md has a worked example and the byte formulas):
//   kFlat          one all-to-all-v over the EP group, sent straight from xs.
//   kHierarchical  ranks form nodes of G ranks (node n, local index j). Stage 1, inside the node:
//                  rank (n,j) sends to (n,j') every row bound for local index j' on any node.
//                  Stage 2, among the ranks with the same local index: (n,j') sends to (m,j') one
//                  message with everything node n has for it. A row crosses the node boundary at
//                  most once and each ordered node pair exchanges G messages instead of G*G.
//                  The result is bitwise identical to kFlat.
// Nodes: ranks_per_node > 0 gives node = ep_rank / ranks_per_node (lets tests and benchmarks form
// several "nodes" on one machine); 0 groups ranks by hostname (gethostname, AllGather over the
// group), nodes numbered by first appearance, local index = order among the node's ranks.
// kHierarchical needs every node to hold the same number of ranks.
//
// Usage (one MoE layer):
//   ASSIGN_OR_RETURN(ExpertDispatcher d, ExpertDispatcher::Create(groups.ep(), options));  // once
//   RETURN_IF_ERROR(d.Prepare(counts));                  // once per routing (forward step)
//   RETURN_IF_ERROR(d.DispatchStart(xs, local_rows));    // ... overlap (shared expert) ...
//   RETURN_IF_ERROR(d.DispatchFinish());                 // local_rows ready; experts use
//                                                        // d.local_offsets()
//   RETURN_IF_ERROR(d.Combine(expert_out, ys));          // ys (M,C) in xs's row order
//
// Gradients: Dispatch is a permutation of rows across the group (each output row is exactly one
// input row) and Combine is its inverse, i.e. its transpose. Hence, with the same Prepare:
//   d xs         = Combine(d local_rows)      (the gradient of Dispatch)
//   d expert_out = Dispatch(d ys)             (the gradient of Combine)
// and <Dispatch(x), y> = <x, Combine(y)> summed over the group. Like every activation gradient,
// the outputs are overwritten (=), never accumulated.
//
// Memory: Create plans every buffer for the dropless worst case (one rank receives all rows of all
// P ranks: P * max_local_rows) and allocates them once; Prepare, Dispatch and Combine allocate
// nothing (the backend's request object of a non-blocking collective aside). Buffers whose
// reordering is the identity for this layout (e.g. L == 1 in kFlat) are not allocated: the
// exchange then reads or writes the caller's buffer directly. buffer_bytes() reports the total.
//
// Errors: Create and Prepare return InvalidArgument for bad arguments; Prepare validates counts
// (non-negative, sum <= max_local_rows) and still takes part in the count exchange, marking its
// counts invalid, so every rank of the group returns InvalidArgument (naming the offending rank)
// and no rank is left blocked. Start/Finish misuse (wrong state, null buffers with rows) is
// FailedPrecondition / InvalidArgument returned before any communication on this rank; as with
// Communicator, the other ranks are then inside the exchange, so treat it as fatal for the group.
// Backend failures come back as the communicator's Status.
//
// Ownership: borrows the EP communicator (it must outlive the dispatcher); owns the two
// sub-communicators of kHierarchical (destroy the dispatcher before Launcher::Finalize()) and
// all buffers. Buffers passed to a Start belong to the operation until its Finish returns.
// Movable (not while an exchange is pending), not copyable.
// Thread-safety: not thread-safe; call from the thread that initialised MPI. Collective: every
// rank of the EP group calls Create, Prepare, Start and Finish in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "parallel/comm_handle.h"
#include "parallel/communicator.h"

namespace moetrain::parallel {

enum class DispatchMode { kFlat, kHierarchical };
const char* DispatchModeName(DispatchMode mode);  // "flat", "hierarchical"

struct ExpertDispatcherOptions {
  int64_t num_experts = 0;     // E >= 1, REQUIRES E % P == 0
  int64_t hidden = 0;          // C >= 1: elements per row
  int64_t max_local_rows = 0;  // >= 0: most rows one rank sends (N*k for dropless top-k)
  DType dtype = DType::kF32;   // element type of the rows (any DType: rows are moved as bits)
  DispatchMode mode = DispatchMode::kFlat;
  int ranks_per_node = 0;  // >= 0; 0 = nodes from hostnames; else REQUIRES P % ranks_per_node == 0
};

// Bytes and messages THIS rank sends for one kind of exchange, summed over calls. A hop is
// inter-node when sender and receiver are on different nodes, intra-node when they differ but
// share a node; a rank's chunk to itself (a copy inside the collective) is self_bytes. In
// kHierarchical a row that changes node takes two hops (stage 1 intra or self, stage 2 inter).
struct DispatchTraffic {
  int64_t calls = 0;
  int64_t inter_node_bytes = 0;
  int64_t intra_node_bytes = 0;
  int64_t self_bytes = 0;
  int64_t inter_node_messages = 0;  // non-empty messages to a rank on another node
  int64_t intra_node_messages = 0;  // non-empty messages to another rank on this node

  DispatchTraffic& operator+=(const DispatchTraffic& o);
};

struct DispatcherCounters {
  DispatchTraffic prepare;   // the count exchange (int32 counts)
  DispatchTraffic dispatch;  // counted at DispatchStart
  DispatchTraffic combine;   // counted at CombineStart
  // "prepare 1 calls inter 12 B ..., dispatch ..., combine ..." listing kinds with calls.
  std::string ToString() const;
};

class ExpertDispatcher {
 public:
  // Checks that every rank passed the same options (one AllGather; InvalidArgument naming the
  // rank and field otherwise), validates them (InvalidArgument naming the value; OutOfRange when
  // P * max_local_rows exceeds the int32 offsets), finds the nodes (a hostname AllGather when
  // ranks_per_node == 0), splits the node and cross-node communicators (kHierarchical) and
  // allocates the buffers. kHierarchical with nodes of unequal size is FailedPrecondition.
  // Collective over `ep`; every error is returned on every rank. REQUIRES: `ep` is a host-memory
  // backend (mpi, local), else InvalidArgument.
  static absl::StatusOr<ExpertDispatcher> Create(Communicator& ep,
                                                 const ExpertDispatcherOptions& options);

  ExpertDispatcher(ExpertDispatcher&&) noexcept;
  ExpertDispatcher& operator=(ExpertDispatcher&&) noexcept;
  ExpertDispatcher(const ExpertDispatcher&) = delete;
  ExpertDispatcher& operator=(const ExpertDispatcher&) = delete;
  ~ExpertDispatcher();

  // Exchanges the counts and plans the exchange. counts (E,) int32: rows of each expert in this
  // rank's xs. REQUIRES: no exchange pending (FailedPrecondition); counts non-null, every count
  // >= 0 and sum <= max_local_rows (InvalidArgument on every rank, see Errors). Blocking.
  absl::Status Prepare(const int32_t* counts);

  // xs (M,C) -> local_rows (R,C). REQUIRES: prepared, nothing pending; xs non-null when M > 0 and
  // local_rows non-null when R > 0. Both buffers belong to the operation until DispatchFinish.
  // What overlaps: kFlat posts its one IAllToAllV in Start, Finish waits and reorders into
  // local_rows. kHierarchical packs and posts stage 1 in Start; Finish waits, regroups, runs stage
  // 2 (blocking) and reorders. Combine mirrors this (kHierarchical: stage 2 back in Start, stage 1
  // back in Finish).
  absl::Status DispatchStart(const void* xs, void* local_rows);
  absl::Status DispatchFinish();
  // local_rows (R,C) -> ys (M,C) in the row order of xs. Same rules (local_rows non-null when R >
  // 0, ys when M > 0); both belong to the operation until CombineFinish.
  absl::Status CombineStart(const void* local_rows, void* ys);
  absl::Status CombineFinish();
  // Start + Finish.
  absl::Status Dispatch(const void* xs, void* local_rows);
  absl::Status Combine(const void* local_rows, void* ys);

  // ---- the layout (fixed at Create)
  DispatchMode mode() const { return options_.mode; }
  DType dtype() const { return options_.dtype; }
  int ep_size() const { return num_ranks_; }
  int ep_rank() const { return rank_; }
  int64_t num_experts() const { return options_.num_experts; }
  int64_t num_local_experts() const { return num_local_; }
  int64_t hidden() const { return options_.hidden; }
  int num_nodes() const { return num_nodes_; }
  // Ranks per node; -1 when nodes (from hostnames) differ in size.
  int ranks_per_node() const { return ranks_per_node_; }
  // Node and local index of an EP rank. REQUIRES: 0 <= ep_rank < ep_size().
  int node_of(int ep_rank) const { return node_of_[ep_rank]; }
  int local_index_of(int ep_rank) const { return local_of_[ep_rank]; }
  // Bytes of the staging buffers allocated at Create (the index vectors add O(E + P) ints).
  int64_t buffer_bytes() const { return buffer_bytes_; }
  // kHierarchical: the communicators of this rank's node (rank = local index) and of the ranks
  // with its local index (rank = node); null in kFlat.
  const Communicator* node_comm() const { return node_comm_.get(); }
  const Communicator* cross_comm() const { return cross_comm_.get(); }
  // "hierarchical P=4 E=8 L=2 C=16 f32 nodes=2x2 buffers 1.2 MB".
  std::string ToString() const;

  // ---- the plan (valid after a successful Prepare)
  bool prepared() const { return prepared_; }
  int64_t num_send_rows() const { return num_send_rows_; }                    // M
  int64_t num_recv_rows() const { return num_recv_rows_; }                    // R
  absl::Span<const int32_t> local_counts() const { return local_counts_; }    // (L,)
  absl::Span<const int32_t> local_offsets() const { return local_offsets_; }  // (L+1,)
  // (P, L): rows of local expert l this rank receives from source rank s, at [s * L + l].
  absl::Span<const int32_t> source_counts() const { return source_counts_; }
  // What one Dispatch / Combine with the current plan sends from this rank (calls = 1).
  const DispatchTraffic& planned_dispatch() const { return plan_dispatch_; }
  const DispatchTraffic& planned_combine() const { return plan_combine_; }

  const DispatcherCounters& counters() const { return counters_; }
  void ResetCounters() { counters_ = DispatcherCounters(); }

  // Contiguous row moves between two buffers: rows [src, src+rows) -> [dst, dst+rows).
  struct RowBlock {
    int64_t src = 0, dst = 0, rows = 0;
  };
  struct CopyPlan {
    std::vector<RowBlock> blocks;  // capacity reserved at Create
    bool identity = true;          // dst == src row for row: the copy may be skipped
  };
  // Counts and displacements of one all-to-all-v, in elements.
  struct Exchange {
    std::vector<int64_t> send_counts, send_displs, recv_counts, recv_displs;
  };

 private:
  enum class State { kIdle, kDispatching, kCombining };
  ExpertDispatcher() = default;

  absl::Status Init(Communicator& ep, const ExpertDispatcherOptions& options);
  absl::Status CheckSameOptions();
  absl::Status FindNodes();
  absl::Status CheckCounts(const int32_t* counts) const;
  absl::Status ExchangeCounts(const int32_t* counts, bool valid);
  void PlanFlat(const int32_t* counts);
  void PlanHierarchical(const int32_t* counts);
  void PlanUnpack(absl::Span<const int> recv_order);
  absl::Status CheckStart(const char* call, const void* in, int64_t in_rows, const void* out,
                          int64_t out_rows) const;
  int64_t RowBytes() const;

  Communicator* ep_ = nullptr;
  ExpertDispatcherOptions options_;
  int num_ranks_ = 1, rank_ = 0;
  int64_t num_local_ = 1;
  // Nodes: node_of_/local_of_ per EP rank; rank_at_[n * G + j] = EP rank at node n, index j.
  int num_nodes_ = 1, ranks_per_node_ = 1;
  std::vector<int> node_of_, local_of_, rank_at_;
  std::unique_ptr<Communicator> node_comm_, cross_comm_;
  // Order of destinations in the stage-1 send buffer and of sources in the final receive buffer.
  std::vector<int> send_order_, recv_order_;

  // Counts: the exchanged int32 matrices (E ints each) and their uniform exchange layouts.
  std::vector<int32_t> counts_send_, counts_mid_recv_, counts_mid_send_, counts_recv_;
  Exchange counts_flat_, counts_stage1_, counts_stage2_;

  // Plan.
  bool prepared_ = false;
  int64_t num_send_rows_ = 0, num_recv_rows_ = 0;
  std::vector<int32_t> local_counts_, local_offsets_, source_counts_;
  std::vector<int64_t> scratch_a_, scratch_b_;  // (P * L) planning scratch
  Exchange flat_, stage1_, stage2_;             // elements of the data exchanges
  CopyPlan pack_, regroup_, unpack_;            // xs -> stage-1 send, stage-1 recv -> stage-2
                                                // send, final recv -> local_rows
  DispatchTraffic plan_prepare_, plan_dispatch_, plan_combine_;
  DispatcherCounters counters_;

  // Buffers (one arena; null when the matching copy is always the identity).
  std::unique_ptr<char[]> arena_;
  int64_t buffer_bytes_ = 0;
  char* pack_buf_ = nullptr;      // (max_local_rows, C)      stage-1 send
  char* mid_recv_buf_ = nullptr;  // (G * max_local_rows, C)  stage-1 recv
  char* mid_send_buf_ = nullptr;  // (G * max_local_rows, C)  stage-2 send
  char* recv_buf_ = nullptr;      // (P * max_local_rows, C)  final recv (both modes)

  // The pending operation.
  State state_ = State::kIdle;
  CommHandle handle_;
  char* out_ = nullptr;  // the output of the pending operation
};

}  // namespace moetrain::parallel

// The MoE decoder-only transformer (Mixtral semantics, DeepSeekMoE extensions), forward and backward.
//
//   x0 = embed(tokens)                                  (N,C), N = batch * seq
//   for each layer l:  h = x + Attn(RMSNorm(x));  x' = h + FFN(RMSNorm(h))
//                      FFN = SwiGLU MLP (first_k_dense_replace layers) or MoE (+ shared experts)
//   logits = RMSNorm(x_L) W_head^T                      (N,V)  (W_head = embedding when tied)
//   loss = CE (mean over non-ignored targets) + router_aux_loss_coef * aux + router_z_loss_coef * z
// With a distillation target set (SetDistillationTarget), CE is replaced by
//   alpha * tau^2 * KL(softmax(teacher/tau) || softmax(logits/tau)) + (1 - alpha) * CE
// (both means over the non-ignored targets; kernels/distill_loss.h); the router losses stay.
// aux is Hugging Face's load_balancing_loss_func over the router outputs of ALL MoE layers together
// (see kernels/router.h); z is the mean over MoE layers and tokens of logsumexp(router logits)^2.
//
// Memory is planned at Create() from (config, batch, seq): one arena per category (params, grads,
// buffers, activations, workspace, rope); Forward/Backward allocate nothing. Parameters and grads are
// T (float or double — double is the reference for gradient checks).
// options.compute_dtype bf16 / f16 (mixed precision on CPU): every activation and activation
// gradient the GPU path stores in 16 bits is rounded to that dtype where it is written (residual
// stream, normed inputs, q/k/v/att, SwiGLU inputs/outputs, block outputs, logits, and their
// gradients); norm statistics, softmax, router, loss and parameter gradients stay fp32, and all
// arithmetic is fp32. Parameters are used as they are (the caller supplies the compute copy).
// Activation checkpointing (ModelOptions::checkpointing, see docs/memory.md): a checkpointed layer's
// internals live in one slot set shared by all checkpointed layers of its kind (full: MoE / dense
// layer; selective: the attention block only), and Backward recomputes them from the layer input
// x_l just before the layer's backward. Gradients are bitwise those of kNone.
// Not thread-safe: one Forward/Backward at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "model/attention_block.h"
#include "model/config.h"
#include "model/mlp_block.h"
#include "model/model_options.h"
#include "model/moe_block.h"
#include "model/param_groups.h"
#include "model/param_table.h"

namespace moetrain::model {

inline constexpr int32_t kIgnoreIndex = -100;  // HF's ignore index for labels

struct LossBreakdown {
  double total = 0;  // what Backward differentiates (before its scale)
  double ce = 0;
  double aux = 0;    // unweighted
  double z = 0;      // unweighted
  double kl = 0;     // distillation only: mean KL(teacher_tau || student_tau), unweighted
  int64_t num_targets = 0;  // non-ignored targets
};

// How the model is distributed. Without communicators (the default) it is a world of one.
struct ModelParallel {
  // Data-parallel group: the loss, its token count, the router statistics behind the aux loss and
  // the expert loads are summed over it, so every rank computes the loss of the GLOBAL micro-batch
  // and Backward gives this rank's share of its gradient (optim::ZeroOptimizer then sums the shares).
  parallel::Communicator* dp = nullptr;
  // Expert-parallel group (a subgroup of dp): rank r of P holds and computes experts
  // [r*E/P, (r+1)*E/P); tokens travel to their experts through a per-layer ExpertDispatcher.
  parallel::Communicator* ep = nullptr;
  parallel::DispatchMode dispatch = parallel::DispatchMode::kFlat;
  int ranks_per_node = 0;  // for hierarchical dispatch; 0 = from hostnames
  // Tensor-parallel group (Megatron-style, no sequence parallelism): every tp rank sees the same
  // tokens; attention heads, MLP / expert widths and the vocabulary (embedding, lm_head and the
  // cross-entropy) are split over it (see ParamSpec::tp_dim), activations between blocks are
  // replicated. REQUIRES (checked by Create): heads, kv heads, vocab_size, intermediate_size and
  // the expert widths divisible by its size.
  parallel::Communicator* tp = nullptr;
  // ZeRO stage (0-3) and the expert-data-parallel group. The model only lays out its parameters and
  // gradients for it (see model/param_groups.h): stage >= 1 pads every unit to its group's size;
  // stage >= 2 keeps gradients of only two layers at a time (reduce-scattered by the hooks after
  // each layer's backward); stage 3 keeps parameters of only two layers at a time (gathered by the
  // hooks before each layer's forward and backward). The sharding itself is optim::ZeroOptimizer's.
  int zero_stage = 0;
  parallel::Communicator* edp = nullptr;
};

// Called by Forward/Backward around each parameter group (see model/param_groups.h: group l =
// layer l, group L = embedding, final norm and head). ZeRO installs these to gather parameters and
// reduce-scatter gradients. Order in Forward: Before(L) ... [Before(l) layer After(l)] ... After(L);
// in Backward: Before(L) head ... [Before(l) layer After(l)] for l = L-1..0 ... embedding After(L).
class LayerHooks {
 public:
  virtual ~LayerHooks() = default;
  virtual void BeforeForward(int group) = 0;
  virtual void AfterForward(int group) = 0;
  virtual void BeforeBackward(int group) = 0;
  virtual void AfterBackward(int group) = 0;
};

template <typename T>
class Model {
 public:
  // Validates the config and plans memory. num_threads <= 0: use the OpenMP default.
  // Creating a model with an ep group is collective over it.
  static absl::StatusOr<std::unique_ptr<Model>> Create(const ModelConfig& config, int64_t batch,
                                                       int64_t seq, int num_threads = 0,
                                                       const ModelParallel& parallel = {},
                                                       const ModelOptions& options = {});
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  const ParamTable& table() const { return table_; }
  int64_t batch() const { return batch_; }
  int64_t seq() const { return seq_; }

  int tp_size() const { return tp_size_; }
  int tp_rank() const { return tp_rank_; }

  // Views by HF name. Param/Grad: dtype T; buffers (kind kBuffer): f32 and no grad. With tensor
  // parallelism a view is this tp rank's shard (shape spec.LocalShape(tp_size())).
  // With ZeRO-3 a layer's view is valid only while the layer is gathered.
  TensorView Param(const std::string& name) const;
  // False for another expert-parallel rank's experts (the table lists every expert; a rank holds
  // only its own).
  bool Holds(const std::string& name) const { return param_views_.count(name) > 0 || buffers_.Has(name); }
  TensorView Grad(const std::string& name) const;
  bool HasGrad(const std::string& name) const { return grad_views_.count(name) > 0; }

  // Deterministic init from a seed: normal(0, initializer_range) matrices (output projections o_proj,
  // w2, down_proj scaled by 1/sqrt(2 * num_hidden_layers)), ones for norms, zeros for buffers. Each
  // tensor's stream is seeded from (seed, FNV-1a of its name), so init doesn't depend on table order.
  // The FULL tensor is generated and a tp rank keeps its shard: init is layout independent.
  void InitParams(uint64_t seed);
  // The same for one parameter group's trainable tensors only (into its current buffer: with ZeRO-3
  // a layer shares its buffer with others, so the caller takes its shard before the next group).
  void InitGroupParams(int group, uint64_t seed);
  // Zero the router-bias buffers.
  void InitBuffers();

  // The flat parameter layout (one entry per group) and each group's current buffers (params and
  // grads, ParamGroup::numel elements). With ZeRO-3 / ZeRO-2 a layer's buffer is one of two
  // rotating buffers, valid only between its hooks.
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  T* GroupParams(int group) const { return group_params_[group]; }
  T* GroupGrads(int group) const { return group_grads_[group]; }
  int zero_stage() const { return zero_stage_; }
  void SetLayerHooks(LayerHooks* hooks) { hooks_ = hooks; }
  // Per MoE layer, tokens per expert in the last Forward (summed over dp); no copy.
  const std::vector<std::vector<int64_t>>& expert_counts() const { return counts_; }
  void ZeroGrads();

  // tokens, targets: (batch, seq); targets == kIgnoreIndex are skipped. REQUIRES: ids in range.
  // With a dp/ep group this is collective; a failed collective aborts (the ranks are out of step).
  LossBreakdown Forward(const int32_t* tokens, const int32_t* targets);
  // Accumulates (+=) d(scale * total)/d(param) into the grads, from the last Forward.
  // REQUIRES: parameters and router biases unchanged since that Forward (checkpointed layers are
  // recomputed from them). With an ep group and checkpointing this is collective (the recompute
  // re-runs the dispatch all-to-alls; every rank checkpoints the same layers).
  void Backward(double scale = 1.0);

  // Distillation: from now on Forward's loss head is the distillation loss against
  // teacher_logits (batch * seq, vocab_size) — the teacher's logits for the tokens of the NEXT
  // Forward, which must stay valid and unchanged until the Backward after it. nullptr switches back
  // to plain CE. alpha = 0 gives bitwise the plain-CE loss and gradients.
  // Errors: InvalidArgument for alpha outside [0, 1], temperature <= 0, or a vocabulary split over
  // tp (the vocab-parallel KL reductions are not implemented).
  absl::Status SetDistillationTarget(const T* teacher_logits, double alpha, double temperature);
  bool distilling() const { return distill_teacher_ != nullptr; }

  // (N, V) from the last Forward; with tensor parallelism (N, V/tp): this rank's vocabulary slice.
  const T* logits() const { return logits_; }
  // Full logits row (V) of `row` from the last Forward into out. Collective over tp (gathers).
  void GatherLogitsRow(int64_t row, T* out) const;
  // Per MoE layer (in layer order), tokens kept per expert in the last Forward (summed over dp).
  std::vector<std::vector<int64_t>> ExpertCounts() const;
  // Aux-loss-free balancing: b_e += rate * sign(mean_load - load_e) per MoE layer from the last
  // Forward's loads. No-op unless config.balancing == "bias".
  void UpdateRouterBias();

  // Expert-parallel traffic of all MoE layers since creation (empty without an ep group).
  parallel::DispatchTraffic DispatchTrafficTotal() const {
    parallel::DispatchTraffic t;
    for (const auto& d : dispatchers_) {
      t += d->counters().dispatch;
      t += d->counters().combine;
    }
    return t;
  }

  // A planned activation or workspace slot by name, e.g. "x.1", "L0.hn", "L0.attn.q", "logits",
  // "ws.dlogits", "ws.attn.dxn" (see Plan): for tests and memory tools. Aborts on an unknown name.
  TensorView Slot(const std::string& name) const {
    return acts_.Has(name) ? acts_.Get(name) : ws_.Get(name);
  }

  // Staging buffers of the expert dispatchers (planned at Create for the dropless worst case).
  size_t DispatchBufferBytes() const {
    size_t b = 0;
    for (const auto& d : dispatchers_) b += static_cast<size_t>(d->buffer_bytes());
    return b;
  }
  // Planned bytes per arena category.
  std::map<std::string, size_t> MemoryPlan() const;

 private:
  Model() = default;
  absl::Status Plan(int num_threads);
  bool IsLocalExpert(int expert) const {
    return expert >= ep_rank_ * local_experts_ && expert < (ep_rank_ + 1) * local_experts_;
  }
  bool IsCheckpointed(int64_t layer) const {
    return options_.checkpointing != ActivationCheckpointing::kNone &&
           layer % options_.checkpoint_every == 0;
  }
  // Activation slot prefixes of a layer: its own "L{l}." or a shared checkpoint set.
  std::string LayerSlotPrefix(int64_t layer) const;
  std::string AttentionSlotPrefix(int64_t layer) const;
  // Re-runs the forward of checkpointed layer l from x_l into its shared slots (see Backward).
  double LayerForward(int64_t l, double* aux_counts, double* aux_prob_sum);
  void RecomputeLayer(int64_t layer);

  ModelConfig config_;
  ModelOptions options_;
  ParamTable table_;
  int64_t batch_ = 0, seq_ = 0, n_ = 0;
  Arena params_, grads_, buffers_, acts_, ws_;
  struct Layer {
    AttentionBlock<T> attn;
    bool is_moe = false;
    MlpBlock<T> mlp;
    MoeBlock<T> moe;
    T *h = nullptr, *hn = nullptr, *rstd2 = nullptr;
    const T* norm2 = nullptr;
    T* dnorm2 = nullptr;
    float* bias = nullptr;
    // Backward must recompute this layer's slots first: it is checkpointed and another layer's
    // forward overwrote its shared set (false for the last layer of each set, whose values are
    // still there when backward reaches it).
    bool recompute = false;
  };
  std::vector<Layer> layers_;
  std::vector<ParamGroup> groups_;
  std::vector<T*> group_params_, group_grads_;
  std::map<std::string, TensorView> param_views_, grad_views_;
  int zero_stage_ = 0;
  LayerHooks* hooks_ = nullptr;
  std::vector<T*> x_;  // residual stream inputs x_0..x_L
  const T *embed_ = nullptr, *final_norm_ = nullptr, *head_ = nullptr;
  T *dembed_ = nullptr, *dfinal_norm_ = nullptr, *dhead_ = nullptr;
  T *xf_ = nullptr, *rstd_f_ = nullptr, *logits_ = nullptr, *ce_losses_ = nullptr, *ce_lse_ = nullptr;
  int32_t *tokens_ = nullptr, *targets_ = nullptr;
  T *dlogits_ = nullptr, *dcur_ = nullptr, *dnext_ = nullptr, *dffn_ = nullptr, *dh_ = nullptr,
    *ffn_out_ = nullptr;
  std::vector<double> aux_counts_, aux_prob_sum_, aux_coef_;
  // Where a recomputed MoE layer's router statistics go: the loss already counted them.
  std::vector<double> recompute_aux_counts_, recompute_aux_prob_sum_;
  ModelParallel parallel_;
  int ep_rank_ = 0, ep_size_ = 1, dp_size_ = 1, tp_rank_ = 0, tp_size_ = 1;
  parallel::Communicator* tp_ = nullptr;  // nullptr unless tp_size_ > 1
  int64_t v_local_ = 0, v_begin_ = 0;     // this rank's vocabulary slice
  std::vector<double> ce_max_, ce_sums_;  // (N), (2N): vocab-parallel cross-entropy reductions
  int64_t local_experts_ = 0;
  std::vector<std::unique_ptr<parallel::ExpertDispatcher>> dispatchers_;
  std::vector<double> reduce_buf_;              // one AllReduce per Forward
  std::vector<std::vector<int64_t>> counts_;    // per MoE layer, summed over dp
  LossBreakdown last_{};
  double z_sum_ = 0;
  // Distillation target (see SetDistillationTarget) and its per-row outputs (sized once, there).
  const T* distill_teacher_ = nullptr;
  double distill_alpha_ = 0, distill_temperature_ = 1;
  std::vector<T> distill_losses_, distill_kl_;
};

}  // namespace moetrain::model

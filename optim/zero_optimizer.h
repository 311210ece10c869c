// ZeroOptimizer: AdamW on fp32 master weights sharded ZeRO-style over the data-parallel ranks, with
// sparse expert updates. One class for every stage (the model lays out its buffers for the stage,
// see model/param_groups.h; this class owns the shards and does the collectives):
//
//   stage 0  full master, moments and gradients on every rank; gradients all-reduced per unit at the
//            end of the step. (fp32 compute: the master IS the model's parameter buffer.)
//   stage 1  master and moments sharded: each rank updates its chunk of every unit; gradients are
//            reduce-scattered at the end of the step; updated chunks are all-gathered into the model.
//   stage 2  as 1, and gradients are reduce-scattered right after each layer's backward (the model
//            keeps gradients for two layers at a time); the rank accumulates only its chunk.
//   stage 3  as 2, and parameters are sharded too: before a layer's forward (and again for its
//            backward) the compute-precision copy of every rank's chunk is all-gathered into one of
//            two rotating layer buffers; the next layer's gather is started non-blocking while the
//            current one computes (prefetch).
// Dense units are sharded over dp, expert units over edp (the ranks holding the same experts), so
// routed experts are fully sharded too.
//
// Sparse expert updates: an expert that received no tokens on any rank in any micro-batch of a step
// gets no update (parameters, moments and its step count stay bitwise unchanged), and its gradients
// (exactly zero) are not communicated.
//
// Mixed precision: the master is fp32 (T); compute copies are rounded to Options::compute_dtype
// (bf16/f16) when written into the model. Step() takes the loss scale: the norm is computed on the
// scaled gradients, a non-finite norm skips the step (nothing changes) and is reported.
//
// Per-tensor learning-rate multipliers (fine-tuning; docs/finetune.md): tensor t is updated with
// lr * multiplier(t). A multiplier of 0 freezes the tensor: no update, its moments untouched, and its
// gradient left out of the global norm (so clipping depends on the trained tensors only). A unit
// (see model/param_groups.h) whose tensors are all frozen is skipped like an idle expert: no
// gradient collective, no update, its step count unchanged. A partly frozen unit keeps one step
// count for all its tensors (AdamW bias correction follows the unit's trained tensors).
//
// Usage per step: BeginStep(); [model->Forward; model->Backward] x grad_accum; Step(lr, scale).
// Collective over world (all ranks call every method in the same order). Not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "model/model.h"
#include "optim/adamw_config.h"
#include "parallel/comm_handle.h"
#include "parallel/communicator.h"

namespace moetrain::optim {

struct ZeroComms {  // nullptr = a group of one
  parallel::Communicator* world = nullptr;
  parallel::Communicator* dp = nullptr;
  parallel::Communicator* edp = nullptr;
  parallel::Communicator* tp = nullptr;
};

struct ZeroOptions {
  AdamWConfig adam;
  DType compute_dtype = DType::kF32;
  bool sparse_expert_updates = true;
  bool prefetch = true;  // stage 3: start the next layer's gather before computing this one
  // Learning-rate multiplier per tensor (finite, >= 0; 0 = frozen). Empty: 1 for every tensor.
  std::function<double(const model::ParamSpec&)> lr_multiplier;
};

struct ZeroStepStats {
  double grad_norm = 0;      // global L2 norm of the unscaled gradient, before clipping
  double clip_scale = 1;     // factor applied for clipping
  bool skipped = false;      // non-finite gradient: nothing was updated
  int64_t experts_updated = 0, experts_skipped = 0;  // expert units on this rank
};

template <typename T>
class ZeroOptimizer : public model::LayerHooks {
 public:
  // REQUIRES: model created with ModelParallel::zero_stage = stage and the same dp/edp groups.
  // Errors: InvalidArgument for a layout / communicator mismatch, or a negative or non-finite
  // lr_multiplier (naming the tensor).
  static absl::StatusOr<std::unique_ptr<ZeroOptimizer>> Create(model::Model<T>* model,
                                                               const ZeroOptions& options,
                                                               const ZeroComms& comms);
  ~ZeroOptimizer() override;
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  int stage() const { return stage_; }
  // Deterministic init from the seed (model::Model::InitParams' numbers, layout independent):
  // fills the master shards and the model's compute copies. No communication.
  void InitFromSeed(uint64_t seed);
  void BeginStep();
  absl::StatusOr<ZeroStepStats> Step(double lr, double loss_scale = 1.0);
  // After a Step that was skipped (and before the next BeginStep): the smallest model->table()
  // index of a tensor whose gradient, as this rank holds it after synchronisation (its chunk from
  // stage 1 on), has a NaN or Inf element; -1 when this rank holds none. Local, no communication:
  // the caller min-reduces over the world to name the first bad tensor of the whole model.
  int64_t FirstNonFiniteGradientTensor() const;

  // Makes group g's compute copy resident in the model (stage 3: gathers it; otherwise a no-op).
  // Collective over dp/edp. For reading parameters outside the step (sampling, export).
  absl::Status Materialize(int group);

  // Bytes this class plans per category ("master", "optimizer", "grad_shards", "staging").
  std::map<std::string, size_t> MemoryPlan() const { return state_.BytesByCategory(); }

  // The state of this rank's chunk of a unit (for checkpoints): chunk [begin, end) of the unit's
  // padded range, master / m / v pointers at `begin`, and its step count.
  struct UnitState {
    const model::ParamGroup* group;
    const model::ParamUnit* unit;
    int64_t begin, end;
    T *master, *m, *v;
    int64_t* step;
  };
  std::vector<UnitState> Units();
  // After master/moments/steps were overwritten (checkpoint load): rewrites the compute copies.
  void MasterChanged();

  // LayerHooks (called by the model).
  void BeforeForward(int group) override;
  void AfterForward(int group) override;
  void BeforeBackward(int group) override;
  void AfterBackward(int group) override;

 private:
  ZeroOptimizer() = default;
  struct Unit {
    int group, index;              // into model->param_groups()
    parallel::Communicator* comm;  // dp (dense) or edp (experts); nullptr when ways == 1
    int rank = 0;                  // this rank's chunk index
    int64_t shard = 0;             // offset of this rank's chunk in the shard arrays
    int moe_index = -1, expert = -1;
    int64_t step = 0;
    bool active = false;           // expert received tokens in this step (always true for dense)
    bool frozen = false;           // every tensor's lr multiplier is 0
    std::vector<double> lr_mult;   // per tensor of the ParamUnit (same order)
  };
  const model::ParamUnit& U(const Unit& u) const { return model_->param_groups()[u.group].units[u.index]; }
  T* MasterChunk(const Unit& u) const;
  T* GradChunk(const Unit& u) const;  // the summed gradient chunk after synchronisation
  bool ExpertActiveNow(const Unit& u) const;  // tokens in the last Forward
  absl::Status Gather(int group, bool async);  // compute copies of every chunk into the model buffer
  absl::Status WaitGather(int group);
  void EnsureResident(int group, int prefetch_next);
  void WriteComputeCopy(const Unit& u, T* dst) const;  // round this rank's master chunk to dst

  model::Model<T>* model_ = nullptr;
  ZeroOptions options_;
  ZeroComms comms_;
  int stage_ = 0;
  int num_groups_ = 0;
  bool master_is_params_ = false;  // stage 0, fp32: no separate master copy
  bool in_step_ = false;
  Arena state_;
  T *master_ = nullptr, *m_ = nullptr, *v_ = nullptr, *grad_shard_ = nullptr;
  std::vector<Unit> units_;
  std::vector<double> unit_sumsq_;  // per unit, planned at Create (the norm's partials)
  std::vector<std::vector<int>> units_of_group_;
  // Stage 3 residency: which (group, version) each group's buffer holds; gathers in flight.
  int64_t version_ = 1;
  std::vector<int64_t> resident_version_;    // per group: version gathered (0 = none)
  std::vector<int> buffer_holder_;           // per rotating buffer slot: group held (-1 none)
  std::vector<std::vector<parallel::CommHandle>> pending_;  // per group
};

}  // namespace moetrain::optim

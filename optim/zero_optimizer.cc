#include "optim/zero_optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/phase_timer.h"
#include "core/status.h"
#include "kernels/adamw.h"
#include "kernels/cast.h"
#include "kernels/elementwise.h"

namespace moetrain::optim {
namespace {

// The compute copy of a master value: fp32 arithmetic, rounded to nearest even at the store.
template <typename T>
void RoundCopy(const T* src, T* dst, int64_t n, DType compute) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::CastRound(src, dst, n, compute);
  } else {
    if (src != dst) std::memcpy(dst, src, n * sizeof(T));
  }
}

}  // namespace

template <typename T>
absl::StatusOr<std::unique_ptr<ZeroOptimizer<T>>> ZeroOptimizer<T>::Create(
    model::Model<T>* model, const ZeroOptions& options, const ZeroComms& comms) {
  std::unique_ptr<ZeroOptimizer<T>> z(new ZeroOptimizer<T>());
  z->model_ = model;
  z->options_ = options;
  z->comms_ = comms;
  z->stage_ = model->zero_stage();
  if (!std::is_same_v<T, float> && options.compute_dtype != DType::kF32)
    return absl::InvalidArgumentError("zero optimizer: 16-bit compute needs a float model");
  const auto& groups = model->param_groups();
  z->num_groups_ = static_cast<int>(groups.size());
  z->master_is_params_ = z->stage_ == 0 && options.compute_dtype == DType::kF32;
  z->units_of_group_.resize(groups.size());
  int64_t shard_total = 0;
  for (const model::ParamGroup& g : groups) {
    for (size_t i = 0; i < g.units.size(); ++i) {
      const model::ParamUnit& pu = g.units[i];
      Unit u;
      u.group = g.index;
      u.index = static_cast<int>(i);
      u.expert = pu.expert;
      u.moe_index = pu.expert >= 0 ? g.moe_index : -1;
      parallel::Communicator* comm = pu.expert >= 0 ? comms.edp : comms.dp;
      if (pu.ways > 1) {
        if (comm == nullptr || comm->size() != pu.ways)
          return absl::InvalidArgumentError(absl::StrCat(
              "zero optimizer: the model was laid out for ", pu.ways,
              "-way sharding but the communicator has ", comm == nullptr ? 1 : comm->size(),
              " ranks"));
        u.rank = comm->rank();
      }
      // Stage 0 reduces over the whole group without sharding (ways == 1 in the layout).
      u.comm = comm != nullptr && comm->size() > 1 ? comm : nullptr;
      u.shard = shard_total;
      u.frozen = !pu.tensors.empty();
      for (const model::ParamUnit::Tensor& t : pu.tensors) {
        const double mult = options.lr_multiplier ? options.lr_multiplier(*t.spec) : 1.0;
        if (!(mult >= 0) || !std::isfinite(mult))
          return absl::InvalidArgumentError(absl::StrCat(
              "zero optimizer: lr multiplier of ", t.spec->name, " must be finite and >= 0, got ", mult));
        u.lr_mult.push_back(mult);
        if (mult != 0) u.frozen = false;
      }
      u.active = !u.frozen;
      shard_total += pu.chunk();
      z->units_of_group_[g.index].push_back(static_cast<int>(z->units_.size()));
      z->units_.push_back(u);
    }
  }
  std::vector<TensorSpec> specs;
  const DType t = DTypeOf<T>::value;
  if (!z->master_is_params_) specs.push_back({"master", Shape({shard_total}), t, "master"});
  specs.push_back({"m", Shape({shard_total}), t, "optimizer"});
  specs.push_back({"v", Shape({shard_total}), t, "optimizer"});
  if (z->stage_ >= 1) specs.push_back({"grad_shard", Shape({shard_total}), t, "grad_shards"});
  ASSIGN_OR_RETURN(z->state_, Arena::Create(specs));
  if (!z->master_is_params_) z->master_ = z->state_.Get("master").template as<T>();
  z->m_ = z->state_.Get("m").template as<T>();
  z->v_ = z->state_.Get("v").template as<T>();
  if (z->stage_ >= 1) z->grad_shard_ = z->state_.Get("grad_shard").template as<T>();
  z->unit_sumsq_.assign(z->units_.size(), 0.0);
  z->resident_version_.assign(groups.size(), 0);
  z->buffer_holder_.assign(2, -1);
  z->pending_.resize(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) z->pending_[g].reserve(z->units_of_group_[g].size());
  model->SetLayerHooks(z.get());
  return z;
}

template <typename T>
ZeroOptimizer<T>::~ZeroOptimizer() {
  for (auto& handles : pending_)
    for (auto& h : handles)
      if (h.pending()) h.Wait().IgnoreError();
  if (model_ != nullptr) model_->SetLayerHooks(nullptr);
}

template <typename T>
T* ZeroOptimizer<T>::MasterChunk(const Unit& u) const {
  const model::ParamUnit& pu = U(u);
  if (master_is_params_) return model_->GroupParams(u.group) + pu.offset + u.rank * pu.chunk();
  return master_ + u.shard;
}

template <typename T>
T* ZeroOptimizer<T>::GradChunk(const Unit& u) const {
  const model::ParamUnit& pu = U(u);
  if (stage_ == 0) return model_->GroupGrads(u.group) + pu.offset;
  return grad_shard_ + u.shard;
}

template <typename T>
bool ZeroOptimizer<T>::ExpertActiveNow(const Unit& u) const {
  if (u.expert < 0 || !options_.sparse_expert_updates) return true;
  return model_->expert_counts()[u.moe_index][u.expert] > 0;
}

template <typename T>
void ZeroOptimizer<T>::WriteComputeCopy(const Unit& u, T* dst) const {
  RoundCopy(MasterChunk(u), dst, U(u).chunk(), options_.compute_dtype);
}

template <typename T>
void ZeroOptimizer<T>::InitFromSeed(uint64_t seed) {
  model_->InitBuffers();
  for (int g = 0; g < num_groups_; ++g) {
    model_->InitGroupParams(g, seed);  // the full group, in T, into its (possibly shared) buffer
    T* buf = model_->GroupParams(g);
    for (int ui : units_of_group_[g]) {
      const Unit& u = units_[ui];
      const model::ParamUnit& pu = U(u);
      T* chunk = buf + pu.offset + u.rank * pu.chunk();
      if (!master_is_params_) std::memcpy(master_ + u.shard, chunk, pu.chunk() * sizeof(T));
    }
    if (stage_ < 3) RoundCopy(buf, buf, model_->param_groups()[g].numel, options_.compute_dtype);
  }
  std::fill(m_, m_ + state_.Get("m").numel(), T(0));
  std::fill(v_, v_ + state_.Get("v").numel(), T(0));
  for (Unit& u : units_) u.step = 0;
  MasterChanged();
}

template <typename T>
void ZeroOptimizer<T>::MasterChanged() {
  ++version_;
  std::fill(resident_version_.begin(), resident_version_.end(), 0);
  std::fill(buffer_holder_.begin(), buffer_holder_.end(), -1);
  if (stage_ == 3) return;  // gathered lazily before each use
  for (int g = 0; g < num_groups_; ++g) MT_CHECK_OK(Gather(g, /*async=*/false));
}

template <typename T>
absl::Status ZeroOptimizer<T>::Gather(int group, bool async) {
  T* buf = model_->GroupParams(group);
  for (int ui : units_of_group_[group]) {
    const Unit& u = units_[ui];
    const model::ParamUnit& pu = U(u);
    T* own = buf + pu.offset + u.rank * pu.chunk();
    if (!master_is_params_) WriteComputeCopy(u, own);
    if (pu.ways == 1) continue;  // the whole unit is this rank's (stage 0, or a group of one)
    if (async) {
      ASSIGN_OR_RETURN(parallel::CommHandle h,
                       u.comm->IAllGather(own, buf + pu.offset, pu.chunk(), DTypeOf<T>::value));
      pending_[group].push_back(std::move(h));
    } else {
      RETURN_IF_ERROR(u.comm->AllGather(own, buf + pu.offset, pu.chunk(), DTypeOf<T>::value));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ZeroOptimizer<T>::WaitGather(int group) {
  absl::Status status;
  for (auto& h : pending_[group]) status.Update(h.Wait());
  pending_[group].clear();
  return status;
}

template <typename T>
absl::Status ZeroOptimizer<T>::Materialize(int group) {
  if (stage_ < 3) return absl::OkStatus();
  EnsureResident(group, -1);
  return absl::OkStatus();
}

// Stage 3: makes `group` resident (waiting for its prefetch or gathering now), then starts the
// gather of `prefetch_next` (a layer, or -1) into the other rotating buffer.
template <typename T>
void ZeroOptimizer<T>::EnsureResident(int group, int prefetch_next) {
  const int L = num_groups_ - 1;
  auto claim = [&](int g) {  // a layer takes its rotating buffer from whoever held it
    if (g == L) return;
    int& holder = buffer_holder_[g % 2];
    if (holder >= 0 && holder != g) resident_version_[holder] = 0;
    holder = g;
  };
  if (!pending_[group].empty()) {
    MT_CHECK_OK(WaitGather(group));
  } else if (resident_version_[group] != version_) {
    claim(group);
    MT_CHECK_OK(Gather(group, /*async=*/false));
    resident_version_[group] = version_;
  }
  if (prefetch_next >= 0 && prefetch_next < L && options_.prefetch &&
      resident_version_[prefetch_next] != version_ && pending_[prefetch_next].empty()) {
    claim(prefetch_next);
    MT_CHECK_OK(Gather(prefetch_next, /*async=*/true));
    resident_version_[prefetch_next] = version_;
  }
}

template <typename T>
void ZeroOptimizer<T>::BeforeForward(int group) {
  if (stage_ < 3) return;
  const int L = num_groups_ - 1;
  EnsureResident(group, group == L ? 0 : group + 1);
}

template <typename T>
void ZeroOptimizer<T>::AfterForward(int group) {
  const int L = num_groups_ - 1;
  if (group != L || !in_step_ || !options_.sparse_expert_updates) return;
  for (Unit& u : units_)  // which experts saw tokens in this micro-batch (global counts)
    if (u.expert >= 0 && !u.frozen && model_->expert_counts()[u.moe_index][u.expert] > 0) u.active = true;
}

template <typename T>
void ZeroOptimizer<T>::BeforeBackward(int group) {
  const int L = num_groups_ - 1;
  if (stage_ >= 2) {  // rotating / per-micro-batch gradient buffers start from zero
    T* g = model_->GroupGrads(group);
    std::fill(g, g + model_->param_groups()[group].numel, T(0));
  }
  if (stage_ == 3) EnsureResident(group, group == L ? L - 1 : group - 1);
}

template <typename T>
void ZeroOptimizer<T>::AfterBackward(int group) {
  if (stage_ < 2 || !in_step_) return;
  // Reduce-scatter this group's gradients now and keep only this rank's summed chunk.
  PhaseScope ph("zero.reduce_scatter");
  T* buf = model_->GroupGrads(group);
  for (int ui : units_of_group_[group]) {
    const Unit& u = units_[ui];
    if (u.frozen || !ExpertActiveNow(u)) continue;  // frozen, or no tokens anywhere (zero gradient)
    const model::ParamUnit& pu = U(u);
    T* own = buf + pu.offset + u.rank * pu.chunk();
    if (u.comm != nullptr && pu.ways > 1)
      MT_CHECK_OK(u.comm->ReduceScatter(buf + pu.offset, own, pu.chunk(), DTypeOf<T>::value));
    kernels::AddInPlace(grad_shard_ + u.shard, own, pu.chunk());
  }
}

template <typename T>
void ZeroOptimizer<T>::BeginStep() {
  model_->ZeroGrads();
  if (grad_shard_ != nullptr)
    std::fill(grad_shard_, grad_shard_ + state_.Get("grad_shard").numel(), T(0));
  for (Unit& u : units_) u.active = !u.frozen && (u.expert < 0 || !options_.sparse_expert_updates);
  in_step_ = true;
}

template <typename T>
absl::StatusOr<ZeroStepStats> ZeroOptimizer<T>::Step(double lr, double loss_scale) {
  in_step_ = false;
  ZeroStepStats stats;
  PhaseScope ph("zero.sync");
  // 1. Gradient synchronisation (stages 0 and 1; 2 and 3 did it layer by layer).
  if (stage_ <= 1) {
    for (const Unit& u : units_) {
      if (!u.active || u.comm == nullptr) continue;
      const model::ParamUnit& pu = U(u);
      T* full = model_->GroupGrads(u.group) + pu.offset;
      if (stage_ == 0) {
        RETURN_IF_ERROR(u.comm->AllReduce(full, full, pu.padded, DTypeOf<T>::value));
      } else {
        RETURN_IF_ERROR(u.comm->ReduceScatter(full, grad_shard_ + u.shard, pu.chunk(), DTypeOf<T>::value));
      }
    }
    if (stage_ == 1) {  // a group of one: the chunk is the whole unit
      for (const Unit& u : units_) {
        const model::ParamUnit& pu = U(u);
        if (u.active && u.comm == nullptr)
          std::memcpy(grad_shard_ + u.shard, model_->GroupGrads(u.group) + pu.offset, pu.chunk() * sizeof(T));
      }
    }
  }
  // 2. Global norm: every element once. Stage 0 holds dp (edp) replicas of each unit, and tensors
  // not split over tp are replicated over it: their squares are divided by the replica count.
  ph.Next("zero.grad_norm");
  const int tp = comms_.tp != nullptr ? comms_.tp->size() : 1;
  // Each unit's sum of squares is sequential on one thread; the partials are added in unit order:
  // the same bits for any number of threads.
  const int64_t num_units = static_cast<int64_t>(units_.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < num_units; ++i) {
    const Unit& u = units_[i];
    double s = 0;
    if (u.active) {
      const model::ParamUnit& pu = U(u);
      const int64_t begin = u.rank * pu.chunk(), end = begin + pu.chunk();
      const T* g = GradChunk(u);
      const double replicas = stage_ == 0 && u.comm != nullptr ? u.comm->size() : 1;
      for (size_t ti = 0; ti < pu.tensors.size(); ++ti) {
        const model::ParamUnit::Tensor& t = pu.tensors[ti];
        const int64_t a = std::max(begin, t.offset), b = std::min(end, t.offset + t.numel);
        if (a >= b || u.lr_mult[ti] == 0) continue;  // frozen tensors do not count
        const double rep = replicas * (t.spec->IsTpSplit(tp) ? 1 : tp);
        s += kernels::SumSquares(g + (a - begin), b - a) / rep;
      }
    }
    unit_sumsq_[i] = s;
  }
  double sumsq = 0;
  for (double s : unit_sumsq_) sumsq += s;
  if (comms_.world != nullptr && comms_.world->size() > 1)
    RETURN_IF_ERROR(comms_.world->AllReduce(&sumsq, &sumsq, 1, DType::kF64));
  stats.grad_norm = std::sqrt(sumsq) / loss_scale;
  if (!std::isfinite(stats.grad_norm)) {
    stats.skipped = true;
    return stats;
  }
  // 3. AdamW on this rank's chunks.
  ph.Next("zero.adamw");
  const AdamWConfig& c = options_.adam;
  if (c.grad_clip > 0 && stats.grad_norm > c.grad_clip)
    stats.clip_scale = c.grad_clip / (stats.grad_norm + 1e-6);
  const double grad_scale = stats.clip_scale / loss_scale;
  for (Unit& u : units_) {
    if (u.expert >= 0) (u.active ? stats.experts_updated : stats.experts_skipped) += 1;
    if (!u.active) continue;
    ++u.step;
    const model::ParamUnit& pu = U(u);
    const int64_t begin = u.rank * pu.chunk(), end = begin + pu.chunk();
    T* p = MasterChunk(u);
    T* g = GradChunk(u);
    for (size_t ti = 0; ti < pu.tensors.size(); ++ti) {
      const model::ParamUnit::Tensor& t = pu.tensors[ti];
      const int64_t a = std::max(begin, t.offset), b = std::min(end, t.offset + t.numel);
      if (a >= b || u.lr_mult[ti] == 0) continue;  // frozen: parameter and moments untouched
      // A multiplier scales the whole update, weight decay included (p -= lr * mult * (...)).
      kernels::AdamWHyper h{lr * u.lr_mult[ti], c.beta1, c.beta2, c.eps, t.spec->weight_decay ? c.weight_decay : 0.0};
      const int64_t o = a - begin;
      kernels::AdamWStep(p + o, m_ + u.shard + o, v_ + u.shard + o, g + o, b - a, h, u.step, grad_scale);
    }
  }
  // 4. Compute copies back into the model (stage 3: lazily, before each layer's next use).
  ph.Next("zero.gather");
  ++version_;
  if (stage_ < 3) {
    for (int g = 0; g < num_groups_; ++g) {
      T* buf = model_->GroupParams(g);
      for (int ui : units_of_group_[g]) {
        const Unit& u = units_[ui];
        if (!u.active) continue;  // unchanged master: the copy in the model is still right
        const model::ParamUnit& pu = U(u);
        T* own = buf + pu.offset + u.rank * pu.chunk();
        if (!master_is_params_) WriteComputeCopy(u, own);
        if (pu.ways > 1) RETURN_IF_ERROR(u.comm->AllGather(own, buf + pu.offset, pu.chunk(), DTypeOf<T>::value));
      }
    }
  }
  return stats;
}

template <typename T>
std::vector<typename ZeroOptimizer<T>::UnitState> ZeroOptimizer<T>::Units() {
  std::vector<UnitState> out;
  for (Unit& u : units_) {
    const model::ParamUnit& pu = U(u);
    const int64_t begin = u.rank * pu.chunk();
    out.push_back({&model_->param_groups()[u.group], &pu, begin, begin + pu.chunk(), MasterChunk(u),
                   m_ + u.shard, v_ + u.shard, &u.step});
  }
  return out;
}

template <typename T>
int64_t ZeroOptimizer<T>::FirstNonFiniteGradientTensor() const {
  const std::vector<model::ParamSpec>& specs = model_->table().specs();
  int64_t first = -1;
  // The same element ranges as the norm in Step: this rank's chunk of every active unit.
  for (const Unit& u : units_) {
    if (!u.active) continue;
    const model::ParamUnit& pu = U(u);
    const int64_t begin = u.rank * pu.chunk(), end = begin + pu.chunk();
    const T* g = GradChunk(u);
    for (const model::ParamUnit::Tensor& t : pu.tensors) {
      const int64_t index = t.spec - specs.data();
      MT_CHECK_MSG(index >= 0 && index < static_cast<int64_t>(specs.size()),
                   "parameter unit tensor ", t.spec->name, " is not in the model's table");
      if (first >= 0 && index >= first) continue;
      const int64_t a = std::max(begin, t.offset), b = std::min(end, t.offset + t.numel);
      for (int64_t i = a; i < b; ++i) {
        if (!std::isfinite(static_cast<double>(g[i - begin]))) {
          first = index;
          break;
        }
      }
    }
  }
  return first;
}

template class ZeroOptimizer<float>;
template class ZeroOptimizer<double>;

}  // namespace moetrain::optim

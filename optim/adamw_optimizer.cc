#include "optim/adamw_optimizer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/phase_timer.h"
#include "kernels/elementwise.h"

namespace moetrain::optim {

template <typename T>
absl::StatusOr<std::unique_ptr<AdamWOptimizer<T>>> AdamWOptimizer<T>::Create(
    model::Model<T>* model, const AdamWConfig& config, parallel::Communicator* ep,
    parallel::Communicator* tp) {
  std::unique_ptr<AdamWOptimizer<T>> opt(new AdamWOptimizer<T>());
  opt->model_ = model;
  opt->config_ = config;
  opt->ep_ = ep;
  opt->tp_ = tp;
  const int tp_size = tp != nullptr ? tp->size() : 1;
  std::vector<TensorSpec> specs;
  for (const model::ParamSpec& s : model->table().specs()) {
    if (s.kind == model::ParamKind::kBuffer || !model->HasGrad(s.name)) continue;
    const Shape local(s.LocalShape(tp_size));
    specs.push_back({s.name + ".exp_avg", local, DTypeOf<T>::value, "optimizer"});
    specs.push_back({s.name + ".exp_avg_sq", local, DTypeOf<T>::value, "optimizer"});
  }
  ASSIGN_OR_RETURN(opt->state_, Arena::Create(specs));
  for (const model::ParamSpec& s : model->table().specs()) {
    if (s.kind == model::ParamKind::kBuffer || !model->HasGrad(s.name)) continue;
    opt->slots_.push_back(Slot{s.name, model->Param(s.name).template as<T>(),
                               model->Grad(s.name).template as<T>(),
                               opt->state_.Get(s.name + ".exp_avg").template as<T>(),
                               opt->state_.Get(s.name + ".exp_avg_sq").template as<T>(),
                               s.LocalNumel(tp_size), s.weight_decay,
                               s.kind == model::ParamKind::kExpert, s.IsTpSplit(tp_size)});
  }
  return opt;
}

template <typename T>
double AdamWOptimizer<T>::GradNorm() const {
  // Each tensor's sum of squares is the sequential kernels::SumSquares, whichever thread runs it;
  // the per-tensor sums are then added in table order: the same bits as a serial loop, for any
  // number of threads.
  // Largest tensors first, so the dynamic schedule balances.
  std::vector<int64_t> order(slots_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return slots_[a].numel > slots_[b].numel; });
  std::vector<double> partial(slots_.size());
  const int64_t num_slots = static_cast<int64_t>(slots_.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < num_slots; ++j) {
    const int64_t i = order[j];
    partial[i] = kernels::SumSquares(slots_[i].grad, slots_[i].numel);
  }
  // Dense gradients are identical on every rank after GradSync; each expert-parallel rank holds
  // different experts, so their part is summed over the ep group.
  // With tensor parallelism, tp-split shards (every expert tensor among them) are summed over tp;
  // tensors replicated over tp are counted once.
  double dense = 0, dense_split = 0, expert = 0;
  for (size_t i = 0; i < partial.size(); ++i)
    (slots_[i].is_expert ? expert : slots_[i].tp_split ? dense_split : dense) += partial[i];
  if (ep_ != nullptr && ep_->size() > 1)
    MT_CHECK_OK(ep_->AllReduce(&expert, &expert, 1, DType::kF64));
  double split = dense_split + expert;
  if (tp_ != nullptr && tp_->size() > 1) MT_CHECK_OK(tp_->AllReduce(&split, &split, 1, DType::kF64));
  return std::sqrt(dense + split);
}

template <typename T>
StepStats AdamWOptimizer<T>::Step(double lr) {
  StepStats stats;
  PhaseScope ph("opt.grad_norm");
  stats.grad_norm = GradNorm();
  ph.Next("opt.adamw");
  if (config_.grad_clip > 0 && stats.grad_norm > config_.grad_clip)
    stats.clip_scale = config_.grad_clip / (stats.grad_norm + 1e-6);
  for (Slot& s : slots_) {
    kernels::AdamWHyper h{lr, config_.beta1, config_.beta2, config_.eps,
                          s.weight_decay ? config_.weight_decay : 0.0};
    ++s.step;
    kernels::AdamWStep(s.param, s.m, s.v, s.grad, s.numel, h, s.step, stats.clip_scale);
  }
  return stats;
}

template <typename T>
int64_t AdamWOptimizer<T>::StepCount(const std::string& name) const {
  for (const Slot& s : slots_)
    if (s.name == name) return s.step;
  return -1;
}

template class AdamWOptimizer<float>;
template class AdamWOptimizer<double>;

}  // namespace moetrain::optim

#include "optim/adamw_optimizer.h"

#include <cmath>

#include "kernels/elementwise.h"

namespace moetrain::optim {

template <typename T>
absl::StatusOr<std::unique_ptr<AdamWOptimizer<T>>> AdamWOptimizer<T>::Create(
    model::Model<T>* model, const AdamWConfig& config) {
  std::unique_ptr<AdamWOptimizer<T>> opt(new AdamWOptimizer<T>());
  opt->model_ = model;
  opt->config_ = config;
  std::vector<TensorSpec> specs;
  for (const model::ParamSpec& s : model->table().specs()) {
    if (s.kind == model::ParamKind::kBuffer) continue;
    specs.push_back({s.name + ".exp_avg", Shape(s.shape), DTypeOf<T>::value, "optimizer"});
    specs.push_back({s.name + ".exp_avg_sq", Shape(s.shape), DTypeOf<T>::value, "optimizer"});
  }
  ASSIGN_OR_RETURN(opt->state_, Arena::Create(specs));
  for (const model::ParamSpec& s : model->table().specs()) {
    if (s.kind == model::ParamKind::kBuffer) continue;
    opt->slots_.push_back(Slot{s.name, model->Param(s.name).template as<T>(),
                               model->Grad(s.name).template as<T>(),
                               opt->state_.Get(s.name + ".exp_avg").template as<T>(),
                               opt->state_.Get(s.name + ".exp_avg_sq").template as<T>(), s.numel(),
                               s.weight_decay});
  }
  return opt;
}

template <typename T>
double AdamWOptimizer<T>::GradNorm() const {
  double sum = 0;
  for (const Slot& s : slots_) sum += kernels::SumSquares(s.grad, s.numel);
  return std::sqrt(sum);
}

template <typename T>
StepStats AdamWOptimizer<T>::Step(double lr) {
  StepStats stats;
  stats.grad_norm = GradNorm();
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

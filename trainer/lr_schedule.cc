#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace moetrain::trainer {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

std::string_view DecayKindName(DecayKind kind) {
  switch (kind) {
    case DecayKind::kCosine:
      return "cosine";
    case DecayKind::kLinear:
      return "linear";
    case DecayKind::kConstant:
      return "constant";
  }
  return "unknown";
}

double LearningRate(const ScheduleConfig& schedule, double peak_lr, int64_t step) {
  MT_CHECK_MSG(step >= 0, "LearningRate: step must be >= 0, got ", step);
  MT_CHECK_MSG(schedule.warmup_steps >= 0 && schedule.warmup_steps <= schedule.total_steps,
               "LearningRate: unvalidated schedule (warmup_steps ", schedule.warmup_steps,
               ", total_steps ", schedule.total_steps, ")");
  if (step < schedule.warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  }
  if (schedule.decay == DecayKind::kConstant) return peak_lr;
  const int64_t decay_steps = schedule.total_steps - schedule.warmup_steps;
  const double progress =
      decay_steps > 0
          ? std::min(1.0, static_cast<double>(step - schedule.warmup_steps) / decay_steps)
          : 1.0;
  const double span = peak_lr - schedule.min_lr;
  if (schedule.decay == DecayKind::kLinear) return schedule.min_lr + span * (1.0 - progress);
  return schedule.min_lr + span * 0.5 * (1.0 + std::cos(kPi * progress));
}

}  // namespace moetrain::trainer

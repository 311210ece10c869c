// Learning-rate schedule: linear warmup, then cosine / linear / constant decay to min_lr.
//
// The `schedule:` section of a recipe (trainer/recipe.h) is a ScheduleConfig; the peak learning
// rate is `optim.lr`. Steps are 0-based optimizer steps (one step = micro_batch * grad_accum
// sequences).
//
//   step < warmup_steps:   lr = peak * (step + 1) / warmup_steps   (peak / warmup at step 0, peak
//   at
//                                                                   step warmup_steps - 1)
//   step >= warmup_steps:  p  = min(1, (step - warmup_steps) / (total_steps - warmup_steps))
//                          cosine:   lr = min_lr + (peak - min_lr) * (1 + cos(pi * p)) / 2
//                          linear:   lr = min_lr + (peak - min_lr) * (1 - p)
//                          constant: lr = peak              (min_lr is ignored)
//
// So the decay reaches min_lr exactly at step == total_steps (one past the last step of the run)
// and stays there for any later step. When warmup_steps == total_steps there is no decay phase:
// every step of the run is a warmup step, and steps >= total_steps get min_lr (peak for constant).
#pragma once

#include <cstdint>
#include <string_view>

namespace moetrain::trainer {

enum class DecayKind { kCosine, kLinear, kConstant };

// "cosine", "linear" or "constant": the spelling used in recipes.
std::string_view DecayKindName(DecayKind kind);

struct ScheduleConfig {
  int64_t warmup_steps = 0;  // >= 0 and <= total_steps; 0 = start at the peak
  DecayKind decay = DecayKind::kCosine;
  double min_lr = 0.0;         // 0 <= min_lr <= optim.lr; the floor the decay reaches
  int64_t total_steps = 1000;  // > 0: the length of the run in optimizer steps
};

// The learning rate at 0-based optimizer step `step`, per the formulas above.
// REQUIRES: the schedule passed validation (ValidateRecipe), peak_lr >= schedule.min_lr, step >= 0.
// Pure and thread-safe.
double LearningRate(const ScheduleConfig& schedule, double peak_lr, int64_t step);

}  // namespace moetrain::trainer

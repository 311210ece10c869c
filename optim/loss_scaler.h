// Loss scaling for mixed-precision training (PyTorch GradScaler / Megatron DynamicGradScaler).
//
// The backward pass runs on loss * scale() so that small fp16 gradients do not flush to zero; the
// optimizer divides the gradients by scale() again, after checking them for inf/NaN. Per step:
//   skip = scaler.Update(found_non_finite);   // true: do NOT apply this step (grads are garbage)
// Dynamic rule (fp16):
//   overflow:  skip; good_steps = 0; hysteresis_left -= 1; when it reaches 0,
//              scale *= backoff_factor (never below min_scale), hysteresis_left = hysteresis.
//              So with hysteresis h the scale backs off on every h-th overflow (h = 1: each one).
//   good step: good_steps += 1; after growth_interval consecutive good steps,
//              scale *= growth_factor, good_steps = 0 and hysteresis_left = hysteresis.
// Static rule (bf16 / fp32): scale stays fixed (1 by default); a non-finite gradient still skips.
// State (scale, good_steps, hysteresis_left) is what a training checkpoint saves and restores.
// Not thread-safe; every rank keeps an identical copy (found_non_finite agreed on by all ranks).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moetrain::optim {

struct LossScalerConfig {
  double initial_scale = 65536.0;  // 2^16; finite, > 0 and >= min_scale
  double growth_factor = 2.0;      // > 1
  double backoff_factor = 0.5;     // in (0, 1)
  int64_t growth_interval = 1000;  // consecutive good steps before growing; >= 1
  int64_t hysteresis = 2;          // overflows tolerated before backing off; >= 1
  double min_scale = 1.0;          // floor of the scale; > 0
};

// OK, or InvalidArgumentError naming the first out-of-range field ("loss_scale.<field>: ...").
absl::Status ValidateLossScalerConfig(const LossScalerConfig& config);

class LossScaler {
 public:
  struct State {
    double scale = 1.0;
    int64_t good_steps = 0;       // consecutive good steps since the last growth or overflow
    int64_t hysteresis_left = 1;  // overflows left before the next back-off
    bool operator==(const State& o) const {
      return scale == o.scale && good_steps == o.good_steps && hysteresis_left == o.hysteresis_left;
    }
  };

  // Errors: ValidateLossScalerConfig's.
  static absl::StatusOr<LossScaler> Dynamic(const LossScalerConfig& config);
  // A fixed scale. REQUIRES: scale finite and > 0.
  static LossScaler Static(double scale = 1.0);

  bool dynamic() const { return dynamic_; }
  double scale() const { return state_.scale; }
  const LossScalerConfig& config() const { return config_; }

  // Records one step's outcome; returns true when the step must be skipped (found_non_finite).
  bool Update(bool found_non_finite);

  State state() const { return state_; }
  // Restores a saved state. Errors (InvalidArgumentError, "loss scaler state: ..."): scale not
  // finite or <= 0 (or, for a static scaler, different from its fixed scale); good_steps outside
  // [0, growth_interval); hysteresis_left outside [1, hysteresis].
  absl::Status SetState(const State& state);

 private:
  LossScaler(const LossScalerConfig& config, bool dynamic);

  LossScalerConfig config_;
  bool dynamic_ = false;
  State state_;
};

}  // namespace moetrain::optim

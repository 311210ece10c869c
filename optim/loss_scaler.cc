#include "optim/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace moetrain::optim {
namespace {

absl::Status Bad(const char* field, double value, const char* want) {
  return absl::InvalidArgumentError(
      absl::StrCat("loss_scale.", field, ": ", value, " is out of range (", want, ")"));
}

}  // namespace

absl::Status ValidateLossScalerConfig(const LossScalerConfig& c) {
  if (!std::isfinite(c.min_scale) || c.min_scale <= 0)
    return Bad("min", c.min_scale, "must be > 0");
  if (!std::isfinite(c.initial_scale) || c.initial_scale < c.min_scale)
    return Bad("initial", c.initial_scale, "must be finite and >= min");
  if (!std::isfinite(c.growth_factor) || c.growth_factor <= 1)
    return Bad("growth_factor", c.growth_factor, "must be > 1");
  if (!(c.backoff_factor > 0 && c.backoff_factor < 1))
    return Bad("backoff_factor", c.backoff_factor, "must be in (0, 1)");
  if (c.growth_interval < 1)
    return Bad("growth_interval", static_cast<double>(c.growth_interval), "must be >= 1");
  if (c.hysteresis < 1) return Bad("hysteresis", static_cast<double>(c.hysteresis), "must be >= 1");
  return absl::OkStatus();
}

LossScaler::LossScaler(const LossScalerConfig& config, bool dynamic)
    : config_(config), dynamic_(dynamic) {
  state_.scale = config.initial_scale;
  state_.good_steps = 0;
  state_.hysteresis_left = config.hysteresis;
}

absl::StatusOr<LossScaler> LossScaler::Dynamic(const LossScalerConfig& config) {
  RETURN_IF_ERROR(ValidateLossScalerConfig(config));
  return LossScaler(config, /*dynamic=*/true);
}

LossScaler LossScaler::Static(double scale) {
  MT_CHECK_MSG(std::isfinite(scale) && scale > 0, "LossScaler::Static: scale ", scale);
  LossScalerConfig c;
  c.initial_scale = scale;
  c.min_scale = scale;
  c.hysteresis = 1;
  c.growth_interval = 1;
  return LossScaler(c, /*dynamic=*/false);
}

bool LossScaler::Update(bool found_non_finite) {
  if (!dynamic_) return found_non_finite;
  if (found_non_finite) {
    state_.good_steps = 0;
    if (--state_.hysteresis_left <= 0) {
      state_.scale = std::max(state_.scale * config_.backoff_factor, config_.min_scale);
      state_.hysteresis_left = config_.hysteresis;
    }
    return true;
  }
  if (++state_.good_steps >= config_.growth_interval) {
    state_.scale *= config_.growth_factor;
    state_.good_steps = 0;
    state_.hysteresis_left = config_.hysteresis;
  }
  return false;
}

absl::Status LossScaler::SetState(const State& s) {
  if (!std::isfinite(s.scale) || s.scale <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("loss scaler state: scale ", s.scale, " is not finite and > 0"));
  if (!dynamic_ && s.scale != state_.scale)
    return absl::InvalidArgumentError(absl::StrCat(
        "loss scaler state: scale ", s.scale, " differs from this static scaler's ", state_.scale));
  if (dynamic_ && (s.good_steps < 0 || s.good_steps >= config_.growth_interval))
    return absl::InvalidArgumentError(absl::StrCat("loss scaler state: good_steps ", s.good_steps,
                                                   " is outside [0, ", config_.growth_interval,
                                                   ")"));
  if (dynamic_ && (s.hysteresis_left < 1 || s.hysteresis_left > config_.hysteresis))
    return absl::InvalidArgumentError(absl::StrCat("loss scaler state: hysteresis_left ",
                                                   s.hysteresis_left, " is outside [1, ",
                                                   config_.hysteresis, "]"));
  if (dynamic_) state_ = s;
  return absl::OkStatus();
}

}  // namespace moetrain::optim

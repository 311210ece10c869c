// NonFiniteGuard: ends a run that keeps skipping steps for a non-finite gradient.
//
// ZeroOptimizer::Step skips a step whose gradient norm is NaN/Inf. One skip is harmless (fp16 loss
// scale overflow is routine); a run of them means the model has diverged and every further step is
// wasted compute. The guard counts consecutive COUNTED skips and, at optim.max_consecutive_skips,
// the train loop returns NonFiniteAbortError. Which skips count (docs/faults.md):
//   * bf16 / fp32 (a static loss scale): every skip;
//   * fp16 (dynamic scale): only skips at a scale already at loss_scale.min -- above it the scaler
//     backs off and the overflow is expected to clear, so those skips do not count and do not
//     reset the streak.
// A step that is not skipped resets the count.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "model/param_table.h"
#include "optim/loss_scaler.h"
#include "optim/zero_optimizer.h"
#include "parallel/communicator.h"

namespace moetrain::trainer {

class NonFiniteGuard {
 public:
  // max_consecutive = 0: never abort.
  explicit NonFiniteGuard(int64_t max_consecutive) : max_(max_consecutive) {}

  // One optimizer step: `skipped` as ZeroStepStats::skipped, `scale` the loss scale the step ran
  // with, `scaler` the run's scaler (dynamic or not, its floor). Returns true when the run must
  // abort now.
  bool Record(bool skipped, double scale, const optim::LossScaler& scaler);
  int64_t consecutive() const { return count_; }

 private:
  int64_t max_;
  int64_t count_ = 0;
};

// The error that ends the run at `step` (1-based) after `streak` counted skips: names the first
// tensor in table order whose gradient holds a NaN/Inf on any rank (a min-reduction of
// FirstNonFiniteGradientTensor over `world`; nullptr = a world of one). Collective over world:
// every rank calls it at the same step. Returns the collective's own error if that fails.
absl::Status NonFiniteAbortError(const optim::ZeroOptimizer<float>& optimizer,
                                 const model::ParamTable& table, parallel::Communicator* world,
                                 int64_t step, int64_t streak);

}  // namespace moetrain::trainer

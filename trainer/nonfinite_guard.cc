#include "trainer/nonfinite_guard.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace moetrain::trainer {

bool NonFiniteGuard::Record(bool skipped, double scale, const optim::LossScaler& scaler) {
  if (!skipped) {
    count_ = 0;
    return false;
  }
  const bool counts = !scaler.dynamic() || scale <= scaler.config().min_scale;
  if (counts) ++count_;
  return max_ > 0 && count_ >= max_;
}

absl::Status NonFiniteAbortError(const optim::ZeroOptimizer<float>& optimizer,
                                 const model::ParamTable& table, parallel::Communicator* world,
                                 int64_t step, int64_t streak) {
  const int64_t local = optimizer.FirstNonFiniteGradientTensor();
  // Min over ranks, with "none" as the largest value (an exact double: table indices are small).
  double first = local >= 0 ? static_cast<double>(local) : std::numeric_limits<double>::max();
  if (world != nullptr && world->size() > 1)
    RETURN_IF_ERROR(world->AllReduce(&first, &first, 1, DType::kF64, parallel::ReduceOp::kMin));
  const bool found = first < static_cast<double>(table.size());
  return absl::FailedPreconditionError(absl::StrCat(
      "step ", step, ": ", streak,
      " consecutive steps were skipped for a non-finite gradient (optim.max_consecutive_skips); ",
      found ? absl::StrCat("the first tensor (table order) with a NaN/Inf gradient is ",
                           table.specs()[static_cast<size_t>(first)].name)
            : std::string("no gradient element is NaN/Inf (the norm itself overflowed)"),
      ". HINT: lower optim.lr, raise warmup or keep optim.grad_clip on; resume from an earlier "
      "snapshot with --resume DIR"));
}

}  // namespace moetrain::trainer

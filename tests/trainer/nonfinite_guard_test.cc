// NonFiniteGuard's counting rules (docs/faults.md): with a static loss scale (bf16/fp32) every skip
// counts and a good step resets the streak; with a dynamic fp16 scale only skips at the floor
// (loss_scale.min) count, and skips above it neither count nor reset; 0 = never abort. The scaler
// here is the real optim::LossScaler driven through overflows, not a stand-in.
#include "trainer/nonfinite_guard.h"

#include <gtest/gtest.h>

namespace moetrain::trainer {
namespace {

TEST(NonFiniteGuard, StaticScaleCountsEverySkipAndAGoodStepResets) {
  const optim::LossScaler scaler = optim::LossScaler::Static(1.0);
  NonFiniteGuard guard(3);
  EXPECT_FALSE(guard.Record(true, 1.0, scaler));
  EXPECT_FALSE(guard.Record(true, 1.0, scaler));
  EXPECT_FALSE(guard.Record(false, 1.0, scaler));  // reset
  EXPECT_EQ(guard.consecutive(), 0);
  EXPECT_FALSE(guard.Record(true, 1.0, scaler));
  EXPECT_FALSE(guard.Record(true, 1.0, scaler));
  EXPECT_TRUE(guard.Record(true, 1.0, scaler));
  EXPECT_EQ(guard.consecutive(), 3);
}

TEST(NonFiniteGuard, DynamicScaleCountsOnlySkipsAtTheFloor) {
  optim::LossScalerConfig c;
  c.initial_scale = 8;
  c.min_scale = 2;
  c.backoff_factor = 0.5;
  c.hysteresis = 1;
  auto scaler = optim::LossScaler::Dynamic(c);
  ASSERT_TRUE(scaler.ok()) << scaler.status();
  NonFiniteGuard guard(2);
  int aborted_at = -1;
  // Overflow every step: scales 8, 4 (do not count), then 2, 2 (count) -> abort on the 4th.
  for (int i = 0; i < 6 && aborted_at < 0; ++i) {
    const double scale = scaler->scale();
    scaler->Update(true);
    if (guard.Record(true, scale, *scaler)) aborted_at = i;
  }
  EXPECT_EQ(aborted_at, 3);
}

TEST(NonFiniteGuard, ZeroNeverAborts) {
  const optim::LossScaler scaler = optim::LossScaler::Static(1.0);
  NonFiniteGuard guard(0);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(guard.Record(true, 1.0, scaler));
  EXPECT_EQ(guard.consecutive(), 100);
}

}  // namespace
}  // namespace moetrain::trainer

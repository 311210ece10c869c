// LearningRate against hand-computed values of the formulas in trainer/lr_schedule.h.
#include "trainer/lr_schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace moetrain::trainer {
namespace {

constexpr double kPeak = 3e-3;
constexpr double kMin = 3e-4;
constexpr double kTol = 1e-15;

ScheduleConfig Schedule(DecayKind decay, int64_t warmup = 10, int64_t total = 110) {
  ScheduleConfig s;
  s.warmup_steps = warmup;
  s.decay = decay;
  s.min_lr = kMin;
  s.total_steps = total;
  return s;
}

TEST(LrScheduleTest, WarmupIsLinearFromPeakOverWarmupToPeak) {
  for (DecayKind decay : {DecayKind::kCosine, DecayKind::kLinear, DecayKind::kConstant}) {
    const ScheduleConfig s = Schedule(decay);
    EXPECT_NEAR(LearningRate(s, kPeak, 0), kPeak / 10, kTol);  // warmup start
    EXPECT_NEAR(LearningRate(s, kPeak, 4), kPeak * 5 / 10, kTol);
    EXPECT_NEAR(LearningRate(s, kPeak, 9), kPeak, kTol);   // warmup end: the peak
    EXPECT_NEAR(LearningRate(s, kPeak, 10), kPeak, kTol);  // first decay step: p = 0
  }
}

TEST(LrScheduleTest, Cosine) {
  const ScheduleConfig s = Schedule(DecayKind::kCosine);
  // Decay over steps 10..110 (100 steps).
  EXPECT_NEAR(LearningRate(s, kPeak, 60), kMin + (kPeak - kMin) * 0.5, kTol);  // p = 1/2
  EXPECT_NEAR(LearningRate(s, kPeak, 35), kMin + (kPeak - kMin) * 0.5 * (1 + std::cos(M_PI * 0.25)),
              kTol);  // p = 1/4
  EXPECT_NEAR(LearningRate(s, kPeak, 109),
              kMin + (kPeak - kMin) * 0.5 * (1 + std::cos(M_PI * 0.99)), kTol);  // last step
  EXPECT_NEAR(LearningRate(s, kPeak, 110), kMin, kTol);                          // end
  EXPECT_NEAR(LearningRate(s, kPeak, 500), kMin, kTol);  // past the end: stays at min
}

TEST(LrScheduleTest, Linear) {
  const ScheduleConfig s = Schedule(DecayKind::kLinear);
  EXPECT_NEAR(LearningRate(s, kPeak, 60), kMin + (kPeak - kMin) * 0.5, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 35), kMin + (kPeak - kMin) * 0.75, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 109), kMin + (kPeak - kMin) * 0.01, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 110), kMin, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 1000), kMin, kTol);
}

TEST(LrScheduleTest, ConstantIgnoresMinLr) {
  const ScheduleConfig s = Schedule(DecayKind::kConstant);
  EXPECT_NEAR(LearningRate(s, kPeak, 60), kPeak, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 110), kPeak, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 1000), kPeak, kTol);
}

TEST(LrScheduleTest, NoWarmupStartsAtThePeak) {
  const ScheduleConfig s = Schedule(DecayKind::kCosine, /*warmup=*/0, /*total=*/100);
  EXPECT_NEAR(LearningRate(s, kPeak, 0), kPeak, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 50), kMin + (kPeak - kMin) * 0.5, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 100), kMin, kTol);
}

TEST(LrScheduleTest, AllWarmup) {
  const ScheduleConfig s = Schedule(DecayKind::kLinear, /*warmup=*/4, /*total=*/4);
  EXPECT_NEAR(LearningRate(s, kPeak, 0), kPeak / 4, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 3), kPeak, kTol);
  EXPECT_NEAR(LearningRate(s, kPeak, 4), kMin, kTol);
}

TEST(LrScheduleTest, DecayNames) {
  EXPECT_EQ(DecayKindName(DecayKind::kCosine), "cosine");
  EXPECT_EQ(DecayKindName(DecayKind::kLinear), "linear");
  EXPECT_EQ(DecayKindName(DecayKind::kConstant), "constant");
}

TEST(LrScheduleDeathTest, NegativeStepAborts) {
  EXPECT_DEATH(LearningRate(Schedule(DecayKind::kCosine), kPeak, -1), "step must be >= 0");
}

}  // namespace
}  // namespace moetrain::trainer

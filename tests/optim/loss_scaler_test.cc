// LossScaler against a reference written differently: the scale is recomputed each step as
// initial * growth^(#growths) * backoff^(#backoffs) (clamped at min by replaying the clamps), from
// counts of overflows since the last "reset event" and the length of the current good run, over
// random overflow patterns and several configs; plus State save/restore and the static scaler.
#include "optim/loss_scaler.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moetrain::optim {
namespace {

// Reference: the same rule, phrased as event counting over the history of the run.
struct ReferenceScaler {
  LossScalerConfig c;
  double scale;
  int64_t run = 0;              // length of the current run of good steps
  int64_t overflows_since = 0;  // overflows since the last growth or back-off
  explicit ReferenceScaler(const LossScalerConfig& cfg) : c(cfg), scale(cfg.initial_scale) {}
  void Step(bool overflow) {
    if (overflow) {
      run = 0;
      overflows_since += 1;
      if (overflows_since == c.hysteresis) {
        scale = std::max(scale * c.backoff_factor, c.min_scale);
        overflows_since = 0;
      }
    } else {
      run += 1;
      if (run % c.growth_interval == 0) {
        scale = scale * c.growth_factor;
        overflows_since = 0;
      }
    }
  }
};

std::vector<bool> RandomOverflows(int64_t n, double p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution bern(p);
  std::vector<bool> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = bern(rng);
  return v;
}

TEST(LossScalerTest, MatchesReferenceOnRandomHistories) {
  std::vector<LossScalerConfig> configs(4);
  configs[1].growth_interval = 3;
  configs[1].hysteresis = 1;
  configs[2].growth_interval = 5;
  configs[2].hysteresis = 3;
  configs[2].initial_scale = 8;
  configs[2].min_scale = 2;  // the floor is hit
  configs[3].growth_interval = 2;
  configs[3].growth_factor = 4;
  configs[3].backoff_factor = 0.25;
  int seed = 0;
  for (const LossScalerConfig& c : configs) {
    for (double p : {0.05, 0.3, 0.7}) {
      auto scaler = LossScaler::Dynamic(c);
      ASSERT_TRUE(scaler.ok()) << scaler.status();
      ReferenceScaler ref(c);
      const auto overflows = RandomOverflows(3000, p, ++seed);
      for (size_t i = 0; i < overflows.size(); ++i) {
        const bool skip = scaler->Update(overflows[i]);
        ref.Step(overflows[i]);
        ASSERT_EQ(skip, overflows[i]) << "step " << i;
        ASSERT_EQ(scaler->scale(), ref.scale) << "step " << i << " p " << p;
        ASSERT_GE(scaler->scale(), c.min_scale);
      }
    }
  }
}

TEST(LossScalerTest, HysteresisDelaysBackoffAndGrowthNeedsConsecutiveGoodSteps) {
  LossScalerConfig c;
  c.growth_interval = 4;
  c.hysteresis = 2;
  auto s = LossScaler::Dynamic(c);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Update(true));  // first overflow: skipped, scale kept
  EXPECT_EQ(s->scale(), c.initial_scale);
  EXPECT_TRUE(s->Update(true));  // second: back off
  EXPECT_EQ(s->scale(), c.initial_scale * c.backoff_factor);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(s->Update(false));
  EXPECT_TRUE(s->Update(true));  // breaks the run of good steps
  for (int i = 0; i < 3; ++i) s->Update(false);
  EXPECT_EQ(s->scale(), c.initial_scale * c.backoff_factor);  // only 3 in a row
  s->Update(false);
  EXPECT_EQ(s->scale(), c.initial_scale * c.backoff_factor * c.growth_factor);
  EXPECT_EQ(s->state().hysteresis_left, c.hysteresis);  // growth resets hysteresis
}

TEST(LossScalerTest, StateRoundTripContinuesIdentically) {
  LossScalerConfig c;
  c.growth_interval = 7;
  c.hysteresis = 3;
  auto a = LossScaler::Dynamic(c);
  ASSERT_TRUE(a.ok());
  const auto events = RandomOverflows(400, 0.2, 99);
  for (int i = 0; i < 200; ++i) a->Update(events[i]);
  auto b = LossScaler::Dynamic(c);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->SetState(a->state()).ok());
  for (int i = 200; i < 400; ++i) {
    ASSERT_EQ(a->Update(events[i]), b->Update(events[i]));
    ASSERT_EQ(a->state(), b->state()) << "step " << i;
  }
}

TEST(LossScalerTest, RejectsBadConfigAndState) {
  const auto field_error = [](LossScalerConfig c, const char* field) {
    const absl::Status st = LossScaler::Dynamic(c).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st;
  };
  LossScalerConfig c;
  c.growth_factor = 1.0;
  field_error(c, "growth_factor");
  c = {};
  c.backoff_factor = 1.0;
  field_error(c, "backoff_factor");
  c = {};
  c.growth_interval = 0;
  field_error(c, "growth_interval");
  c = {};
  c.hysteresis = 0;
  field_error(c, "hysteresis");
  c = {};
  c.min_scale = 0;
  field_error(c, "min");
  c = {};
  c.initial_scale = 0.5;  // below min 1
  field_error(c, "initial");

  auto s = LossScaler::Dynamic({});
  ASSERT_TRUE(s.ok());
  const LossScaler::State before = s->state();
  EXPECT_FALSE(s->SetState({std::nan(""), 0, 1}).ok());
  EXPECT_FALSE(s->SetState({2.0, -1, 1}).ok());
  EXPECT_FALSE(s->SetState({2.0, 1000, 1}).ok());
  EXPECT_FALSE(s->SetState({2.0, 0, 0}).ok());
  EXPECT_FALSE(s->SetState({2.0, 0, 3}).ok());
  EXPECT_EQ(s->state(), before);  // a rejected state changes nothing
}

TEST(LossScalerTest, StaticScalerSkipsOnlyNonFiniteAndNeverMoves) {
  LossScaler s = LossScaler::Static();
  EXPECT_FALSE(s.dynamic());
  const auto events = RandomOverflows(2000, 0.3, 5);
  for (bool e : events) {
    EXPECT_EQ(s.Update(e), e);
    ASSERT_EQ(s.scale(), 1.0);
  }
  EXPECT_TRUE(s.SetState({1.0, 0, 1}).ok());
  EXPECT_FALSE(s.SetState({2.0, 0, 1}).ok());
}

}  // namespace
}  // namespace moetrain::optim

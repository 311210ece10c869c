// AdamW against a hand-written float64 reference over several steps with weight decay and
// grad_scale; the step-1 bias correction in closed form; per-tensor step counts; float vs double.
#include "kernels/adamw.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::RandomVector;
using ::moetrain::testing::RelativeL2Error;

struct State {
  std::vector<double> p, m, v;
};

// The header's update, written out element by element.
void ReferenceStep(State& s, const std::vector<double>& grad, const AdamWHyper& h, int64_t t,
                   double grad_scale) {
  for (size_t i = 0; i < s.p.size(); ++i) {
    double g = grad[i] * grad_scale;
    s.m[i] = h.beta1 * s.m[i] + (1 - h.beta1) * g;
    s.v[i] = h.beta2 * s.v[i] + (1 - h.beta2) * g * g;
    double m_hat = s.m[i] / (1 - std::pow(h.beta1, t));
    double v_hat = s.v[i] / (1 - std::pow(h.beta2, t));
    s.p[i] -= h.lr * (m_hat / (std::sqrt(v_hat) + h.eps) + h.weight_decay * s.p[i]);
  }
}

TEST(AdamWTest, MatchesReferenceOverSeveralSteps) {
  const int64_t n = 1003;
  AdamWHyper h;
  h.lr = 3e-3;
  h.beta1 = 0.9;
  h.beta2 = 0.95;
  h.eps = 1e-8;
  h.weight_decay = 0.1;
  const double grad_scale = 0.37;

  State ref{RandomVector<double>(n, 1), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  std::vector<double> p = ref.p, m(n, 0.0), v(n, 0.0);
  std::vector<float> pf = Cast<float>(ref.p), mf(n, 0.f), vf(n, 0.f);
  for (int64_t t = 1; t <= 6; ++t) {
    auto g = RandomVector<double>(n, 100 + t, 0.5);
    auto gf = Cast<float>(g);
    ReferenceStep(ref, g, h, t, grad_scale);
    AdamWStep(p.data(), m.data(), v.data(), g.data(), n, h, t, grad_scale);
    AdamWStep(pf.data(), mf.data(), vf.data(), gf.data(), n, h, t, grad_scale);
  }
  EXPECT_TRUE(AllClose(p, ref.p, 1e-14, 1e-15, "f64 param"));
  EXPECT_TRUE(AllClose(m, ref.m, 1e-14, 1e-15, "f64 m"));
  EXPECT_TRUE(AllClose(v, ref.v, 1e-14, 1e-15, "f64 v"));
  EXPECT_TRUE(AllClose(pf, ref.p, 1e-6, 1e-6, "f32 param"));
  EXPECT_TRUE(AllClose(mf, ref.m, 1e-5, 1e-7, "f32 m"));
  EXPECT_TRUE(AllClose(vf, ref.v, 1e-5, 1e-9, "f32 v"));
  std::printf("  adamw param rel L2 after 6 steps: f64 %.3g, f32 %.3g\n", RelativeL2Error(p, ref.p),
              RelativeL2Error(pf, ref.p));
}

TEST(AdamWTest, FirstStepBiasCorrection) {
  // From zero state at t = 1: m_hat = g and v_hat = g^2 exactly, so the step is
  // lr * (g / (|g| + eps) + wd * p), i.e. about lr * sign(g) whatever beta1, beta2 are.
  const int64_t n = 17;
  AdamWHyper h;
  h.lr = 1e-2;
  h.beta1 = 0.8;
  h.beta2 = 0.99;
  h.weight_decay = 0.05;
  auto p0 = RandomVector<double>(n, 2), g = RandomVector<double>(n, 3);
  std::vector<double> p = p0, m(n, 0.0), v(n, 0.0), want(n);
  AdamWStep(p.data(), m.data(), v.data(), g.data(), n, h, 1);
  for (int64_t i = 0; i < n; ++i)
    want[i] = p0[i] - h.lr * (g[i] / (std::fabs(g[i]) + h.eps) + h.weight_decay * p0[i]);
  EXPECT_TRUE(AllClose(p, want, 1e-14, 1e-15, "step 1"));
}

TEST(AdamWTest, UsesTheTensorsOwnStepCount) {
  // The same state and gradient at step 3 vs step 40 differ only through the bias corrections.
  const int64_t n = 9;
  AdamWHyper h;
  auto p0 = RandomVector<double>(n, 4), m0 = RandomVector<double>(n, 5, 0.1), g = RandomVector<double>(n, 6);
  std::vector<double> v0(n);
  for (int64_t i = 0; i < n; ++i) v0[i] = m0[i] * m0[i] + 0.01;
  for (int64_t t : {3, 40}) {
    State ref{p0, m0, v0};
    ReferenceStep(ref, g, h, t, 1.0);
    std::vector<double> p = p0, m = m0, v = v0;
    AdamWStep(p.data(), m.data(), v.data(), g.data(), n, h, t);
    EXPECT_TRUE(AllClose(p, ref.p, 1e-14, 1e-15, "step " + std::to_string(t)));
  }
}

TEST(AdamWTest, LargeTensorTakesParallelPath) {
  const int64_t n = (1 << 15) + 11;
  AdamWHyper h;
  h.weight_decay = 0.01;
  State ref{RandomVector<double>(n, 7), RandomVector<double>(n, 8, 0.1), std::vector<double>(n, 0.02)};
  auto g = RandomVector<double>(n, 9);
  std::vector<double> p = ref.p, m = ref.m, v = ref.v;
  ReferenceStep(ref, g, h, 5, 2.0);
  AdamWStep(p.data(), m.data(), v.data(), g.data(), n, h, 5, 2.0);
  EXPECT_TRUE(AllClose(p, ref.p, 1e-14, 1e-15, "parallel"));
}

TEST(AdamWDeathTest, StepZeroAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> p(2), m(2), v(2), g(2);
  EXPECT_DEATH(AdamWStep(p.data(), m.data(), v.data(), g.data(), 2, AdamWHyper{}, 0), "step must be");
}

}  // namespace
}  // namespace moetrain::kernels

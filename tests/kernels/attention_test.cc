// Causal GQA flash attention (kernels/attention.h): forward against a float64 full-softmax
// reference, backward against central finite differences, float against double, and results that
// do not depend on the thread count (bitwise).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::CentralDifference;
using ::moetrain::testing::Dot;
using ::moetrain::testing::RandomVector;
using ::moetrain::testing::RelativeL2Error;

struct Shape {
  int64_t b, s, hq, hkv, d;
  int64_t QElems() const { return b * s * hq * d; }
  int64_t KvElems() const { return b * s * hkv * d; }
  int64_t LseElems() const { return b * hq * s; }
};

std::ostream& operator<<(std::ostream& os, const Shape& x) {
  return os << "B" << x.b << "_S" << x.s << "_Hq" << x.hq << "_Hkv" << x.hkv << "_D" << x.d;
}

// Full softmax per row in float64: out(B,S,Hq,D), lse(B,Hq,S).
void ReferenceForward(std::vector<double>& out, std::vector<double>& lse,
                      const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, const Shape& x) {
  out.assign(x.QElems(), 0.0);
  lse.assign(x.LseElems(), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(x.d));
  std::vector<double> p(x.s);
  for (int64_t b = 0; b < x.b; ++b)
    for (int64_t h = 0; h < x.hq; ++h) {
      const int64_t g = h / (x.hq / x.hkv);
      for (int64_t i = 0; i < x.s; ++i) {
        const double* qi = &q[((b * x.s + i) * x.hq + h) * x.d];
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
          const double* kj = &k[((b * x.s + j) * x.hkv + g) * x.d];
          double dot = 0;
          for (int64_t e = 0; e < x.d; ++e) dot += qi[e] * kj[e];
          p[j] = dot * scale;
          m = std::max(m, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - m));
        double* oi = &out[((b * x.s + i) * x.hq + h) * x.d];
        for (int64_t j = 0; j <= i; ++j) {
          const double* vj = &v[((b * x.s + j) * x.hkv + g) * x.d];
          for (int64_t e = 0; e < x.d; ++e) oi[e] += p[j] / sum * vj[e];
        }
        lse[(b * x.hq + h) * x.s + i] = m + std::log(sum);
      }
    }
}

// Inputs (q, k, v, dout) and everything the kernel produces, in type T.
template <typename T>
struct Result {
  std::vector<T> q, k, v, dout;
  std::vector<T> out, lse, dq, dk, dv;

  Result(const Shape& x, const std::vector<double>& q64, const std::vector<double>& k64,
         const std::vector<double>& v64, const std::vector<double>& dout64)
      : q(Cast<T>(q64)), k(Cast<T>(k64)), v(Cast<T>(v64)), dout(Cast<T>(dout64)) {}

  void Forward(const Shape& x, int num_threads) {
    out.assign(x.QElems(), T(-1));  // garbage: the kernel must overwrite
    lse.assign(x.LseElems(), T(-1));
    std::vector<T> ws(AttentionWorkspaceElems(x.s, x.hq, x.d, num_threads));
    AttentionForward(out.data(), lse.data(), q.data(), k.data(), v.data(), x.b, x.s, x.hq, x.hkv,
                     x.d, ws.data(), num_threads);
  }
  void Backward(const Shape& x, int num_threads) {
    dq.assign(x.QElems(), T(7));  // garbage: activation gradients are overwritten
    dk.assign(x.KvElems(), T(7));
    dv.assign(x.KvElems(), T(7));
    std::vector<T> ws(AttentionWorkspaceElems(x.s, x.hq, x.d, num_threads));
    AttentionBackward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                      out.data(), lse.data(), x.b, x.s, x.hq, x.hkv, x.d, ws.data(), num_threads);
  }
};

struct Inputs {
  std::vector<double> q, k, v, dout;
  explicit Inputs(const Shape& x, uint64_t seed = 1)
      : q(RandomVector<double>(x.QElems(), seed)),
        k(RandomVector<double>(x.KvElems(), seed + 1)),
        v(RandomVector<double>(x.KvElems(), seed + 2)),
        dout(RandomVector<double>(x.QElems(), seed + 3)) {}
  template <typename T>
  Result<T> Make(const Shape& x) const {
    return Result<T>(x, q, k, v, dout);
  }
};

// --- Forward against the float64 reference --------------------------------------------------

class AttentionForwardTest : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionForwardTest, MatchesFloat64Reference) {
  const Shape x = GetParam();
  const Inputs in(x);
  std::vector<double> out_ref, lse_ref;
  ReferenceForward(out_ref, lse_ref, in.q, in.k, in.v, x);

  Result<double> r64 = in.Make<double>(x);
  r64.Forward(x, 2);
  EXPECT_TRUE(AllClose(r64.out, out_ref, 1e-12, 1e-13, "double out"));
  EXPECT_TRUE(AllClose(r64.lse, lse_ref, 1e-12, 1e-13, "double lse"));

  Result<float> r32 = in.Make<float>(x);
  r32.Forward(x, 2);
  EXPECT_TRUE(AllClose(r32.out, out_ref, 1e-5, 1e-5, "float out"));
  EXPECT_TRUE(AllClose(r32.lse, lse_ref, 1e-5, 1e-5, "float lse"));
  EXPECT_LT(RelativeL2Error(r32.out, out_ref), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionForwardTest,
                         ::testing::Values(Shape{1, 1, 4, 2, 8}, Shape{2, 7, 4, 2, 12},
                                           Shape{1, 33, 4, 4, 16}, Shape{1, 64, 4, 2, 8},
                                           Shape{1, 65, 6, 1, 8}, Shape{2, 130, 4, 2, 16},
                                           Shape{1, 130, 6, 1, 12}, Shape{1, 129, 2, 2, 5},
                                           Shape{3, 200, 4, 4, 12}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           std::ostringstream os;
                           os << info.param;
                           return os.str();
                         });

// --- Backward (double) against central finite differences of L = <R, out> ------------------

// Checks dq, dk, dv at every `stride`-th coordinate against finite differences of the
// reference forward.
void CheckGradientsByFiniteDifferences(const Shape& x, int64_t stride) {
  Inputs in(x, 11);  // in.dout plays R, so dL/dout = R
  Result<double> run = in.Make<double>(x);
  run.Forward(x, 2);
  run.Backward(x, 2);

  std::vector<double> out, lse;
  auto loss = [&] {
    ReferenceForward(out, lse, in.q, in.k, in.v, x);
    return Dot(in.dout, out);
  };
  const double h = 1e-5;
  struct Case {
    const char* name;
    std::vector<double>* x;
    const std::vector<double>* grad;
  };
  for (const Case& c :
       {Case{"dq", &in.q, &run.dq}, Case{"dk", &in.k, &run.dk}, Case{"dv", &in.v, &run.dv}}) {
    std::vector<double> got, want;
    for (size_t i = 0; i < c.x->size(); i += stride) {
      got.push_back((*c.grad)[i]);
      want.push_back(CentralDifference(*c.x, i, h, loss));
    }
    EXPECT_TRUE(AllClose(got, want, 1e-6, 1e-8, c.name));
    EXPECT_LT(RelativeL2Error(got, want), 1e-7) << c.name;
  }
}

TEST(AttentionBackwardTest, MatchesFiniteDifferencesSmall) {
  CheckGradientsByFiniteDifferences(Shape{2, 9, 4, 2, 8}, 1);  // every coordinate
}

TEST(AttentionBackwardTest, MatchesFiniteDifferencesAcrossBlocks) {
  CheckGradientsByFiniteDifferences(Shape{1, 70, 6, 2, 4}, 7);  // 2 key blocks, sampled
}

// --- Float backward against double backward ------------------------------------------------

TEST(AttentionBackwardTest, FloatMatchesDouble) {
  for (const Shape& x : {Shape{2, 130, 4, 2, 16}, Shape{1, 65, 6, 1, 12}}) {
    SCOPED_TRACE(::testing::PrintToString(x));
    const Inputs in(x, 5);
    Result<double> r64 = in.Make<double>(x);
    r64.Forward(x, 2);
    r64.Backward(x, 2);
    Result<float> r32 = in.Make<float>(x);
    r32.Forward(x, 2);
    r32.Backward(x, 2);
    EXPECT_TRUE(AllClose(r32.dq, r64.dq, 1e-4, 1e-4, "dq"));
    EXPECT_TRUE(AllClose(r32.dk, r64.dk, 1e-4, 1e-4, "dk"));
    EXPECT_TRUE(AllClose(r32.dv, r64.dv, 1e-4, 1e-4, "dv"));
    EXPECT_LT(RelativeL2Error(r32.dq, r64.dq), 1e-5);
    EXPECT_LT(RelativeL2Error(r32.dk, r64.dk), 1e-5);
    EXPECT_LT(RelativeL2Error(r32.dv, r64.dv), 1e-5);
  }
}

// --- Thread-count independence ---------------------------------------------------------------

template <typename T>
bool BitwiseEqual(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// The backward picks its schedule from (B*Hkv, num_threads): with B*Hkv = 1, one thread runs the
// fused schedule and two the split one; with B*Hkv = 4, 1-2 threads fuse and 3 split. Results
// must be bitwise identical in every case.
template <typename T>
void CheckThreadIndependence() {
  for (const Shape& x : {Shape{1, 130, 6, 1, 16}, Shape{2, 200, 8, 2, 12}}) {
    SCOPED_TRACE(::testing::PrintToString(x));
    const Inputs in(x, 21);
    Result<T> base = in.Make<T>(x);
    base.Forward(x, 1);
    base.Backward(x, 1);
    for (int threads : {2, 3}) {
      SCOPED_TRACE(threads);
      Result<T> r = in.Make<T>(x);
      r.Forward(x, threads);
      r.Backward(x, threads);
      EXPECT_TRUE(BitwiseEqual(r.out, base.out));
      EXPECT_TRUE(BitwiseEqual(r.lse, base.lse));
      EXPECT_TRUE(BitwiseEqual(r.dq, base.dq));
      EXPECT_TRUE(BitwiseEqual(r.dk, base.dk));
      EXPECT_TRUE(BitwiseEqual(r.dv, base.dv));
    }
  }
}

TEST(AttentionThreadsTest, BitwiseIdenticalFloat) { CheckThreadIndependence<float>(); }
TEST(AttentionThreadsTest, BitwiseIdenticalDouble) { CheckThreadIndependence<double>(); }

// On x86-64 CPUs with AVX2 the kernels run an AVX2 build of the same math; it must give exactly
// the generic build's bits (same operations in the same order, only wider vectors).
template <typename T>
void CheckIsaBuildsAgree() {
  if (std::string(AttentionIsa()) == "generic") GTEST_SKIP() << "no AVX2 build on this CPU";
  for (const Shape& x : {Shape{1, 130, 6, 1, 16}, Shape{2, 200, 8, 2, 12}, Shape{2, 256, 8, 4, 32}}) {
    SCOPED_TRACE(::testing::PrintToString(x));
    const Inputs in(x, 31);
    Result<T> fast = in.Make<T>(x);
    fast.Forward(x, 2);
    fast.Backward(x, 2);
    SetAttentionGenericOnly(true);
    EXPECT_EQ(std::string(AttentionIsa()), "generic");
    Result<T> generic = in.Make<T>(x);
    generic.Forward(x, 2);
    generic.Backward(x, 2);
    SetAttentionGenericOnly(false);
    EXPECT_TRUE(BitwiseEqual(fast.out, generic.out));
    EXPECT_TRUE(BitwiseEqual(fast.lse, generic.lse));
    EXPECT_TRUE(BitwiseEqual(fast.dq, generic.dq));
    EXPECT_TRUE(BitwiseEqual(fast.dk, generic.dk));
    EXPECT_TRUE(BitwiseEqual(fast.dv, generic.dv));
  }
}

TEST(AttentionIsaTest, Avx2AndGenericBuildsAgreeBitwiseFloat) { CheckIsaBuildsAgree<float>(); }
TEST(AttentionIsaTest, Avx2AndGenericBuildsAgreeBitwiseDouble) { CheckIsaBuildsAgree<double>(); }

TEST(AttentionWorkspaceTest, DoesNotGrowWithSequenceLength) {
  EXPECT_EQ(AttentionWorkspaceElems(512, 8, 64, 2), AttentionWorkspaceElems(8192, 8, 64, 2));
  EXPECT_EQ(AttentionWorkspaceElems(512, 8, 64, 4), 2 * AttentionWorkspaceElems(512, 8, 64, 2));
}

}  // namespace
}  // namespace moetrain::kernels

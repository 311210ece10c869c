// Grouped expert matmul against a per-expert float64 reference, finite differences for the
// backward, untouched weight gradients of empty experts, and float vs double; the OpenMP panel
// path (single-threaded BLAS) against the reference and bitwise equal for 1, 2 and 3 threads.
#include "kernels/grouped_matmul.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/threads.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

extern "C" int openblas_get_num_threads(void);
extern "C" void openblas_set_num_threads(int num_threads);

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::CentralDifference;
using ::moetrain::testing::Dot;
using ::moetrain::testing::RandomVector;
using ::moetrain::testing::RelativeL2Error;

constexpr int64_t kIn = 7, kOut = 5;

std::vector<int32_t> Offsets(const std::vector<int32_t>& counts) {
  std::vector<int32_t> off(counts.size() + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) off[i + 1] = off[i] + counts[i];
  return off;
}

// Experts' weights as E separate (out, in) buffers, and the pointer arrays the kernel takes.
template <typename T>
struct Weights {
  std::vector<std::vector<T>> w, dw;
  std::vector<const T*> w_ptr;
  std::vector<T*> dw_ptr;
  Weights(int64_t e, uint64_t seed) {
    for (int64_t i = 0; i < e; ++i) {
      w.push_back(RandomVector<T>(kOut * kIn, seed + 2 * i));
      dw.push_back(RandomVector<T>(kOut * kIn, seed + 2 * i + 1));  // non-zero: checks +=
    }
    for (int64_t i = 0; i < e; ++i) {
      w_ptr.push_back(w[i].data());
      dw_ptr.push_back(dw[i].data());
    }
  }
};

// y(M,out) = x_rows @ w[e]^T per expert, in float64.
std::vector<double> RefForward(const std::vector<double>& x,
                               const std::vector<std::vector<double>>& w,
                               const std::vector<int32_t>& off) {
  const int64_t m = off.back();
  std::vector<double> y(m * kOut, 0.0);
  for (size_t g = 0; g + 1 < off.size(); ++g)
    for (int64_t r = off[g]; r < off[g + 1]; ++r)
      for (int64_t o = 0; o < kOut; ++o) {
        double acc = 0;
        for (int64_t i = 0; i < kIn; ++i) acc += x[r * kIn + i] * w[g][o * kIn + i];
        y[r * kOut + o] = acc;
      }
  return y;
}

template <typename T>
std::vector<std::vector<double>> ToDouble(const std::vector<std::vector<T>>& v) {
  std::vector<std::vector<double>> out;
  for (const auto& x : v) out.push_back(Cast<double>(x));
  return out;
}

template <typename T>
void CheckAgainstReference(const std::vector<int32_t>& counts, uint64_t seed) {
  const int64_t e = counts.size();
  const auto off = Offsets(counts);
  const int64_t m = off.back();
  SCOPED_TRACE(std::string(sizeof(T) == 4 ? "float" : "double") + " E=" + std::to_string(e) +
               " M=" + std::to_string(m));
  const double tol = sizeof(T) == 4 ? 2e-6 : 1e-13;
  const auto x = RandomVector<T>(m * kIn, seed);
  const auto dy = RandomVector<T>(m * kOut, seed + 1);
  Weights<T> wt(e, seed + 2);
  const auto dw0 = wt.dw;  // bitwise copy of the starting gradients

  std::vector<T> y(m * kOut, T(-9));
  GroupedMatmulForward(y.data(), x.data(), wt.w_ptr.data(), off.data(), e, kIn, kOut);
  const auto wd = ToDouble(wt.w);
  EXPECT_TRUE(AllClose(y, RefForward(Cast<double>(x), wd, off), tol, tol, "y"));

  std::vector<T> dx(m * kIn, T(-9));
  GroupedMatmulBackward(dx.data(), wt.dw_ptr.data(), dy.data(), x.data(), wt.w_ptr.data(),
                        off.data(), e, kIn, kOut);
  std::vector<double> ref_dx(m * kIn, 0.0);
  for (int64_t g = 0; g < e; ++g) {
    std::vector<double> ref_dw = Cast<double>(dw0[g]);
    for (int64_t r = off[g]; r < off[g + 1]; ++r)
      for (int64_t o = 0; o < kOut; ++o)
        for (int64_t i = 0; i < kIn; ++i) {
          ref_dx[r * kIn + i] += double(dy[r * kOut + o]) * wd[g][o * kIn + i];
          ref_dw[o * kIn + i] += double(dy[r * kOut + o]) * double(x[r * kIn + i]);
        }
    if (counts[g] == 0) {
      EXPECT_EQ(std::memcmp(wt.dw[g].data(), dw0[g].data(), sizeof(T) * kOut * kIn), 0)
          << "dw of empty expert " << g << " was touched";
    } else {
      EXPECT_TRUE(AllClose(wt.dw[g], ref_dw, tol, tol, "dw[" + std::to_string(g) + "]"));
    }
  }
  EXPECT_TRUE(AllClose(dx, ref_dx, tol, tol, "dx"));

  // dx == nullptr only accumulates dw (a second time).
  GroupedMatmulBackward<T>(nullptr, wt.dw_ptr.data(), dy.data(), x.data(), wt.w_ptr.data(),
                           off.data(), e, kIn, kOut);
  for (int64_t g = 0; g < e; ++g) {
    if (counts[g] == 0) {
      EXPECT_EQ(std::memcmp(wt.dw[g].data(), dw0[g].data(), sizeof(T) * kOut * kIn), 0);
    }
  }
}

const std::vector<std::vector<int32_t>> kCountCases = {
    {1},                       // E = 1, a single row
    {37},                      // E = 1
    {3, 0, 5},                 // empty middle expert
    {0, 7, 0},                 // empty first and last
    {0, 0, 0},                 // no rows at all (M = 0)
    {2, 1, 0, 9, 0, 4, 1, 6},  // E = 8, two empty
};

TEST(GroupedMatmulTest, MatchesPerExpertReference) {
  uint64_t seed = 1;
  for (const auto& counts : kCountCases) {
    CheckAgainstReference<float>(counts, seed += 100);
    CheckAgainstReference<double>(counts, seed += 100);
  }
}

TEST(GroupedMatmulTest, BackwardMatchesFiniteDifferences) {
  // L = <R, y(x, w)>; dL/dx = dx with dy = R, dL/dw[e] = the dw accumulated from zero.
  double worst = 0;
  for (const auto& counts : kCountCases) {
    const int64_t e = counts.size();
    const auto off = Offsets(counts);
    const int64_t m = off.back();
    SCOPED_TRACE("E=" + std::to_string(e) + " M=" + std::to_string(m));
    auto x = RandomVector<double>(m * kIn, 11);
    const auto r = RandomVector<double>(m * kOut, 12);
    Weights<double> wt(e, 13);
    for (auto& d : wt.dw) std::fill(d.begin(), d.end(), 0.0);

    std::vector<double> y(m * kOut);
    auto loss = [&] {
      GroupedMatmulForward(y.data(), x.data(), wt.w_ptr.data(), off.data(), e, kIn, kOut);
      return Dot(r, y);
    };
    std::vector<double> dx(m * kIn);
    GroupedMatmulBackward(dx.data(), wt.dw_ptr.data(), r.data(), x.data(), wt.w_ptr.data(),
                          off.data(), e, kIn, kOut);

    std::vector<double> fd_x(m * kIn);
    for (size_t i = 0; i < fd_x.size(); ++i) fd_x[i] = CentralDifference(x, i, 1e-4, loss);
    EXPECT_TRUE(AllClose(dx, fd_x, 1e-8, 1e-9, "dx vs fd"));
    if (m > 0) worst = std::max(worst, RelativeL2Error(dx, fd_x));
    for (int64_t g = 0; g < e; ++g) {
      std::vector<double> fd_w(kOut * kIn);
      for (size_t i = 0; i < fd_w.size(); ++i) fd_w[i] = CentralDifference(wt.w[g], i, 1e-4, loss);
      EXPECT_TRUE(AllClose(wt.dw[g], fd_w, 1e-8, 1e-9, "dw[" + std::to_string(g) + "] vs fd"));
      if (counts[g] > 0) worst = std::max(worst, RelativeL2Error(wt.dw[g], fd_w));
    }
  }
  std::printf("grouped matmul backward: worst norm-wise rel err vs finite differences = %.3g\n",
              worst);
}

TEST(GroupedMatmulTest, FloatMatchesDouble) {
  const std::vector<int32_t> counts = {2, 1, 0, 9, 0, 4, 1, 6};
  const int64_t e = counts.size();
  const auto off = Offsets(counts);
  const int64_t m = off.back();
  const auto xd = RandomVector<double>(m * kIn, 21);
  const auto dyd = RandomVector<double>(m * kOut, 22);
  Weights<double> wd(e, 23);
  Weights<float> wf(e, 23);  // same seeds: the float weights are the double ones rounded
  for (int64_t g = 0; g < e; ++g) {
    std::copy(wf.w[g].begin(), wf.w[g].end(), wd.w[g].begin());  // keeps w_ptr valid
    std::fill(wd.dw[g].begin(), wd.dw[g].end(), 0.0);
    std::fill(wf.dw[g].begin(), wf.dw[g].end(), 0.0f);
  }
  const auto xf = Cast<float>(xd), dyf = Cast<float>(dyd);
  const auto xr = Cast<double>(xf), dyr = Cast<double>(dyf);

  std::vector<double> yd(m * kOut), dxd(m * kIn);
  std::vector<float> yf(m * kOut), dxf(m * kIn);
  GroupedMatmulForward(yd.data(), xr.data(), wd.w_ptr.data(), off.data(), e, kIn, kOut);
  GroupedMatmulForward(yf.data(), xf.data(), wf.w_ptr.data(), off.data(), e, kIn, kOut);
  GroupedMatmulBackward(dxd.data(), wd.dw_ptr.data(), dyr.data(), xr.data(), wd.w_ptr.data(),
                        off.data(), e, kIn, kOut);
  GroupedMatmulBackward(dxf.data(), wf.dw_ptr.data(), dyf.data(), xf.data(), wf.w_ptr.data(),
                        off.data(), e, kIn, kOut);
  EXPECT_LT(RelativeL2Error(yf, yd), 1e-5);
  EXPECT_LT(RelativeL2Error(dxf, dxd), 1e-5);
  EXPECT_TRUE(AllClose(yf, yd, 1e-5, 1e-5, "y float vs double"));
  EXPECT_TRUE(AllClose(dxf, dxd, 1e-5, 1e-5, "dx float vs double"));
  for (int64_t g = 0; g < e; ++g) {
    EXPECT_LT(RelativeL2Error(wf.dw[g], wd.dw[g]), 1e-5) << "dw[" << g << "]";
    EXPECT_TRUE(AllClose(wf.dw[g], wd.dw[g], 1e-5, 1e-5, "dw float vs double"));
  }
}

// With SetNumThreads the kernel runs every expert's products as BLAS panels in one OpenMP region.
// Sizes large enough that big experts are cut into several panels; an empty expert and an expert
// without a weight gradient (dw[g] == nullptr) are in the mix.
TEST(GroupedMatmulTest, OpenMpPanelPathMatchesReferenceAndIsThreadCountIndependent) {
  const int saved_omp = omp_get_max_threads(), saved_blas = openblas_get_num_threads();
  const int64_t in = 160, out = 272;
  const std::vector<int32_t> counts = {300, 0, 17, 520, 129};
  const int64_t e = counts.size();
  const auto off = Offsets(counts);
  const int64_t m = off.back();
  const auto x = RandomVector<double>(m * in, 41), dy = RandomVector<double>(m * out, 42);
  std::vector<std::vector<double>> w, dw0;
  for (int64_t g = 0; g < e; ++g) {
    w.push_back(RandomVector<double>(out * in, 43 + g));
    dw0.push_back(RandomVector<double>(out * in, 53 + g));
  }
  // float64 reference.
  std::vector<double> y_ref(m * out, 0.0), dx_ref(m * in, 0.0);
  auto dw_ref = dw0;
  for (int64_t g = 0; g < e; ++g)
    for (int64_t r = off[g]; r < off[g + 1]; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double acc = 0;
        for (int64_t i = 0; i < in; ++i) {
          acc += x[r * in + i] * w[g][o * in + i];
          dx_ref[r * in + i] += dy[r * out + o] * w[g][o * in + i];
          dw_ref[g][o * in + i] += dy[r * out + o] * x[r * in + i];
        }
        y_ref[r * out + o] = acc;
      }

  const auto xf = Cast<float>(x), dyf = Cast<float>(dy);
  std::vector<std::vector<float>> wf;
  for (const auto& v : w) wf.push_back(Cast<float>(v));
  std::vector<const float*> w_ptr;
  for (const auto& v : wf) w_ptr.push_back(v.data());
  std::vector<float> first_y, first_dx;
  std::vector<std::vector<float>> first_dw;
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    SetNumThreads(threads);
    std::vector<std::vector<float>> dwf;
    for (const auto& v : dw0) dwf.push_back(Cast<float>(v));
    std::vector<float*> dw_ptr;
    for (auto& v : dwf) dw_ptr.push_back(v.data());
    dw_ptr[2] = nullptr;  // no weight gradient for expert 2
    std::vector<float> y(m * out, -9.f), dx(m * in, -9.f);
    GroupedMatmulForward(y.data(), xf.data(), w_ptr.data(), off.data(), e, in, out);
    GroupedMatmulBackward(dx.data(), dw_ptr.data(), dyf.data(), xf.data(), w_ptr.data(),
                          off.data(), e, in, out);
    EXPECT_TRUE(AllClose(y, y_ref, 1e-4, 1e-4, "y"));
    EXPECT_TRUE(AllClose(dx, dx_ref, 1e-4, 1e-4, "dx"));
    for (int64_t g = 0; g < e; ++g) {
      if (g == 2 || counts[g] == 0) {  // untouched
        EXPECT_TRUE(AllClose(dwf[g], Cast<float>(dw0[g]), 0, 0, "dw[" + std::to_string(g) + "]"));
      } else {
        EXPECT_TRUE(AllClose(dwf[g], dw_ref[g], 1e-4, 1e-4, "dw[" + std::to_string(g) + "]"));
      }
    }
    if (first_y.empty()) {
      first_y = y;
      first_dx = dx;
      first_dw = dwf;
    } else {
      EXPECT_EQ(std::memcmp(y.data(), first_y.data(), y.size() * sizeof(float)), 0) << "y bits";
      EXPECT_EQ(std::memcmp(dx.data(), first_dx.data(), dx.size() * sizeof(float)), 0) << "dx bits";
      for (int64_t g = 0; g < e; ++g)
        EXPECT_EQ(std::memcmp(dwf[g].data(), first_dw[g].data(), dwf[g].size() * sizeof(float)), 0)
            << "dw[" << g << "] bits";
    }
  }
  omp_set_num_threads(saved_omp);
  openblas_set_num_threads(saved_blas);
}

}  // namespace
}  // namespace moetrain::kernels

// CPU matmuls: cblas ?gemm (row-major), parallelised over our own OpenMP threads.
//
// One thread pool. When BLAS is single-threaded (what SetNumThreads in core/threads.h configures),
// Matmul cuts C into panels along its larger dimension (rows of C when m >= n, else columns) and
// the OpenMP threads run single-threaded ?gemm calls on them. The alternative, BLAS's own thread
// pool next to the OpenMP pool of every other kernel, makes the two pools spin against each other
// on a small machine: on 2 cores a 2048x256x256 sgemm took 6.4 ms that way and 1.6 ms this way,
// and the RMSNorm right after it 8 ms instead of 0.4 ms (docs/PERF.md, "Training throughput").
// When BLAS has threads of its own (nobody called SetNumThreads), Matmul is one plain ?gemm call
// and BLAS does the threading, as before.
//
// Determinism: the panels depend on (m, n, k) only, never on the thread count, and each panel is
// one ?gemm call whatever thread runs it. So results are bitwise identical for any number of
// threads (tested in tests/kernels/matmul_test.cc and, for a whole training step, in
// tests/model/thread_determinism_test.cc) — parameter gradients dW += dy^T x included. (This is
// not true of BLAS's own threading: OpenBLAS 0.3.21 gives different bits for 1 and 2 threads in
// 5-10% of the elements of such products, because its kernels round an element differently
// depending on where it falls in the call's tiling. For the same reason the panel layout below
// must not change with the thread count.)
// Panel count: a power of two (so 2, 4, 8 threads share panels evenly), at most kMaxPanels, each
// panel at least kMinPanelDim wide (every panel repacks the whole other operand) and at least
// kMinPanelWork multiply-adds.
#include "kernels/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/gemm_panels.h"

extern "C" int openblas_get_num_threads(void);

namespace moetrain::kernels {
namespace {

constexpr int64_t kMaxPanels = 8;
constexpr int64_t kMinPanelDim = 128;
constexpr int64_t kMinPanelWork = int64_t{1} << 25;
// Panel edges are multiples of this (the BLAS micro-kernels' register tiles divide it).
constexpr int64_t kPanelAlign = 16;

void Gemm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
          int64_t m, int64_t n, int64_t k, bool ta, bool tb, float alpha, float beta) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}
void Gemm(double* c, int64_t ldc, const double* a, int64_t lda, const double* b, int64_t ldb,
          int64_t m, int64_t n, int64_t k, bool ta, bool tb, double alpha, double beta) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

namespace internal {

bool BlasThreadsItself() { return openblas_get_num_threads() > 1; }

int64_t GemmPanels(int64_t m, int64_t n, int64_t k) {
  if (m == 0 || n == 0 || k == 0 || BlasThreadsItself()) return 1;
  const int64_t limit =
      std::min({kMaxPanels, std::max(m, n) / kMinPanelDim, m * n * k / kMinPanelWork});
  int64_t parts = 1;
  while (parts * 2 <= limit) parts *= 2;
  return parts;
}

template <typename T>
void GemmPanel(T* c, const T* a, const T* b, int64_t m, int64_t n, int64_t k, bool trans_a,
               bool trans_b, T alpha, T beta, int64_t p, int64_t parts) {
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  const bool split_rows = m >= n;
  const int64_t dim = split_rows ? m : n;
  // Start of panel q over [0, dim), aligned to kPanelAlign (the last panel takes the rest).
  auto start = [&](int64_t q) {
    if (q >= parts) return dim;
    const int64_t units = (dim + kPanelAlign - 1) / kPanelAlign;
    return std::min(dim, units * q / parts * kPanelAlign);
  };
  const int64_t lo = start(p), hi = start(p + 1);
  if (hi <= lo) return;
  if (split_rows) {  // rows lo..hi of C and of op(a)
    Gemm(c + lo * n, n, trans_a ? a + lo : a + lo * lda, lda, b, ldb, hi - lo, n, k, trans_a,
         trans_b, alpha, beta);
  } else {  // columns lo..hi of C and of op(b)
    Gemm(c + lo, n, a, lda, trans_b ? b + lo * ldb : b + lo, ldb, m, hi - lo, k, trans_a, trans_b,
         alpha, beta);
  }
}

template void GemmPanel<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, bool,
                               bool, float, float, int64_t, int64_t);
template void GemmPanel<double>(double*, const double*, const double*, int64_t, int64_t, int64_t,
                                bool, bool, double, double, int64_t, int64_t);

}  // namespace internal

template <typename T>
void Matmul(T* c, const T* a, const T* b, int64_t m, int64_t n, int64_t k, bool trans_a,
            bool trans_b, T alpha, T beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C untouched when k == 0 only if beta == 1; make it explicit.
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == T(0) ? T(0) : beta * c[i];
    return;
  }
  const int64_t parts = internal::GemmPanels(m, n, k);
  if (parts == 1) {
    Gemm(c, n, a, trans_a ? m : k, b, trans_b ? k : n, m, n, k, trans_a, trans_b, alpha, beta);
    return;
  }
  // Inside another parallel region this runs on one thread (no nesting): the same panels.
  const int threads = static_cast<int>(std::min<int64_t>(parts, omp_get_max_threads()));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t p = 0; p < parts; ++p)
    internal::GemmPanel(c, a, b, m, n, k, trans_a, trans_b, alpha, beta, p, parts);
}

template <typename T>
void BatchedMatmul(T* c, const T* a, const T* b, int64_t batch, int64_t m, int64_t n, int64_t k,
                   bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                   T alpha, T beta) {
  for (int64_t i = 0; i < batch; ++i)
    Matmul(c + i * stride_c, a + i * stride_a, b + i * stride_b, m, n, k, trans_a, trans_b, alpha,
           beta);
}

template <typename T>
void LinearForward(T* y, const T* x, const T* w, int64_t n, int64_t in, int64_t out) {
  Matmul(y, x, w, n, out, in, false, true);
}

template <typename T>
void LinearBackward(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t n, int64_t in,
                    int64_t out) {
  if (dx != nullptr) Matmul(dx, dy, w, n, in, out, false, false);
  if (dw != nullptr) Matmul(dw, dy, x, out, in, n, true, false, T(1), T(1));
}

#define MT_INSTANTIATE(T)                                                                        \
  template void Matmul<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, bool, bool, T, T);  \
  template void BatchedMatmul<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool, \
                                 bool, int64_t, int64_t, int64_t, T, T);                         \
  template void LinearForward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);             \
  template void LinearBackward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels

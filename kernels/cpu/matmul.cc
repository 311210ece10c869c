// CPU matmuls: thin wrappers over cblas ?gemm (row-major).
#include "kernels/matmul.h"

#include <cblas.h>

namespace moetrain::kernels {
namespace {

void Gemm(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
          float alpha, float beta) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}
void Gemm(double* c, const double* a, const double* b, int64_t m, int64_t n, int64_t k, bool ta,
          bool tb, double alpha, double beta) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

}  // namespace

template <typename T>
void Matmul(T* c, const T* a, const T* b, int64_t m, int64_t n, int64_t k, bool trans_a,
            bool trans_b, T alpha, T beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C untouched when k == 0 only if beta == 1; make it explicit.
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == T(0) ? T(0) : beta * c[i];
    return;
  }
  Gemm(c, a, b, m, n, k, trans_a, trans_b, alpha, beta);
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

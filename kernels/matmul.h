// Dense matrix products on the CPU through BLAS (OpenBLAS cblas_sgemm / cblas_dgemm).
//
// All matrices are row-major and contiguous. T is float or double.
// Gradient rule (used by every kernel in this folder): parameter gradients ACCUMULATE (+=),
// activation gradients OVERWRITE (=), unless a function says otherwise.
// Threads: with single-threaded BLAS (SetNumThreads in core/threads.h) a product is cut into
// panels of C, a function of (m, n, k) only, that run on the OpenMP threads: results are then
// bitwise identical for any thread count, parameter gradients included. Otherwise (BLAS has its own
// threads) it is one BLAS call, threaded by BLAS, whose bits may change with BLAS's thread count.
// Don't call these from inside an OpenMP parallel region (they would run on one thread).
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// c(m,n) = alpha * op(a) * op(b) + beta * c(m,n)
// op(a) is (m,k): a is (m,k), or (k,m) when trans_a. op(b) is (k,n): b is (k,n), or (n,k) when trans_b.
template <typename T>
void Matmul(T* c, const T* a, const T* b, int64_t m, int64_t n, int64_t k, bool trans_a,
            bool trans_b, T alpha = T(1), T beta = T(0));

// `batch` independent Matmuls; matrix i of a/b/c starts at a + i*stride_a etc.
template <typename T>
void BatchedMatmul(T* c, const T* a, const T* b, int64_t batch, int64_t m, int64_t n, int64_t k,
                   bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                   T alpha = T(1), T beta = T(0));

// Linear layer without bias, PyTorch convention: y(N,out) = x(N,in) @ w(out,in)^T.
template <typename T>
void LinearForward(T* y, const T* x, const T* w, int64_t n, int64_t in, int64_t out);

// dx(N,in) = dy(N,out) @ w(out,in)   (overwrite; skipped when dx == nullptr)
// dw(out,in) += dy^T @ x             (accumulate; skipped when dw == nullptr)
template <typename T>
void LinearBackward(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t n, int64_t in,
                    int64_t out);

}  // namespace moetrain::kernels

// Internal to kernels/cpu/: the panel decomposition of a GEMM that Matmul (matmul.cc) runs on the
// OpenMP threads, shared with the grouped expert matmul so that both cut products the same way.
// See kernels/cpu/matmul.cc for why the panels are a function of the shape only (bitwise results
// for any thread count).
#pragma once

#include <cstdint>

namespace moetrain::kernels::internal {

// True when BLAS runs its own threads (SetNumThreads was not called): then every product must be
// one BLAS call from outside any parallel region, and GemmPanels returns 1.
bool BlasThreadsItself();

// Number of panels of c(m,n) = op(a)(m,k) op(b)(k,n); a power of two, 1 = one plain BLAS call.
int64_t GemmPanels(int64_t m, int64_t n, int64_t k);

// Panel p of `parts` (= GemmPanels(m, n, k)) of c = alpha op(a) op(b) + beta c, as one
// single-threaded BLAS call; the same arguments as kernels::Matmul. Callable from any thread.
// REQUIRES: m, n, k > 0, BLAS single-threaded (!BlasThreadsItself()) when called concurrently.
template <typename T>
void GemmPanel(T* c, const T* a, const T* b, int64_t m, int64_t n, int64_t k, bool trans_a,
               bool trans_b, T alpha, T beta, int64_t p, int64_t parts);

}  // namespace moetrain::kernels::internal

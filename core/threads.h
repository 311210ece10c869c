// Thread configuration for CPU kernels: one OpenMP thread pool for everything.
// SetNumThreads(n) gives OpenMP n threads and makes OpenBLAS single-threaded: our Matmul
// (kernels/matmul.h) runs single-threaded BLAS calls on its own OpenMP threads, so no second pool
// spins against the first (on 2 cores that contention made small GEMMs and every element-wise
// kernel after them 4-20x slower; docs/PERF.md). n <= 0: leave the defaults (then BLAS keeps its
// own threads and Matmul is a plain BLAS call). Call it once at start-up, outside any parallel
// region.
#pragma once

namespace moetrain {
void SetNumThreads(int n);
int NumThreads();
}  // namespace moetrain

// Thread configuration for CPU kernels: OpenMP loops in our kernels and OpenBLAS's own threads.
// SetNumThreads(n) sets both (n <= 0: leave the defaults). Call it once at start-up, outside
// any parallel region; BLAS is never called from inside an OpenMP parallel region.
#pragma once

namespace moetrain {
void SetNumThreads(int n);
int NumThreads();
}  // namespace moetrain

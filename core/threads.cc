#include "core/threads.h"

#include <omp.h>

extern "C" void openblas_set_num_threads(int num_threads);

namespace moetrain {
void SetNumThreads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(1);  // BLAS runs inside our OpenMP threads (kernels/cpu/matmul.cc)
}
int NumThreads() { return omp_get_max_threads(); }
}  // namespace moetrain

// The attention kernels (attention_impl.h) compiled for AVX2; kernels/cpu/attention.cc calls them
// when the CPU supports AVX2. Built only on x86-64 (kernels/CMakeLists.txt).
//
// Every header is included BEFORE the target pragma, so std:: templates and shared inline helpers
// (ExpF) are compiled for the baseline target: if one is not inlined, the linker may keep any TU's
// copy, and an AVX2 copy would crash a CPU without AVX2. Code inside the pragma is all in namespace
// avx2, so nothing from it can be picked for the generic build.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/status.h"
#include "kernels/cpu/fast_exp.h"

#pragma GCC push_options
#pragma GCC target("avx2")
#define MT_ATTENTION_ISA avx2
#include "kernels/cpu/attention_impl.h"
#undef MT_ATTENTION_ISA
#pragma GCC pop_options

namespace moetrain::kernels::avx2 {

#define MT_INSTANTIATE(T)                                                                       \
  template void ForwardImpl<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                               int64_t, int64_t, T*, int);                                      \
  template void BackwardImpl<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,   \
                                const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*, int);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels::avx2

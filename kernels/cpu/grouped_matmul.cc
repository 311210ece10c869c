// CPU grouped expert matmul: one BLAS Matmul per expert that owns rows.
//
// Expert e owns rows [o_e, o_{e+1}) of x / y / dx / dy (m_e = o_{e+1} - o_e of them):
//   forward    y_e  = x_e @ w[e]^T                 (m_e,out) = (m_e,in) (out,in)^T
//   backward   dx_e = dy_e @ w[e]                  (m_e,in)  = (m_e,out) (out,in)      overwrite
//              dw[e] += dy_e^T @ x_e               (out,in)  = (m_e,out)^T (m_e,in)   accumulate
// An expert with m_e = 0 is skipped entirely: no BLAS call, its dw[e] is not touched. The loop over
// experts is sequential; the parallelism is inside BLAS (never call this from an OpenMP region).
// dw == nullptr, or dw[e] == nullptr, skips the weight gradient (of every / of one expert).
#include "kernels/grouped_matmul.h"

#include <cstdint>

#include "core/status.h"
#include "kernels/matmul.h"

namespace moetrain::kernels {
namespace {

// Rows of expert g, checking the offsets are a valid partition as we go.
int64_t GroupRows(const int32_t* offsets, int64_t g) {
  const int64_t rows = static_cast<int64_t>(offsets[g + 1]) - offsets[g];
  MT_CHECK_MSG(rows >= 0, "grouped matmul: offsets must be non-decreasing, offsets[", g,
               "]=", offsets[g], " > offsets[", g + 1, "]=", offsets[g + 1]);
  return rows;
}

}  // namespace

template <typename T>
void GroupedMatmulForward(T* y, const T* x, const T* const* w, const int32_t* offsets, int64_t e,
                          int64_t in, int64_t out) {
  MT_CHECK_MSG(offsets[0] == 0, "grouped matmul: offsets[0] must be 0, got ", offsets[0]);
  for (int64_t g = 0; g < e; ++g) {
    const int64_t rows = GroupRows(offsets, g);
    if (rows == 0) continue;
    const int64_t r0 = offsets[g];
    Matmul(y + r0 * out, x + r0 * in, w[g], rows, out, in, /*trans_a=*/false, /*trans_b=*/true);
  }
}

template <typename T>
void GroupedMatmulBackward(T* dx, T* const* dw, const T* dy, const T* x, const T* const* w,
                           const int32_t* offsets, int64_t e, int64_t in, int64_t out) {
  MT_CHECK_MSG(offsets[0] == 0, "grouped matmul: offsets[0] must be 0, got ", offsets[0]);
  for (int64_t g = 0; g < e; ++g) {
    const int64_t rows = GroupRows(offsets, g);
    if (rows == 0) continue;
    const int64_t r0 = offsets[g];
    if (dx != nullptr)
      Matmul(dx + r0 * in, dy + r0 * out, w[g], rows, in, out, /*trans_a=*/false,
             /*trans_b=*/false);
    if (dw != nullptr && dw[g] != nullptr)
      Matmul(dw[g], dy + r0 * out, x + r0 * in, out, in, rows, /*trans_a=*/true,
             /*trans_b=*/false, T(1), T(1));
  }
}

#define MT_INSTANTIATE(T)                                                                       \
  template void GroupedMatmulForward<T>(T*, const T*, const T* const*, const int32_t*, int64_t, \
                                        int64_t, int64_t);                                      \
  template void GroupedMatmulBackward<T>(T*, T* const*, const T*, const T*, const T* const*,    \
                                         const int32_t*, int64_t, int64_t, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels

// CPU grouped expert matmul: one BLAS Matmul per expert that owns rows.
//
// Expert e owns rows [o_e, o_{e+1}) of x / y / dx / dy (m_e = o_{e+1} - o_e of them):
//   forward    y_e  = x_e @ w[e]^T                 (m_e,out) = (m_e,in) (out,in)^T
//   backward   dx_e = dy_e @ w[e]                  (m_e,in)  = (m_e,out) (out,in)      overwrite
//              dw[e] += dy_e^T @ x_e               (out,in)  = (m_e,out)^T (m_e,in)   accumulate
// An expert with m_e = 0 is skipped entirely: no BLAS call, its dw[e] is not touched.
// dw == nullptr, or dw[e] == nullptr, skips the weight gradient (of every / of one expert).
//
// Threads. With single-threaded BLAS (SetNumThreads), every product is cut into the panels
// Matmul would use (gemm_panels.h) and ONE parallel region runs all panels of all experts (and,
// in backward, of dx and dw together) with a dynamic schedule: one fork/join per call instead of
// one per expert and product, and small experts fill the gaps of large ones. Each panel is the same
// single BLAS call whichever thread runs it, so results are bitwise independent of the thread
// count (dw included). Otherwise (BLAS threads itself) the experts run one after another, one
// BLAS call each, as before. Never call this from inside an OpenMP region.
#include "kernels/grouped_matmul.h"

#include <cstdint>

#include "core/status.h"
#include "kernels/cpu/gemm_panels.h"
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

// Upper bound of GemmPanels, so that (expert, panel) pairs can be enumerated without a task list.
constexpr int64_t kMaxPanelsPerProduct = 8;

template <typename T>
void GroupedMatmulForward(T* y, const T* x, const T* const* w, const int32_t* offsets, int64_t e,
                          int64_t in, int64_t out) {
  MT_CHECK_MSG(offsets[0] == 0, "grouped matmul: offsets[0] must be 0, got ", offsets[0]);
  for (int64_t g = 0; g < e; ++g) GroupRows(offsets, g);  // validate outside the parallel region
  if (internal::BlasThreadsItself()) {
    for (int64_t g = 0; g < e; ++g) {
      const int64_t rows = GroupRows(offsets, g);
      if (rows == 0) continue;
      const int64_t r0 = offsets[g];
      Matmul(y + r0 * out, x + r0 * in, w[g], rows, out, in, /*trans_a=*/false, /*trans_b=*/true);
    }
    return;
  }
  // Task t = (expert g, panel p); tasks beyond an expert's panel count are empty.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < e * kMaxPanelsPerProduct; ++t) {
    const int64_t g = t / kMaxPanelsPerProduct, p = t % kMaxPanelsPerProduct;
    const int64_t rows = static_cast<int64_t>(offsets[g + 1]) - offsets[g];
    if (rows == 0) continue;
    const int64_t parts = internal::GemmPanels(rows, out, in);
    if (p >= parts) continue;
    const int64_t r0 = offsets[g];
    internal::GemmPanel(y + r0 * out, x + r0 * in, w[g], rows, out, in, /*trans_a=*/false,
                        /*trans_b=*/true, T(1), T(0), p, parts);
  }
}

template <typename T>
void GroupedMatmulBackward(T* dx, T* const* dw, const T* dy, const T* x, const T* const* w,
                           const int32_t* offsets, int64_t e, int64_t in, int64_t out) {
  MT_CHECK_MSG(offsets[0] == 0, "grouped matmul: offsets[0] must be 0, got ", offsets[0]);
  for (int64_t g = 0; g < e; ++g) GroupRows(offsets, g);
  if (internal::BlasThreadsItself()) {
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
    return;
  }
  // Task t = (product kind: dw first, the longer ones; expert g; panel p).
  const int64_t per_kind = e * kMaxPanelsPerProduct;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < 2 * per_kind; ++t) {
    const bool is_dw = t < per_kind;
    const int64_t g = (t % per_kind) / kMaxPanelsPerProduct, p = t % kMaxPanelsPerProduct;
    const int64_t rows = static_cast<int64_t>(offsets[g + 1]) - offsets[g];
    if (rows == 0) continue;
    const int64_t r0 = offsets[g];
    if (is_dw) {
      if (dw == nullptr || dw[g] == nullptr) continue;
      const int64_t parts = internal::GemmPanels(out, in, rows);
      if (p < parts)
        internal::GemmPanel(dw[g], dy + r0 * out, x + r0 * in, out, in, rows, /*trans_a=*/true,
                            /*trans_b=*/false, T(1), T(1), p, parts);
    } else {
      if (dx == nullptr) continue;
      const int64_t parts = internal::GemmPanels(rows, in, out);
      if (p < parts)
        internal::GemmPanel(dx + r0 * in, dy + r0 * out, w[g], rows, in, out, /*trans_a=*/false,
                            /*trans_b=*/false, T(1), T(0), p, parts);
    }
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

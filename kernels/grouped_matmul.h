// Grouped expert matmul over variable token counts (rows already in expert-sorted order, see permute.h).
//
// For each expert e with rows [offsets[e], offsets[e+1]):  y_rows = x_rows @ w[e]^T,
// w[e] is (out, in) — the PyTorch/HF layout of expert weights. Experts with zero rows are skipped:
// their weight gradient is left untouched. w and dw are arrays of E pointers, so experts can live
// anywhere (separate ParamTable tensors, gathered ZeRO buffers, the local slice under expert parallel).
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// y(M,out), x(M,in), offsets(E+1) with offsets[E] = M.
template <typename T>
void GroupedMatmulForward(T* y, const T* x, const T* const* w, const int32_t* offsets, int64_t e,
                          int64_t in, int64_t out);

// dx(M,in) = dy @ w[e] per group (overwrite; nullptr skips); dw[e](out,in) += dy_rows^T @ x_rows.
template <typename T>
void GroupedMatmulBackward(T* dx, T* const* dw, const T* dy, const T* x, const T* const* w,
                           const int32_t* offsets, int64_t e, int64_t in, int64_t out);

}  // namespace moetrain::kernels

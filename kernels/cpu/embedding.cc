// CPU token embedding.
//
// Forward is a row gather (parallel over tokens). Backward is a scatter-add; to stay deterministic for
// any thread count it is parallel over blocks of columns, and within a block every table row receives
// its contributions in ascending token order (exactly the sequential order).
#include "kernels/embedding.h"

#include <algorithm>

#include "core/status.h"

namespace moetrain::kernels {
namespace {

constexpr int64_t kColBlock = 64;       // columns per backward work item
constexpr int64_t kParallelMin = 1 << 15;  // elements below which threads cost more than they save

void CheckTokens(const int32_t* tokens, int64_t n, int64_t v) {
  for (int64_t i = 0; i < n; ++i)
    MT_CHECK_MSG(tokens[i] >= 0 && tokens[i] < v, "embedding: token ", tokens[i], " at row ", i,
                 " outside [0, ", v, ")");
}

}  // namespace

template <typename T>
void EmbeddingForward(T* out, const int32_t* tokens, const T* table, int64_t n, int64_t v,
                      int64_t c) {
  CheckTokens(tokens, n, v);  // serially, so a failure aborts outside the parallel region
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T* src = table + static_cast<int64_t>(tokens[i]) * c;
    std::copy(src, src + c, out + i * c);
  }
}

template <typename T>
void EmbeddingBackward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t v,
                       int64_t c) {
  CheckTokens(tokens, n, v);
  const int64_t num_blocks = (c + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    const int64_t j0 = blk * kColBlock;
    const int64_t j1 = std::min(c, j0 + kColBlock);
    for (int64_t i = 0; i < n; ++i) {  // ascending token order
      T* dst = dtable + static_cast<int64_t>(tokens[i]) * c;
      const T* src = dout + i * c;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

template <typename T>
void EmbeddingShardForward(T* out, const int32_t* tokens, const T* table, int64_t n, int64_t v,
                           int64_t c, int64_t v_begin, int64_t v_local) {
  CheckTokens(tokens, n, v);
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = static_cast<int64_t>(tokens[i]) - v_begin;
    if (row >= 0 && row < v_local) {
      const T* src = table + row * c;
      std::copy(src, src + c, out + i * c);
    } else {
      std::fill(out + i * c, out + (i + 1) * c, T(0));
    }
  }
}

template <typename T>
void EmbeddingShardBackward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t v,
                            int64_t c, int64_t v_begin, int64_t v_local) {
  CheckTokens(tokens, n, v);
  const int64_t num_blocks = (c + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    const int64_t j0 = blk * kColBlock;
    const int64_t j1 = std::min(c, j0 + kColBlock);
    for (int64_t i = 0; i < n; ++i) {  // ascending token order
      const int64_t row = static_cast<int64_t>(tokens[i]) - v_begin;
      if (row < 0 || row >= v_local) continue;
      T* dst = dtable + row * c;
      const T* src = dout + i * c;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

#define MT_INSTANTIATE(T)                                                                        \
  template void EmbeddingForward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t);    \
  template void EmbeddingBackward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);    \
  template void EmbeddingShardForward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t, \
                                         int64_t, int64_t);                                       \
  template void EmbeddingShardBackward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t,\
                                          int64_t, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels

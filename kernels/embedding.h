// Token embedding lookup.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// out(N,C) = table(V,C)[tokens(N)]. REQUIRES: 0 <= tokens[i] < V (checked; aborts otherwise —
// token ids are validated by the data layer long before they reach here).
template <typename T>
void EmbeddingForward(T* out, const int32_t* tokens, const T* table, int64_t n, int64_t v, int64_t c);

// dtable(V,C) += scatter of dout(N,C) by tokens (parameter gradient: accumulates). Deterministic:
// rows are summed in token order regardless of thread count.
template <typename T>
void EmbeddingBackward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t v, int64_t c);

}  // namespace moetrain::kernels

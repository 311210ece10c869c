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

// Vocab-parallel shard: table(Vl,C) holds rows [v_begin, v_begin + Vl) of the full (V,C) table.
// out(N,C) = the row for tokens in the shard, 0 for the others (the caller sums over the shards).
// dtable(Vl,C) += scatter of dout rows whose token is in the shard. REQUIRES: 0 <= tokens < v.
template <typename T>
void EmbeddingShardForward(T* out, const int32_t* tokens, const T* table, int64_t n, int64_t v,
                           int64_t c, int64_t v_begin, int64_t v_local);
template <typename T>
void EmbeddingShardBackward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t v,
                            int64_t c, int64_t v_begin, int64_t v_local);

}  // namespace moetrain::kernels

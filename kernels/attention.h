// Causal grouped-query attention, flash style: streaming (online) softmax over key blocks, so no
// T x T matrix is ever stored; memory is O(T) per head (the output plus one log-sum-exp per row).
//
// Layouts: q(B,S,Hq,D), k(B,S,Hkv,D), v(B,S,Hkv,D), out(B,S,Hq,D), lse(B,Hq,S).
// Query head h uses KV head h / (Hq / Hkv). Scale = 1/sqrt(D). Position s attends to 0..s.
// REQUIRES: Hq % Hkv == 0. Workspace: AttentionWorkspaceElems(...) elements of T, caller-owned
// (planned up front; the kernel allocates nothing). Parallel with OpenMP over (b, head, block)
// tasks (schedules in kernels/cpu/attention.cc). REQUIRES: num_threads >= 1, not called from inside an OpenMP parallel region (thread t uses
// workspace slice t). The workspace does not grow with S (a few 64 x 64 and 64 x D tiles per
// thread). Sums are in T; exp is std::exp for double and a vectorised float exp (relative error
// < 1e-7, kernels/cpu/fast_exp.h) for float.
// Determinism: forward and backward results are bitwise identical for any num_threads and from
// run to run (every output element is accumulated in one fixed order; no atomics).
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// Elements of T needed by forward and backward (the larger of the two) for `num_threads` threads.
int64_t AttentionWorkspaceElems(int64_t s, int64_t hq, int64_t d, int num_threads);

// The CPU build of the math that AttentionForward/Backward run: "avx2" on x86-64 CPUs with AVX2,
// else "generic". Both give the same bits (kernels/cpu/attention.cc). SetAttentionGenericOnly(true)
// forces "generic" (for the test that checks the two agree); not thread-safe: call it between
// kernel calls.
const char* AttentionIsa();
void SetAttentionGenericOnly(bool generic_only);

template <typename T>
void AttentionForward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                      int64_t hq, int64_t hkv, int64_t d, T* workspace, int num_threads);

// dq, dk, dv overwritten (activation gradients). Recomputes probabilities from q, k and lse.
template <typename T>
void AttentionBackward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                       const T* out, const T* lse, int64_t b, int64_t s, int64_t hq, int64_t hkv,
                       int64_t d, T* workspace, int num_threads);

}  // namespace moetrain::kernels

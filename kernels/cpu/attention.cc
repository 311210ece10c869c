// CPU causal grouped-query attention, flash style (the FlashAttention-2 algorithm in plain C++).
//
// Math, per query head h, query row i, keys j <= i, scale c = 1/sqrt(D), key head g = h / (Hq/Hkv):
//   Forward (online softmax; keys visited in blocks of kBlock):
//     s_ij = c * q_i . k_j
//     m_i = running max of s_ij,  l_i = running sum of exp(s_ij - m_i),
//     acc_i = running sum of exp(s_ij - m_i) v_j; when m_i grows to m', l_i and acc_i are
//     rescaled by exp(m_i - m').  At the end: out_i = acc_i / l_i,  lse_i = m_i + log(l_i).
//   Backward (probabilities recomputed tile by tile from q, k and the saved lse):
//     P_ij = exp(s_ij - lse_i),  D_i = dO_i . O_i,  dP_ij = dO_i . v_j,  dS_ij = P_ij (dP_ij - D_i)
//     dV_j += P_ij dO_i,   dK_j += c dS_ij q_i,   dQ_i += c dS_ij k_j.
// No S x S matrix exists: the per-thread workspace holds a few (kBlock x kBlock) and
// (kBlock x D) tiles whose size does not depend on S, so memory is O(S) (the tensors themselves).
//
// Arithmetic: each tile product is a register-blocked loop nest (MicroGemm) whose vector lanes
// run over independent outputs; no sum is reassociated, every output element is accumulated in
// one fixed order. Sums are in T (float or double), log in T; exp is internal::ExpT (std::exp for
// double, the vectorised ExpF for float, relative error < 1e-7; kernels/cpu/fast_exp.h).
//
// Parallelism (OpenMP, `num_threads` threads, thread t uses workspace slice t):
//   Forward: one task per (b, query head, query block); each task owns its out / lse rows.
//   Backward: dK/dV of a key head receive contributions from Hq/Hkv query heads and dQ of a row
//   from every key block, so tasks are chosen to own what they write (no atomics, no locks):
//     fused: one task per (b, key head) owns dK/dV of that head and dQ of its query heads
//            (5 tile products per tile, but only B*Hkv tasks);
//     split: pass 1 tasks (b, key head, key block) own dK/dV rows, pass 2 tasks (b, query head,
//            query block) own dQ rows (P and dP recomputed: 7 tile products, many tasks).
//   A cost model on (B*Hkv, num_threads) picks one. Both visit the tiles touching an output row
//   in the same order (dQ: key blocks ascending; dK/dV: query heads, then query blocks ascending)
//   and run the same tile code, so results are BITWISE IDENTICAL for any num_threads and either
//   schedule (tested). REQUIRES: not called from inside an OpenMP parallel region.
//
// Instruction sets: the math lives in attention_impl.h and is compiled twice, for the baseline
// target (namespace generic) and, on x86-64, for AVX2 (namespace avx2, attention_avx2.cc); the
// entry points below pick avx2 when the CPU has it. The two builds give the same bits (the same
// operations in the same order, wider vectors only), and AVX2 runs 1.6x faster at bench-small
// sizes (B=8, S=256, Hq=8, Hkv=4, D=32: forward 11.1 -> 7.0 ms, backward 23.5 -> 13.8 ms, 2 cores).
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/status.h"
#include "kernels/cpu/fast_exp.h"

#define MT_ATTENTION_ISA generic
#include "kernels/cpu/attention_impl.h"
#undef MT_ATTENTION_ISA

namespace moetrain::kernels {

#if defined(MOETRAIN_ATTENTION_AVX2)
namespace avx2 {  // attention_avx2.cc
template <typename T>
void ForwardImpl(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                 int64_t hq, int64_t hkv, int64_t d, T* workspace, int num_threads);
template <typename T>
void BackwardImpl(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                  const T* out, const T* lse, int64_t b, int64_t s, int64_t hq, int64_t hkv,
                  int64_t d, T* workspace, int num_threads);
}  // namespace avx2
#endif

namespace {

bool generic_only = false;

bool UseAvx2() {
#if defined(MOETRAIN_ATTENTION_AVX2)
  static const bool has = __builtin_cpu_supports("avx2");
  return has && !generic_only;
#else
  return false;
#endif
}

void CheckArgs(int64_t b, int64_t s, int64_t hq, int64_t hkv, int64_t d, int num_threads) {
  MT_CHECK_MSG(b >= 0 && s >= 0 && hq > 0 && hkv > 0 && d > 0, "bad attention sizes b=", b,
               " s=", s, " hq=", hq, " hkv=", hkv, " d=", d);
  MT_CHECK_MSG(hq % hkv == 0, "attention needs Hq % Hkv == 0, got Hq=", hq, " Hkv=", hkv);
  MT_CHECK_MSG(num_threads >= 1, "num_threads=", num_threads);
}

}  // namespace

const char* AttentionIsa() { return UseAvx2() ? "avx2" : "generic"; }
void SetAttentionGenericOnly(bool only) { generic_only = only; }

int64_t AttentionWorkspaceElems(int64_t s, int64_t hq, int64_t d, int num_threads) {
  return static_cast<int64_t>(std::max(num_threads, 1)) * generic::SliceElems(d);
}

template <typename T>
void AttentionForward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                      int64_t hq, int64_t hkv, int64_t d, T* workspace, int num_threads) {
  CheckArgs(b, s, hq, hkv, d, num_threads);
#if defined(MOETRAIN_ATTENTION_AVX2)
  if (UseAvx2()) {
    avx2::ForwardImpl(out, lse, q, k, v, b, s, hq, hkv, d, workspace, num_threads);
    return;
  }
#endif
  generic::ForwardImpl(out, lse, q, k, v, b, s, hq, hkv, d, workspace, num_threads);
}

template <typename T>
void AttentionBackward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                       const T* out, const T* lse, int64_t b, int64_t s, int64_t hq, int64_t hkv,
                       int64_t d, T* workspace, int num_threads) {
  CheckArgs(b, s, hq, hkv, d, num_threads);
#if defined(MOETRAIN_ATTENTION_AVX2)
  if (UseAvx2()) {
    avx2::BackwardImpl(dq, dk, dv, dout, q, k, v, out, lse, b, s, hq, hkv, d, workspace,
                       num_threads);
    return;
  }
#endif
  generic::BackwardImpl(dq, dk, dv, dout, q, k, v, out, lse, b, s, hq, hkv, d, workspace,
                        num_threads);
}

#define MT_INSTANTIATE(T)                                                                          \
  template void AttentionForward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,        \
                                    int64_t, int64_t, int64_t, T*, int);                           \
  template void AttentionBackward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                     const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*,    \
                                     int);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels

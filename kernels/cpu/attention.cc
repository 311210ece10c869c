// CPU causal grouped-query attention, flash style (the FlashAttention-2 algorithm in plain C++).
//
// Math, per query head h, query row i, keys j <= i, scale c = 1/sqrt(D), key head g = h / (Hq/Hkv):
//   Forward (online softmax; keys visited in blocks of kBlockK):
//     s_ij = c * q_i . k_j
//     m_i = running max of s_ij,  l_i = running sum of exp(s_ij - m_i),
//     acc_i = running sum of exp(s_ij - m_i) v_j; when m_i grows to m', l_i and acc_i are
//     rescaled by exp(m_i - m').  At the end: out_i = acc_i / l_i,  lse_i = m_i + log(l_i).
//   Backward (probabilities recomputed tile by tile from q, k and the saved lse):
//     P_ij = exp(s_ij - lse_i),  D_i = dO_i . O_i,  dP_ij = dO_i . v_j,  dS_ij = P_ij (dP_ij - D_i)
//     dV_j += P_ij dO_i,   dK_j += c dS_ij q_i,   dQ_i += c dS_ij k_j.
// No S x S matrix exists: the per-thread workspace holds a few (kBlockQ x kBlockK) and
// (kBlock x D) tiles whose size does not depend on S, so memory is O(S) (the tensors themselves).
//
// Vectorisation: the inner loops run over independent outputs (the keys of a block for scores,
// whose key block is transposed into the workspace, and D for the axpys), marked `omp simd`.
// No sum is ever reassociated: every output element is accumulated in one fixed order.
//
// Parallelism (OpenMP, `num_threads` threads, thread t uses workspace slice t):
//   Forward: one task per (b, query head, query block); each task owns its out / lse rows.
//   Backward: dK/dV of a key head receive contributions from Hq/Hkv query heads and dQ of a row
//   from every key block, so tasks are chosen to own what they write (no atomics, no locks):
//     fused: one task per (b, key head) owns dK/dV of that head and dQ of its query heads
//            (5 D-length products per (i, j) pair, but only B*Hkv tasks);
//     split: pass 1 tasks (b, key head, key block) own dK/dV rows, pass 2 tasks (b, query head,
//            query block) own dQ rows (P and dP recomputed: 7 products per pair, many tasks).
//   A cost model on (B*Hkv, num_threads) picks one. Both visit the tiles touching an output row
//   in the same order (dQ: key blocks ascending; dK/dV: query heads, then query blocks ascending)
//   and run the same tile code, so results are BITWISE IDENTICAL for any num_threads and either
//   schedule (tested). REQUIRES: not called from inside an OpenMP parallel region.
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/status.h"

namespace moetrain::kernels {
namespace {

constexpr int64_t kBlockQ = 64;  // query rows per tile
constexpr int64_t kBlockK = 64;  // keys per tile

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Workspace elements per thread (rounded to 16 elements so slices do not share cache lines).
int64_t ForwardSliceElems(int64_t d) { return kBlockK * d + kBlockK + kBlockQ * d + 2 * kBlockQ; }
int64_t BackwardSliceElems(int64_t d) { return 2 * kBlockK * d + 2 * kBlockQ * kBlockK; }
int64_t SliceElems(int64_t d) {
  return CeilDiv(std::max(ForwardSliceElems(d), BackwardSliceElems(d)), 16) * 16;
}

// Sizes and strides of one call. Row i of query head h in batch bi starts at
// q + (bi*S + i)*q_stride + h*D; key/value rows likewise with kv_stride and key head g.
struct Dims {
  int64_t b, s, hq, hkv, d, group;
  int64_t q_stride, kv_stride;
  Dims(int64_t b_, int64_t s_, int64_t hq_, int64_t hkv_, int64_t d_)
      : b(b_), s(s_), hq(hq_), hkv(hkv_), d(d_), group(hq_ / hkv_), q_stride(hq_ * d_),
        kv_stride(hkv_ * d_) {}
  int64_t QOffset(int64_t bi, int64_t h) const { return bi * s * q_stride + h * d; }
  int64_t KvOffset(int64_t bi, int64_t g) const { return bi * s * kv_stride + g * d; }
};

// xt(D, kBlockK) <- rows 0..nj of x (each D contiguous, rows `stride` apart), transposed.
template <typename T>
void LoadTransposed(T* xt, const T* x, int64_t stride, int64_t nj, int64_t d) {
  for (int64_t j = 0; j < nj; ++j) {
    const T* row = x + j * stride;
    for (int64_t e = 0; e < d; ++e) xt[e * kBlockK + j] = row[e];
  }
}

// s[j] = sum_e a[e] * xt[e][j] for j < nj (vector lanes run over keys; e summed in order).
template <typename T>
void RowDots(T* s, const T* a, const T* xt, int64_t nj, int64_t d) {
  for (int64_t j = 0; j < nj; ++j) s[j] = T(0);
  for (int64_t e = 0; e < d; ++e) {
    const T ae = a[e];
    const T* xe = xt + e * kBlockK;
#pragma omp simd
    for (int64_t j = 0; j < nj; ++j) s[j] += ae * xe[j];
  }
}

// y[0..n) += alpha * x[0..n)
template <typename T>
inline void Axpy(T* y, T alpha, const T* x, int64_t n) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) y[e] += alpha * x[e];
}

template <typename T>
void ZeroRows(T* x, int64_t stride, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) std::fill_n(x + r * stride, d, T(0));
}

// ---------------------------------------------------------------------------------------------
// Forward

// Rows i0..i0+kBlockQ of query head h in batch bi.
template <typename T>
void ForwardTask(T* out, T* lse, const T* q, const T* k, const T* v, const Dims& dm, int64_t bi,
                 int64_t h, int64_t i0, T* ws) {
  const int64_t d = dm.d, ni = std::min(kBlockQ, dm.s - i0);
  const T scale = T(1) / std::sqrt(T(d));
  T* kt = ws;                 // (D, kBlockK) transposed key block
  T* srow = kt + kBlockK * d;  // (kBlockK) scores, then probabilities, of one row
  T* acc = srow + kBlockK;     // (kBlockQ, D) unnormalised outputs
  T* m = acc + kBlockQ * d;    // (kBlockQ) running max
  T* l = m + kBlockQ;          // (kBlockQ) running sum
  std::fill_n(acc, ni * d, T(0));
  std::fill_n(m, ni, -std::numeric_limits<T>::infinity());
  std::fill_n(l, ni, T(0));

  const T* qh = q + dm.QOffset(bi, h);
  const int64_t kv_off = dm.KvOffset(bi, h / dm.group);
  const T* kh = k + kv_off;
  const T* vh = v + kv_off;
  const int64_t end_key = i0 + ni;  // keys needed: 0 .. end_key-1
  for (int64_t j0 = 0; j0 < end_key; j0 += kBlockK) {
    const int64_t nj = std::min(kBlockK, end_key - j0);
    LoadTransposed(kt, kh + j0 * dm.kv_stride, dm.kv_stride, nj, d);
    for (int64_t r = std::max<int64_t>(0, j0 - i0); r < ni; ++r) {
      const int64_t i = i0 + r;
      const int64_t nv = std::min(nj, i - j0 + 1);  // causal: keys j0 .. i
      RowDots(srow, qh + i * dm.q_stride, kt, nv, d);
      T m_new = m[r];
      for (int64_t j = 0; j < nv; ++j) {
        srow[j] *= scale;
        m_new = std::max(m_new, srow[j]);
      }
      const T corr = std::exp(m[r] - m_new);  // 0 on the first block (m = -inf)
      T sum = T(0);
      for (int64_t j = 0; j < nv; ++j) {
        srow[j] = std::exp(srow[j] - m_new);
        sum += srow[j];
      }
      l[r] = l[r] * corr + sum;
      m[r] = m_new;
      T* ar = acc + r * d;
#pragma omp simd
      for (int64_t e = 0; e < d; ++e) ar[e] *= corr;
      for (int64_t j = 0; j < nv; ++j) Axpy(ar, srow[j], vh + (j0 + j) * dm.kv_stride, d);
    }
  }
  T* oh = out + dm.QOffset(bi, h);
  T* lse_h = lse + (bi * dm.hq + h) * dm.s;
  for (int64_t r = 0; r < ni; ++r) {
    const T inv = T(1) / l[r];
    T* orow = oh + (i0 + r) * dm.q_stride;
    const T* ar = acc + r * d;
#pragma omp simd
    for (int64_t e = 0; e < d; ++e) orow[e] = ar[e] * inv;
    lse_h[i0 + r] = m[r] + std::log(l[r]);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

template <typename T>
struct BackwardArgs {
  T* dq;
  T* dk;
  T* dv;
  const T* dout;
  const T* q;
  const T* k;
  const T* v;
  const T* out;
  const T* lse;
  Dims dm;
  T scale;
};

// One tile: query rows i0..i0+kBlockQ of head h against keys j0..j0+nj (causal part only),
// with the key and value block already transposed into kt, vt. Adds the tile's contribution to
// dQ rows (want_dq) and/or to dK/dV rows (want_dkdv). p, ds: (kBlockQ, kBlockK) scratch.
// Both backward schedules call exactly this code, so their results agree bit for bit.
template <typename T>
void BackwardTile(const BackwardArgs<T>& a, int64_t bi, int64_t h, int64_t i0, int64_t j0,
                  int64_t nj, const T* kt, const T* vt, T* p, T* ds, bool want_dq,
                  bool want_dkdv) {
  const Dims& dm = a.dm;
  const int64_t d = dm.d, ni = std::min(kBlockQ, dm.s - i0);
  const int64_t r_begin = std::max<int64_t>(0, j0 - i0);  // rows before j0 see none of the keys
  const int64_t q_off = dm.QOffset(bi, h);
  const int64_t kv_off = dm.KvOffset(bi, h / dm.group);
  const T* lse_h = a.lse + (bi * dm.hq + h) * dm.s;

  for (int64_t r = r_begin; r < ni; ++r) {
    const int64_t i = i0 + r;
    const int64_t nv = std::min(nj, i - j0 + 1);
    const int64_t row = q_off + i * dm.q_stride;
    const T* doi = a.dout + row;
    const T* oi = a.out + row;
    T di = T(0);  // D_i = dO_i . O_i, summed in order
    for (int64_t e = 0; e < d; ++e) di += doi[e] * oi[e];
    T* pr = p + r * kBlockK;
    T* dsr = ds + r * kBlockK;
    RowDots(pr, a.q + row, kt, nv, d);
    const T lse_i = lse_h[i];
    for (int64_t j = 0; j < nv; ++j) pr[j] = std::exp(pr[j] * a.scale - lse_i);
    RowDots(dsr, doi, vt, nv, d);  // dP
    for (int64_t j = 0; j < nv; ++j) dsr[j] = pr[j] * (dsr[j] - di) * a.scale;  // c * dS
    if (want_dq) {
      T* dqi = a.dq + row;
      const T* kj = a.k + kv_off + j0 * dm.kv_stride;
      for (int64_t j = 0; j < nv; ++j) Axpy(dqi, dsr[j], kj + j * dm.kv_stride, d);
    }
  }
  if (!want_dkdv) return;
  for (int64_t j = 0; j < nj; ++j) {
    const int64_t kv_row = kv_off + (j0 + j) * dm.kv_stride;
    T* dkj = a.dk + kv_row;
    T* dvj = a.dv + kv_row;
    for (int64_t r = std::max(r_begin, j0 + j - i0); r < ni; ++r) {  // causal: rows i >= j
      const int64_t row = q_off + (i0 + r) * dm.q_stride;
      Axpy(dvj, p[r * kBlockK + j], a.dout + row, d);
      Axpy(dkj, ds[r * kBlockK + j], a.q + row, d);
    }
  }
}

// Fused schedule: everything for key head g of batch bi (dK/dV of g, dQ of its query heads).
template <typename T>
void BackwardFusedTask(const BackwardArgs<T>& a, int64_t bi, int64_t g, T* ws) {
  const Dims& dm = a.dm;
  const int64_t d = dm.d, kv_off = dm.KvOffset(bi, g);
  T* kt = ws;
  T* vt = kt + kBlockK * d;
  T* p = vt + kBlockK * d;
  T* ds = p + kBlockQ * kBlockK;
  ZeroRows(a.dk + kv_off, dm.kv_stride, dm.s, d);
  ZeroRows(a.dv + kv_off, dm.kv_stride, dm.s, d);
  for (int64_t h = g * dm.group; h < (g + 1) * dm.group; ++h)
    ZeroRows(a.dq + dm.QOffset(bi, h), dm.q_stride, dm.s, d);
  for (int64_t j0 = 0; j0 < dm.s; j0 += kBlockK) {
    const int64_t nj = std::min(kBlockK, dm.s - j0);
    LoadTransposed(kt, a.k + kv_off + j0 * dm.kv_stride, dm.kv_stride, nj, d);
    LoadTransposed(vt, a.v + kv_off + j0 * dm.kv_stride, dm.kv_stride, nj, d);
    for (int64_t h = g * dm.group; h < (g + 1) * dm.group; ++h)
      for (int64_t i0 = j0 / kBlockQ * kBlockQ; i0 < dm.s; i0 += kBlockQ)
        BackwardTile(a, bi, h, i0, j0, nj, kt, vt, p, ds, /*want_dq=*/true, /*want_dkdv=*/true);
  }
}

// Split schedule, pass 1: dK/dV rows j0..j0+kBlockK of key head g.
template <typename T>
void BackwardKeyBlockTask(const BackwardArgs<T>& a, int64_t bi, int64_t g, int64_t j0, T* ws) {
  const Dims& dm = a.dm;
  const int64_t d = dm.d, kv_off = dm.KvOffset(bi, g) + j0 * dm.kv_stride;
  const int64_t nj = std::min(kBlockK, dm.s - j0);
  T* kt = ws;
  T* vt = kt + kBlockK * d;
  T* p = vt + kBlockK * d;
  T* ds = p + kBlockQ * kBlockK;
  ZeroRows(a.dk + kv_off, dm.kv_stride, nj, d);
  ZeroRows(a.dv + kv_off, dm.kv_stride, nj, d);
  LoadTransposed(kt, a.k + kv_off, dm.kv_stride, nj, d);
  LoadTransposed(vt, a.v + kv_off, dm.kv_stride, nj, d);
  for (int64_t h = g * dm.group; h < (g + 1) * dm.group; ++h)
    for (int64_t i0 = j0 / kBlockQ * kBlockQ; i0 < dm.s; i0 += kBlockQ)
      BackwardTile(a, bi, h, i0, j0, nj, kt, vt, p, ds, /*want_dq=*/false, /*want_dkdv=*/true);
}

// Split schedule, pass 2: dQ rows i0..i0+kBlockQ of query head h.
template <typename T>
void BackwardQueryBlockTask(const BackwardArgs<T>& a, int64_t bi, int64_t h, int64_t i0, T* ws) {
  const Dims& dm = a.dm;
  const int64_t d = dm.d, kv_off = dm.KvOffset(bi, h / dm.group);
  const int64_t ni = std::min(kBlockQ, dm.s - i0);
  T* kt = ws;
  T* vt = kt + kBlockK * d;
  T* p = vt + kBlockK * d;
  T* ds = p + kBlockQ * kBlockK;
  ZeroRows(a.dq + dm.QOffset(bi, h) + i0 * dm.q_stride, dm.q_stride, ni, d);
  for (int64_t j0 = 0; j0 < i0 + ni; j0 += kBlockK) {
    // Same nj as the other schedules (keys past the block's last row are not loaded: unused).
    const int64_t nj = std::min(kBlockK, dm.s - j0);
    const int64_t nload = std::min(nj, i0 + ni - j0);
    LoadTransposed(kt, a.k + kv_off + j0 * dm.kv_stride, dm.kv_stride, nload, d);
    LoadTransposed(vt, a.v + kv_off + j0 * dm.kv_stride, dm.kv_stride, nload, d);
    BackwardTile(a, bi, h, i0, j0, nj, kt, vt, p, ds, /*want_dq=*/true, /*want_dkdv=*/false);
  }
}

// Makespan model in units of (D-length products per (i, j) pair) * pairs / threads: the fused
// schedule does 5 per pair in B*Hkv equal tasks, the split one 7 per pair in many small tasks.
bool UseFusedBackward(int64_t num_tasks, int num_threads) {
  return 5 * CeilDiv(num_tasks, num_threads) * num_threads <= 7 * num_tasks;
}

void CheckArgs(int64_t b, int64_t s, int64_t hq, int64_t hkv, int64_t d, int num_threads) {
  MT_CHECK_MSG(b >= 0 && s >= 0 && hq > 0 && hkv > 0 && d > 0, "bad attention sizes b=", b,
               " s=", s, " hq=", hq, " hkv=", hkv, " d=", d);
  MT_CHECK_MSG(hq % hkv == 0, "attention needs Hq % Hkv == 0, got Hq=", hq, " Hkv=", hkv);
  MT_CHECK_MSG(num_threads >= 1, "num_threads=", num_threads);
}

}  // namespace

int64_t AttentionWorkspaceElems(int64_t s, int64_t hq, int64_t d, int num_threads) {
  return static_cast<int64_t>(std::max(num_threads, 1)) * SliceElems(d);
}

template <typename T>
void AttentionForward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                      int64_t hq, int64_t hkv, int64_t d, T* workspace, int num_threads) {
  CheckArgs(b, s, hq, hkv, d, num_threads);
  const Dims dm(b, s, hq, hkv, d);
  const int64_t num_qblocks = CeilDiv(s, kBlockQ), slice = SliceElems(d);
  const int64_t num_tasks = b * hq * num_qblocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (int64_t t = 0; t < num_tasks; ++t) {
    // Longest tasks (last query blocks) first.
    const int64_t qb = num_qblocks - 1 - t % num_qblocks, bh = t / num_qblocks;
    ForwardTask(out, lse, q, k, v, dm, bh / hq, bh % hq, qb * kBlockQ,
                workspace + omp_get_thread_num() * slice);
  }
}

template <typename T>
void AttentionBackward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                       const T* out, const T* lse, int64_t b, int64_t s, int64_t hq, int64_t hkv,
                       int64_t d, T* workspace, int num_threads) {
  CheckArgs(b, s, hq, hkv, d, num_threads);
  const BackwardArgs<T> a{dq, dk, dv, dout, q, k, v, out, lse, Dims(b, s, hq, hkv, d),
                          T(1) / std::sqrt(T(d))};
  const int64_t slice = SliceElems(d);
  if (UseFusedBackward(b * hkv, num_threads)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
    for (int64_t t = 0; t < b * hkv; ++t)
      BackwardFusedTask(a, t / hkv, t % hkv, workspace + omp_get_thread_num() * slice);
    return;
  }
  const int64_t num_kblocks = CeilDiv(s, kBlockK), num_qblocks = CeilDiv(s, kBlockQ);
#pragma omp parallel num_threads(num_threads)
  {
    T* ws = workspace + omp_get_thread_num() * slice;
    // Pass 1: key blocks in ascending order (the first ones see the most queries). The passes
    // write disjoint outputs and only read inputs, so neither waits for the other.
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t t = 0; t < b * hkv * num_kblocks; ++t) {
      const int64_t bg = t % (b * hkv), kb = t / (b * hkv);
      BackwardKeyBlockTask(a, bg / hkv, bg % hkv, kb * kBlockK, ws);
    }
    // Pass 2: longest query blocks (the last ones) first.
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t t = 0; t < b * hq * num_qblocks; ++t) {
      const int64_t bh = t % (b * hq), qb = num_qblocks - 1 - t / (b * hq);
      BackwardQueryBlockTask(a, bh / hq, bh % hq, qb * kBlockQ, ws);
    }
  }
}

#define MT_INSTANTIATE(T)                                                                    \
  template void AttentionForward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                    int64_t, int64_t, int64_t, T*, int);                     \
  template void AttentionBackward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,     \
                                     const T*, const T*, int64_t, int64_t, int64_t, int64_t, \
                                     int64_t, T*, int);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels

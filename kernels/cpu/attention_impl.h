// The attention math of kernels/cpu/attention.cc (see there for the algorithm, arithmetic and
// parallel schedules), compiled once per instruction set: attention.cc includes it with
// MT_ATTENTION_ISA = generic (the baseline x86-64 / any target), attention_avx2.cc with
// MT_ATTENTION_ISA = avx2 under `#pragma GCC target("avx2")`. Both builds run the same scalar
// operations in the same order: AVX2 only widens the vector lanes over independent outputs, and
// the target does not include FMA, so no multiply-add is contracted. So they produce the same
// bits (tested: AttentionIsaTest).
// REQUIRES: the includer has included every header this file needs first (so that no std:: or
// shared inline function is ever compiled under the AVX2 target).
// Internal to kernels/cpu/; no include guard on purpose: each includer instantiates its own copy.
#ifndef MT_ATTENTION_ISA
#error "define MT_ATTENTION_ISA (the namespace of this build) before including attention_impl.h"
#endif

namespace moetrain::kernels::MT_ATTENTION_ISA {

// Queries and keys per tile. One size for both keeps tiles aligned to the diagonal: a visited
// tile is either fully visible (query block after key block) or diagonal (the same block).
constexpr int64_t kBlock = 64;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Workspace elements per thread (a multiple of 16, so each slice starts 64-byte aligned if the
// workspace does).
int64_t ForwardSliceElems(int64_t d) { return 2 * kBlock * d + kBlock * kBlock + 2 * kBlock; }
int64_t BackwardSliceElems(int64_t d) { return 2 * kBlock * d + 2 * kBlock * kBlock; }
int64_t SliceElems(int64_t d) {
  return CeilDiv(std::max(ForwardSliceElems(d), BackwardSliceElems(d)), 16) * 16;
}

// Sizes and strides of one call. Row i of query head h in batch bi starts at
// q + (bi*S + i)*q_stride + h*D; key/value rows likewise with kv_stride and key head g.
struct Dims {
  int64_t b, s, hq, hkv, d, group;
  int64_t q_stride, kv_stride;
  Dims(int64_t b_, int64_t s_, int64_t hq_, int64_t hkv_, int64_t d_)
      : b(b_),
        s(s_),
        hq(hq_),
        hkv(hkv_),
        d(d_),
        group(hq_ / hkv_),
        q_stride(hq_ * d_),
        kv_stride(hkv_ * d_) {}
  int64_t QOffset(int64_t bi, int64_t h) const { return bi * s * q_stride + h * d; }
  int64_t KvOffset(int64_t bi, int64_t g) const { return bi * s * kv_stride + g * d; }
};

// Operands of MicroGemm: element (i, l) of a matrix at p[i * row + l * col].
template <typename T>
struct Mat {
  T* p;
  int64_t row, col;
  T& operator()(int64_t i, int64_t l) const { return p[i * row + l * col]; }
};

// c(i, j) += sum_l a(i, l) b(l, j) for one row i and columns j0..n (the blocking's leftovers).
template <typename T>
void MicroGemmRow(Mat<T> c, Mat<const T> a, Mat<const T> b, int64_t i, int64_t j0, int64_t n,
                  int64_t k) {
  T* ci = &c(i, 0);
  for (int64_t l = 0; l < k; ++l) {
    const T ail = a(i, l);
    const T* bl = &b(l, 0);
#pragma omp simd
    for (int64_t j = j0; j < n; ++j) ci[j] += ail * bl[j];
  }
}

// c(m, n) += a(m, k) * b(k, n); c and b must have unit column stride (vector lanes run over j).
// Every c(i, j) is accumulated as c + a(i,0) b(0,j) + a(i,1) b(1,j) + ... in ascending l,
// whatever the blocking, so results do not depend on tile shapes, threads or vector width.
// Register blocking: a kRows x kLanes block of c (8 SSE registers) stays in registers while l
// runs; the unrolled row loop is what lets GCC keep it there (2x faster than without).
template <typename T>
void MicroGemm(Mat<T> c, Mat<const T> a, Mat<const T> b, int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kRows = 4;
  constexpr int64_t kLanes = 32 / sizeof(T);
  int64_t i = 0;
  for (; i + kRows <= m; i += kRows) {
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
      T acc[kRows][kLanes];
      for (int64_t r = 0; r < kRows; ++r)
        for (int64_t t = 0; t < kLanes; ++t) acc[r][t] = c(i + r, j + t);
      for (int64_t l = 0; l < k; ++l) {
        const T* bl = &b(l, j);
#pragma GCC unroll 4
        for (int64_t r = 0; r < kRows; ++r) {
          const T ar = a(i + r, l);
#pragma omp simd
          for (int64_t t = 0; t < kLanes; ++t) acc[r][t] += ar * bl[t];
        }
      }
      for (int64_t r = 0; r < kRows; ++r)
        for (int64_t t = 0; t < kLanes; ++t) c(i + r, j + t) = acc[r][t];
    }
    if (j < n)
      for (int64_t r = 0; r < kRows; ++r) MicroGemmRow(c, a, b, i + r, j, n, k);
  }
  for (; i < m; ++i) MicroGemmRow(c, a, b, i, 0, n, k);
}

// xt(D, kBlock) <- rows 0..nj of x (each D contiguous, rows `stride` apart), transposed.
template <typename T>
void LoadTransposed(T* xt, const T* x, int64_t stride, int64_t nj, int64_t d) {
  for (int64_t j = 0; j < nj; ++j) {
    const T* row = x + j * stride;
    for (int64_t e = 0; e < d; ++e) xt[e * kBlock + j] = row[e];
  }
}

template <typename T>
void ZeroRows(T* x, int64_t stride, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) std::fill_n(x + r * stride, d, T(0));
}

// Query rows i0..i0+ni against keys j0..j0+nj: key j0+j is visible to row i0+r iff
// j0 + j <= i0 + r. Tiles are aligned (i0 >= j0), so every row sees at least key j0.
inline int64_t VisibleKeys(int64_t i0, int64_t r, int64_t j0, int64_t nj) {
  return std::min(nj, i0 + r - j0 + 1);
}

// ---------------------------------------------------------------------------------------------
// Forward

// Rows i0..i0+kBlock of query head h in batch bi.
template <typename T>
void ForwardTask(T* out, T* lse, const T* q, const T* k, const T* v, const Dims& dm, int64_t bi,
                 int64_t h, int64_t i0, T* ws) {
  const int64_t d = dm.d, ni = std::min(kBlock, dm.s - i0);
  const T scale = T(1) / std::sqrt(T(d));
  T* kt = ws;                    // (D, kBlock) transposed key block
  T* p = kt + kBlock * d;        // (kBlock, kBlock) scores, then probabilities
  T* acc = p + kBlock * kBlock;  // (kBlock, D) unnormalised outputs
  T* m = acc + kBlock * d;       // (kBlock) running max
  T* l = m + kBlock;             // (kBlock) running sum
  std::fill_n(acc, ni * d, T(0));
  std::fill_n(m, ni, -std::numeric_limits<T>::infinity());
  std::fill_n(l, ni, T(0));

  const Mat<const T> qm{q + dm.QOffset(bi, h) + i0 * dm.q_stride, dm.q_stride, 1};
  const int64_t kv_off = dm.KvOffset(bi, h / dm.group);
  for (int64_t j0 = 0; j0 <= i0; j0 += kBlock) {
    const int64_t nj = std::min(kBlock, i0 + ni - j0);
    LoadTransposed(kt, k + kv_off + j0 * dm.kv_stride, dm.kv_stride, nj, d);
    std::fill_n(p, ni * kBlock, T(0));
    MicroGemm<T>({p, kBlock, 1}, qm, {kt, kBlock, 1}, ni, nj, d);  // q k^T
    for (int64_t r = 0; r < ni; ++r) {
      T* pr = p + r * kBlock;
      const int64_t nv = VisibleKeys(i0, r, j0, nj);
      T m_new = m[r];
#pragma omp simd reduction(max : m_new)
      for (int64_t j = 0; j < nv; ++j) {
        pr[j] *= scale;
        m_new = pr[j] > m_new ? pr[j] : m_new;  // a max: exact in any order
      }
      const T corr = internal::ExpT(m[r] - m_new);  // 0 on the first block (m = -inf)
#pragma omp simd
      for (int64_t j = 0; j < nv; ++j) pr[j] = internal::ExpT(pr[j] - m_new);
      T sum = T(0);
      for (int64_t j = 0; j < nv; ++j) sum += pr[j];  // in order
      std::fill(pr + nv, pr + nj, T(0));  // masked keys
      l[r] = l[r] * corr + sum;
      m[r] = m_new;
      T* ar = acc + r * d;
#pragma omp simd
      for (int64_t e = 0; e < d; ++e) ar[e] *= corr;
    }
    // acc += p v
    MicroGemm<T>({acc, d, 1}, {p, kBlock, 1}, {v + kv_off + j0 * dm.kv_stride, dm.kv_stride, 1}, ni,
                 d, nj);
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

// One tile: query rows i0..i0+kBlock of head h against keys j0..j0+nj (i0 >= j0), with the key
// and value block already transposed into kt, vt. Adds the tile's contribution to dQ rows
// (want_dq) and/or to dK/dV rows (want_dkdv). p, ds: (kBlock, kBlock) scratch.
// Both backward schedules call exactly this code, so their results agree bit for bit.
template <typename T>
void BackwardTile(const BackwardArgs<T>& a, int64_t bi, int64_t h, int64_t i0, int64_t j0,
                  int64_t nj, const T* kt, const T* vt, T* p, T* ds, bool want_dq, bool want_dkdv) {
  const Dims& dm = a.dm;
  const int64_t d = dm.d, ni = std::min(kBlock, dm.s - i0);
  const int64_t q_off = dm.QOffset(bi, h) + i0 * dm.q_stride;
  const int64_t kv_off = dm.KvOffset(bi, h / dm.group) + j0 * dm.kv_stride;
  const T* lse_h = a.lse + (bi * dm.hq + h) * dm.s + i0;
  const Mat<const T> qm{a.q + q_off, dm.q_stride, 1};
  const Mat<const T> dom{a.dout + q_off, dm.q_stride, 1};

  std::fill_n(p, ni * kBlock, T(0));
  std::fill_n(ds, ni * kBlock, T(0));
  MicroGemm<T>({p, kBlock, 1}, qm, {kt, kBlock, 1}, ni, nj, d);    // q k^T
  MicroGemm<T>({ds, kBlock, 1}, dom, {vt, kBlock, 1}, ni, nj, d);  // dP = dO v^T
  for (int64_t r = 0; r < ni; ++r) {
    const T* doi = &dom(r, 0);
    const T* oi = a.out + q_off + r * dm.q_stride;
    T di = T(0);  // D_i = dO_i . O_i, summed in order
    for (int64_t e = 0; e < d; ++e) di += doi[e] * oi[e];
    T* pr = p + r * kBlock;
    T* dsr = ds + r * kBlock;
    const int64_t nv = VisibleKeys(i0, r, j0, nj);
    const T lse_r = lse_h[r];
#pragma omp simd
    for (int64_t j = 0; j < nv; ++j) {
      pr[j] = internal::ExpT(pr[j] * a.scale - lse_r);
      dsr[j] = pr[j] * (dsr[j] - di) * a.scale;  // c * dS
    }
    std::fill(pr + nv, pr + nj, T(0));  // masked keys contribute exact zeros
    std::fill(dsr + nv, dsr + nj, T(0));
  }
  const Mat<const T> km{a.k + kv_off, dm.kv_stride, 1};
  if (want_dq) MicroGemm<T>({a.dq + q_off, dm.q_stride, 1}, {ds, kBlock, 1}, km, ni, d, nj);
  if (want_dkdv) {  // dV += P^T dO, dK += (c dS)^T q
    MicroGemm<T>({a.dv + kv_off, dm.kv_stride, 1}, {p, 1, kBlock}, dom, nj, d, ni);
    MicroGemm<T>({a.dk + kv_off, dm.kv_stride, 1}, {ds, 1, kBlock}, qm, nj, d, ni);
  }
}

// Backward workspace slice: transposed key and value blocks, then the P and dS tiles.
template <typename T>
struct BackwardScratch {
  T *kt, *vt, *p, *ds;
  BackwardScratch(T* ws, int64_t d)
      : kt(ws), vt(ws + kBlock * d), p(ws + 2 * kBlock * d), ds(p + kBlock * kBlock) {}
  void Load(const BackwardArgs<T>& a, int64_t kv_off, int64_t nj) {
    LoadTransposed(kt, a.k + kv_off, a.dm.kv_stride, nj, a.dm.d);
    LoadTransposed(vt, a.v + kv_off, a.dm.kv_stride, nj, a.dm.d);
  }
};

// Fused schedule: everything for key head g of batch bi (dK/dV of g, dQ of its query heads).
template <typename T>
void BackwardFusedTask(const BackwardArgs<T>& a, int64_t bi, int64_t g, T* ws) {
  const Dims& dm = a.dm;
  const int64_t kv_off = dm.KvOffset(bi, g);
  BackwardScratch<T> sc(ws, dm.d);
  ZeroRows(a.dk + kv_off, dm.kv_stride, dm.s, dm.d);
  ZeroRows(a.dv + kv_off, dm.kv_stride, dm.s, dm.d);
  for (int64_t h = g * dm.group; h < (g + 1) * dm.group; ++h)
    ZeroRows(a.dq + dm.QOffset(bi, h), dm.q_stride, dm.s, dm.d);
  for (int64_t j0 = 0; j0 < dm.s; j0 += kBlock) {
    const int64_t nj = std::min(kBlock, dm.s - j0);
    sc.Load(a, kv_off + j0 * dm.kv_stride, nj);
    for (int64_t h = g * dm.group; h < (g + 1) * dm.group; ++h)
      for (int64_t i0 = j0; i0 < dm.s; i0 += kBlock)
        BackwardTile(a, bi, h, i0, j0, nj, sc.kt, sc.vt, sc.p, sc.ds, /*want_dq=*/true,
                     /*want_dkdv=*/true);
  }
}

// Split schedule, pass 1: dK/dV rows j0..j0+kBlock of key head g.
template <typename T>
void BackwardKeyBlockTask(const BackwardArgs<T>& a, int64_t bi, int64_t g, int64_t j0, T* ws) {
  const Dims& dm = a.dm;
  const int64_t kv_off = dm.KvOffset(bi, g) + j0 * dm.kv_stride;
  const int64_t nj = std::min(kBlock, dm.s - j0);
  BackwardScratch<T> sc(ws, dm.d);
  ZeroRows(a.dk + kv_off, dm.kv_stride, nj, dm.d);
  ZeroRows(a.dv + kv_off, dm.kv_stride, nj, dm.d);
  sc.Load(a, kv_off, nj);
  for (int64_t h = g * dm.group; h < (g + 1) * dm.group; ++h)
    for (int64_t i0 = j0; i0 < dm.s; i0 += kBlock)
      BackwardTile(a, bi, h, i0, j0, nj, sc.kt, sc.vt, sc.p, sc.ds, /*want_dq=*/false,
                   /*want_dkdv=*/true);
}

// Split schedule, pass 2: dQ rows i0..i0+kBlock of query head h.
template <typename T>
void BackwardQueryBlockTask(const BackwardArgs<T>& a, int64_t bi, int64_t h, int64_t i0, T* ws) {
  const Dims& dm = a.dm;
  const int64_t kv_off = dm.KvOffset(bi, h / dm.group);
  BackwardScratch<T> sc(ws, dm.d);
  ZeroRows(a.dq + dm.QOffset(bi, h) + i0 * dm.q_stride, dm.q_stride, std::min(kBlock, dm.s - i0),
           dm.d);
  for (int64_t j0 = 0; j0 <= i0; j0 += kBlock) {
    const int64_t nj = std::min(kBlock, dm.s - j0);
    sc.Load(a, kv_off + j0 * dm.kv_stride, nj);
    BackwardTile(a, bi, h, i0, j0, nj, sc.kt, sc.vt, sc.p, sc.ds, /*want_dq=*/true,
                 /*want_dkdv=*/false);
  }
}

// Makespan model in units of (tile products) * tiles / threads: the fused schedule does 5 per
// tile in B*Hkv equal tasks, the split one 7 per tile in many small tasks.
bool UseFusedBackward(int64_t num_tasks, int num_threads) {
  return 5 * CeilDiv(num_tasks, num_threads) * num_threads <= 7 * num_tasks;
}

template <typename T>
void ForwardImpl(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                 int64_t hq, int64_t hkv, int64_t d, T* workspace, int num_threads) {
  const Dims dm(b, s, hq, hkv, d);
  const int64_t num_qblocks = CeilDiv(s, kBlock), slice = SliceElems(d);
  const int64_t num_tasks = b * hq * num_qblocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (int64_t t = 0; t < num_tasks; ++t) {
    // Longest tasks (last query blocks) first.
    const int64_t bh = t % (b * hq), qb = num_qblocks - 1 - t / (b * hq);
    ForwardTask(out, lse, q, k, v, dm, bh / hq, bh % hq, qb * kBlock,
                workspace + omp_get_thread_num() * slice);
  }
}

template <typename T>
void BackwardImpl(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                  const T* out, const T* lse, int64_t b, int64_t s, int64_t hq, int64_t hkv,
                  int64_t d, T* workspace, int num_threads) {
  const BackwardArgs<T> a{
      dq, dk, dv, dout, q, k, v, out, lse, Dims(b, s, hq, hkv, d), T(1) / std::sqrt(T(d))};
  const int64_t slice = SliceElems(d);
  if (UseFusedBackward(b * hkv, num_threads)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
    for (int64_t t = 0; t < b * hkv; ++t)
      BackwardFusedTask(a, t / hkv, t % hkv, workspace + omp_get_thread_num() * slice);
    return;
  }
  const int64_t num_blocks = CeilDiv(s, kBlock);
#pragma omp parallel num_threads(num_threads)
  {
    T* ws = workspace + omp_get_thread_num() * slice;
    // Pass 1: key blocks in ascending order (the first ones see the most queries). The passes
    // write disjoint outputs and only read inputs, so neither waits for the other.
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t t = 0; t < b * hkv * num_blocks; ++t) {
      const int64_t bg = t % (b * hkv), kb = t / (b * hkv);
      BackwardKeyBlockTask(a, bg / hkv, bg % hkv, kb * kBlock, ws);
    }
    // Pass 2: longest query blocks (the last ones) first.
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t t = 0; t < b * hq * num_blocks; ++t) {
      const int64_t bh = t % (b * hq), qb = num_blocks - 1 - t / (b * hq);
      BackwardQueryBlockTask(a, bh / hq, bh % hq, qb * kBlock, ws);
    }
  }
}

}  // namespace moetrain::kernels::MT_ATTENTION_ISA

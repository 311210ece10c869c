// CachedAttentionForward against the training kernel AttentionForward (float64): the rows of a full
// causal pass must equal blocks of queries fed against a cache, for any split of the sequence.
#include "kernels/cached_attention.h"

#include <vector>

#include "gtest/gtest.h"
#include "kernels/attention.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using moetrain::testing::AllClose;
using moetrain::testing::RandomVector;

struct Case {
  int64_t s, hq, hkv, d;
  std::vector<int64_t> blocks;  // block lengths summing to s
};

void Check(const Case& c, int threads) {
  const int64_t qd = c.hq * c.d, kvd = c.hkv * c.d;
  auto q = RandomVector<double>(c.s * qd, 1), k = RandomVector<double>(c.s * kvd, 2),
       v = RandomVector<double>(c.s * kvd, 3);
  std::vector<double> ref(c.s * qd), lse(c.hq * c.s),
      ws(AttentionWorkspaceElems(c.s, c.hq, c.d, 1));
  AttentionForward(ref.data(), lse.data(), q.data(), k.data(), v.data(), 1, c.s, c.hq, c.hkv, c.d,
                   ws.data(), 1);

  std::vector<double> out(c.s * qd), cws(CachedAttentionWorkspaceElems(c.s, threads));
  std::vector<float> outf(c.s * qd), cwsf(cws.size());
  auto qf = moetrain::testing::Cast<float>(q), kf = moetrain::testing::Cast<float>(k),
       vf = moetrain::testing::Cast<float>(v);
  int64_t start = 0;
  for (int64_t len : c.blocks) {
    CachedAttentionForward(out.data() + start * qd, q.data() + start * qd, k.data(), v.data(),
                           start, len, c.hq, c.hkv, c.d, cws.data(), threads);
    CachedAttentionForward(outf.data() + start * qd, qf.data() + start * qd, kf.data(), vf.data(),
                           start, len, c.hq, c.hkv, c.d, cwsf.data(), threads);
    start += len;
  }
  ASSERT_EQ(start, c.s);
  EXPECT_TRUE(AllClose(out, ref, 1e-12, 1e-12, "double"));
  EXPECT_TRUE(AllClose(outf, ref, 1e-5, 1e-6, "float"));
}

TEST(CachedAttention, BlocksEqualFullCausalPassGqa) { Check({37, 4, 2, 16, {1, 5, 1, 30}}, 2); }
TEST(CachedAttention, OneTokenAtATimeMha) { Check({20, 3, 3, 8, std::vector<int64_t>(20, 1)}, 1); }
TEST(CachedAttention, WholeSequenceAsOneBlockMqa) { Check({70, 4, 1, 32, {70}}, 2); }

}  // namespace
}  // namespace moetrain::kernels

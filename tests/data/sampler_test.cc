// Sampler: a pure function of (seed, step, micro, rank); disjoint ranks; exact epoch coverage.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "data/permutation.h"
#include "tests/data/data_test_util.h"

namespace moetrain::data {
namespace {

using ::moetrain::data::testing::IsOk;
using ::moetrain::data::testing::StatusIs;
using ::testing::HasSubstr;

// tokens[i] = i, so a window's first token tells which window it is (w = first / seq_len).
std::vector<int32_t> Iota(int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
  bool operator==(const Batch& o) const { return tokens == o.tokens && targets == o.targets; }
};

Batch FillBatch(const Sampler& s, int64_t step, int micro, int rank) {
  const size_t n = static_cast<size_t>(s.options().micro_batch * s.options().seq_len);
  Batch b{std::vector<int32_t>(n), std::vector<int32_t>(n)};
  s.Fill(step, micro, rank, b.tokens.data(), b.targets.data());
  return b;
}

// Window ids of a batch's rows (checks each row is a whole window and targets are shifted).
std::vector<int64_t> Windows(const Batch& b, int64_t seq_len) {
  std::vector<int64_t> w;
  for (size_t r = 0; r * seq_len < b.tokens.size(); ++r) {
    const int32_t* t = &b.tokens[r * seq_len];
    const int32_t* y = &b.targets[r * seq_len];
    EXPECT_EQ(t[0] % seq_len, 0) << "row " << r << " does not start a window";
    for (int64_t j = 0; j < seq_len; ++j) {
      EXPECT_EQ(t[j], t[0] + j);
      EXPECT_EQ(y[j], t[j] + 1) << "targets are tokens shifted by one";
    }
    w.push_back(t[0] / seq_len);
  }
  return w;
}

SamplerOptions Opts(int64_t seq_len, int64_t micro_batch, int grad_accum, int world,
                    uint64_t seed) {
  SamplerOptions o;
  o.seq_len = seq_len;
  o.micro_batch = micro_batch;
  o.grad_accum = grad_accum;
  o.world = world;
  o.seed = seed;
  return o;
}

TEST(SamplerTest, SameSeedStepRankGivesSameBatchInAnyCallOrder) {
  const std::vector<int32_t> stream = Iota(10001);
  auto a = Sampler::Create(stream.data(), stream.size(), Opts(16, 4, 2, 3, 42));
  auto b = Sampler::Create(stream.data(), stream.size(), Opts(16, 4, 2, 3, 42));
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->num_windows(), 625);
  // a computes step 5 before step 2; b the other way round.
  const Batch a5 = FillBatch(*a, 5, 1, 2), a2 = FillBatch(*a, 2, 0, 1);
  const Batch b2 = FillBatch(*b, 2, 0, 1), b5 = FillBatch(*b, 5, 1, 2);
  EXPECT_EQ(a5, b5);
  EXPECT_EQ(a2, b2);
  EXPECT_EQ(FillBatch(*a, 5, 1, 2), a5);
  // A different seed gives a different order.
  auto c = Sampler::Create(stream.data(), stream.size(), Opts(16, 4, 2, 3, 43));
  ASSERT_THAT(c, IsOk());
  EXPECT_FALSE(FillBatch(*c, 5, 1, 2) == a5);
}

TEST(SamplerTest, RanksAndMicroStepsAreDisjointWithinAStep) {
  const std::vector<int32_t> stream = Iota(64 * 1000 + 1);
  const int world = 4, accum = 3;
  auto s = Sampler::Create(stream.data(), stream.size(), Opts(64, 5, accum, world, 7));
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->sequences_per_step(), 60);
  for (int64_t step : {0, 3, 15}) {  // all inside epoch 0 (16 * 60 < 1000)
    std::set<int64_t> seen;
    for (int micro = 0; micro < accum; ++micro) {
      for (int rank = 0; rank < world; ++rank) {
        for (int64_t w : Windows(FillBatch(*s, step, micro, rank), 64)) {
          EXPECT_TRUE(seen.insert(w).second) << "window " << w << " twice in step " << step;
        }
      }
    }
    EXPECT_EQ(seen.size(), 60u);
  }
}

TEST(SamplerTest, EachEpochCoversEveryWindowExactlyOnce) {
  const int64_t T = 8, W = 120;
  const std::vector<int32_t> stream = Iota(W * T + 5);  // 4 leftover tokens are never used
  auto s = Sampler::Create(stream.data(), stream.size(), Opts(T, 3, 2, 2, 9));
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(s->num_windows(), W);
  const int64_t steps_per_epoch = W / s->sequences_per_step();  // 10
  std::vector<int64_t> order[2];
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int> count(W, 0);
    for (int64_t step = epoch * steps_per_epoch; step < (epoch + 1) * steps_per_epoch; ++step) {
      for (int micro = 0; micro < 2; ++micro) {
        for (int rank = 0; rank < 2; ++rank) {
          for (int64_t w : Windows(FillBatch(*s, step, micro, rank), T)) {
            ++count[w];
            order[epoch].push_back(w);
          }
        }
      }
    }
    for (int64_t w = 0; w < W; ++w) EXPECT_EQ(count[w], 1) << "epoch " << epoch << " window " << w;
  }
  EXPECT_NE(order[0], order[1]) << "each epoch has its own order";
  EXPECT_DOUBLE_EQ(s->EpochAt(steps_per_epoch), 1.0);
  // WindowOf agrees with Fill.
  EXPECT_EQ(s->WindowOf(s->GlobalIndex(3, 1, 0, 2)), Windows(FillBatch(*s, 3, 1, 0), T)[2]);
}

TEST(SamplerTest, MicroBatchSpanningAnEpochBoundary) {
  const std::vector<int32_t> stream = Iota(7 * 4 + 1);  // 7 windows of 4
  auto s = Sampler::Create(stream.data(), stream.size(), Opts(4, 5, 1, 1, 1));
  ASSERT_THAT(s, IsOk());
  std::vector<int64_t> all;
  for (int64_t step = 0; step < 7; ++step) {  // 35 samples = 5 epochs
    for (int64_t w : Windows(FillBatch(*s, step, 0, 0), 4)) all.push_back(w);
  }
  for (int e = 0; e < 5; ++e) {
    std::vector<int64_t> epoch(all.begin() + 7 * e, all.begin() + 7 * (e + 1));
    std::sort(epoch.begin(), epoch.end());
    EXPECT_EQ(epoch, std::vector<int64_t>({0, 1, 2, 3, 4, 5, 6})) << "epoch " << e;
  }
}

TEST(SamplerTest, TooSmallAndBadOptions) {
  const std::vector<int32_t> stream = Iota(8);
  EXPECT_THAT(
      Sampler::Create(stream.data(), stream.size(), Opts(8, 1, 1, 1, 0), "shards/train.bin"),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("shards/train.bin: corpus too small for one sequence of 8 "
                         "tokens: has 8")));
  EXPECT_THAT(Sampler::Create(stream.data(), stream.size(), Opts(7, 1, 1, 1, 0)), IsOk());
  EXPECT_THAT(Sampler::Create(stream.data(), stream.size(), Opts(0, 1, 1, 1, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("seq_len")));
  EXPECT_THAT(Sampler::Create(stream.data(), stream.size(), Opts(4, 1, 1, 0, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("world 0")));
  EXPECT_THAT(EvalSampler::Create(stream.data(), stream.size(), 9, 0, "val.bin"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("val.bin: corpus too small for one sequence of 9 tokens")));
}

TEST(EvalSamplerTest, FirstWindowsInOrder) {
  const std::vector<int32_t> stream = Iota(10 * 6 + 3);
  auto all = EvalSampler::Create(stream.data(), stream.size(), 6, 0);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->num_windows(), 10);
  auto some = EvalSampler::Create(stream.data(), stream.size(), 6, 4);
  ASSERT_THAT(some, IsOk());
  ASSERT_EQ(some->num_windows(), 4);
  Batch b{std::vector<int32_t>(3 * 6), std::vector<int32_t>(3 * 6)};
  some->Fill(1, 3, b.tokens.data(), b.targets.data());
  EXPECT_EQ(Windows(b, 6), std::vector<int64_t>({1, 2, 3}));
}

TEST(IndexPermutationTest, IsABijectionForManySizes) {
  for (int64_t n : {1, 2, 3, 4, 5, 16, 17, 100, 1000, 4097}) {
    for (uint64_t key : {0ull, 1ull, 0xdeadbeefull}) {
      const IndexPermutation p(n, key);
      std::vector<char> hit(static_cast<size_t>(n), 0);
      int64_t fixed = 0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t j = p(i);
        ASSERT_GE(j, 0);
        ASSERT_LT(j, n);
        EXPECT_FALSE(hit[j]) << "n " << n << " key " << key << " maps twice to " << j;
        hit[j] = 1;
        fixed += j == i;
      }
      if (n >= 100) {
        EXPECT_LT(fixed, n / 10) << "looks like the identity, n " << n;
      }
    }
  }
}

}  // namespace
}  // namespace moetrain::data

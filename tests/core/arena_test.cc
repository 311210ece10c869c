// Arena planning: views are disjoint and 64-byte aligned, per-category byte counts, duplicate names
// are an error Status, memory starts zeroed, ZeroCategory clears exactly one category.
#include "core/arena.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace moetrain {
namespace {

size_t RoundUp64(size_t n) { return (n + 63) / 64 * 64; }

std::vector<TensorSpec> Specs() {
  return {
      {"embed", Shape{251, 67}, DType::kF32, "params"},
      {"norm", Shape{67}, DType::kF32, "params"},
      {"w1", Shape{3, 5, 7}, DType::kF64, "params"},
      {"embed.grad", Shape{251, 67}, DType::kF32, "grads"},
      {"norm.grad", Shape{67}, DType::kF32, "grads"},
      {"tokens", Shape{13}, DType::kI32, "activations"},
      {"bf", Shape{9}, DType::kBF16, "activations"},
      {"empty", Shape{0, 4}, DType::kF32, "activations"},
      {"scalar", Shape{}, DType::kI64, "activations"},
  };
}

TEST(ArenaTest, ViewsAreAlignedDisjointAndTyped) {
  auto specs = Specs();
  auto arena_or = Arena::Create(specs);
  ASSERT_TRUE(arena_or.ok()) << arena_or.status();
  Arena arena = std::move(arena_or).value();

  struct Range {
    uintptr_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const TensorSpec& s : specs) {
    ASSERT_TRUE(arena.Has(s.name));
    TensorView t = arena.Get(s.name);
    EXPECT_EQ(t.shape(), s.shape) << s.name;
    EXPECT_EQ(t.dtype(), s.dtype) << s.name;
    EXPECT_EQ(t.device(), Device::kCpu);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u) << s.name;
    EXPECT_EQ(t.nbytes(), static_cast<size_t>(s.shape.numel()) * DTypeSize(s.dtype));
    uintptr_t b = reinterpret_cast<uintptr_t>(t.data());
    ranges.push_back({b, b + t.nbytes(), s.name});
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    for (size_t j = i + 1; j < ranges.size(); ++j) {
      const bool disjoint = ranges[i].end <= ranges[j].begin || ranges[j].end <= ranges[i].begin;
      EXPECT_TRUE(disjoint) << ranges[i].name << " overlaps " << ranges[j].name;
    }
  EXPECT_FALSE(arena.Has("nope"));
  EXPECT_EQ(arena.specs().size(), specs.size());
  // Typed access works for the right type.
  EXPECT_EQ(arena.Get("w1").as<double>(), arena.Get("w1").data());
}

TEST(ArenaTest, CategoryBytes) {
  auto arena = Arena::Create(Specs());
  ASSERT_TRUE(arena.ok());
  const size_t params = RoundUp64(251 * 67 * 4) + RoundUp64(67 * 4) + RoundUp64(105 * 8);
  const size_t grads = RoundUp64(251 * 67 * 4) + RoundUp64(67 * 4);
  const size_t acts = RoundUp64(13 * 4) + RoundUp64(9 * 2) + 0 + RoundUp64(8);
  EXPECT_EQ(arena->CategoryBytes("params"), params);
  EXPECT_EQ(arena->CategoryBytes("grads"), grads);
  EXPECT_EQ(arena->CategoryBytes("activations"), acts);
  EXPECT_EQ(arena->CategoryBytes("optimizer"), 0u);
  EXPECT_EQ(arena->TotalBytes(), params + grads + acts);
  auto by_cat = arena->BytesByCategory();
  EXPECT_EQ(by_cat.size(), 3u);
  EXPECT_EQ(by_cat["grads"], grads);
}

TEST(ArenaTest, DuplicateNameIsAnError) {
  auto specs = Specs();
  specs.push_back({"norm", Shape{3}, DType::kF32, "workspace"});  // same name, other category
  auto arena = Arena::Create(specs);
  ASSERT_FALSE(arena.ok());
  EXPECT_EQ(arena.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(arena.status().message().find("norm"), std::string::npos) << arena.status();
}

TEST(ArenaTest, ZeroInitialisedAndZeroCategory) {
  auto arena_or = Arena::Create(Specs());
  ASSERT_TRUE(arena_or.ok());
  Arena arena = std::move(arena_or).value();
  for (const TensorSpec& s : arena.specs()) {
    TensorView t = arena.Get(s.name);
    const unsigned char* p = static_cast<const unsigned char*>(t.data());
    for (size_t i = 0; i < t.nbytes(); ++i) ASSERT_EQ(p[i], 0) << s.name << " byte " << i;
  }
  // Write through every view, then zero only the grads.
  for (const TensorSpec& s : arena.specs()) {
    TensorView t = arena.Get(s.name);
    if (t.nbytes() > 0) std::memset(t.data(), 0xab, t.nbytes());
  }
  arena.ZeroCategory("grads");
  arena.ZeroCategory("no-such-category");  // a no-op
  for (const TensorSpec& s : arena.specs()) {
    TensorView t = arena.Get(s.name);
    const unsigned char* p = static_cast<const unsigned char*>(t.data());
    const unsigned char want = s.category == "grads" ? 0 : 0xab;
    for (size_t i = 0; i < t.nbytes(); ++i) ASSERT_EQ(p[i], want) << s.name << " byte " << i;
  }
}

TEST(ArenaTest, EmptySpecListAndMove) {
  auto empty = Arena::Create({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->TotalBytes(), 0u);

  auto arena_or = Arena::Create(Specs());
  ASSERT_TRUE(arena_or.ok());
  Arena a = std::move(arena_or).value();
  void* p = a.Get("embed").data();
  Arena b = std::move(a);  // views point into blocks that moved with the arena
  EXPECT_EQ(b.Get("embed").data(), p);
}

TEST(ArenaDeathTest, UnknownNameAndWrongTypeAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto arena = Arena::Create(Specs());
  ASSERT_TRUE(arena.ok());
  EXPECT_DEATH(arena->Get("missing"), "no tensor 'missing'");
  EXPECT_DEATH(arena->Get("embed").as<double>(), "tensor is f32");
}

}  // namespace
}  // namespace moetrain

#include "core/arena.h"

#include <cstdlib>
#include <cstring>

namespace moetrain {
namespace {
constexpr size_t kAlign = 64;
size_t RoundUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

void Arena::FreeDeleter::operator()(void* p) const { std::free(p); }

absl::StatusOr<Arena> Arena::Create(const std::vector<TensorSpec>& specs) {
  Arena arena;
  arena.specs_ = specs;
  std::map<std::string, size_t> offsets;
  for (const TensorSpec& s : specs) {
    if (offsets.count(s.name))
      return absl::InvalidArgumentError(absl::StrCat("arena: duplicate tensor name '", s.name, "'"));
    offsets[s.name] = arena.category_bytes_[s.category];
    arena.category_bytes_[s.category] +=
        RoundUp(static_cast<size_t>(s.shape.numel()) * DTypeSize(s.dtype));
  }
  for (auto& [cat, bytes] : arena.category_bytes_) {
    void* p = std::aligned_alloc(kAlign, std::max<size_t>(bytes, kAlign));
    if (p == nullptr)
      return absl::ResourceExhaustedError(
          absl::StrCat("arena: cannot allocate ", bytes, " bytes for category '", cat, "'"));
    std::memset(p, 0, bytes);
    arena.blocks_[cat].reset(p);
  }
  for (const TensorSpec& s : specs) {
    char* base = static_cast<char*>(arena.blocks_[s.category].get());
    arena.views_[s.name] = TensorView(base + offsets[s.name], s.shape, s.dtype);
  }
  return arena;
}

size_t Arena::CategoryBytes(const std::string& category) const {
  auto it = category_bytes_.find(category);
  return it == category_bytes_.end() ? 0 : it->second;
}

size_t Arena::TotalBytes() const {
  size_t n = 0;
  for (auto& [cat, bytes] : category_bytes_) n += bytes;
  return n;
}

TensorView Arena::Get(const std::string& name) const {
  auto it = views_.find(name);
  MT_CHECK_MSG(it != views_.end(), "arena has no tensor '", name, "'");
  return it->second;
}

void Arena::ZeroCategory(const std::string& category) {
  auto it = blocks_.find(category);
  if (it != blocks_.end()) std::memset(it->second.get(), 0, category_bytes_[category]);
}

}  // namespace moetrain

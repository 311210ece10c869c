// Arenas: memory planned from a spec table, allocated once, handed out as views.
//
// Usage: build a list of TensorSpec (name, shape, dtype, category), call Arena::Plan, then Allocate.
// Each category gets one allocation (64-byte aligned slots); every spec becomes a TensorView into it.
// Nothing is allocated after Allocate(), which is what keeps the training step loop allocation-free.
// Memory is zero-initialised. Not thread-safe for concurrent Allocate; views may be used from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moetrain {

struct TensorSpec {
  std::string name;      // unique within the arena
  Shape shape;
  DType dtype = DType::kF32;
  std::string category;  // e.g. "params", "grads", "optimizer", "activations", "workspace"
};

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) = default;
  Arena& operator=(Arena&&) = default;

  // Plans and allocates. Fails on duplicate names or an allocation failure.
  static absl::StatusOr<Arena> Create(const std::vector<TensorSpec>& specs);

  // Bytes planned for a category (0 if unknown), and in total.
  size_t CategoryBytes(const std::string& category) const;
  size_t TotalBytes() const;
  std::map<std::string, size_t> BytesByCategory() const { return category_bytes_; }

  bool Has(const std::string& name) const { return views_.count(name) > 0; }
  // Aborts if the name is unknown (a programming error: names come from the same spec table).
  TensorView Get(const std::string& name) const;
  const std::vector<TensorSpec>& specs() const { return specs_; }

  // Sets every byte of a category to zero.
  void ZeroCategory(const std::string& category);

 private:
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  std::vector<TensorSpec> specs_;
  std::map<std::string, TensorView> views_;
  std::map<std::string, size_t> category_bytes_;
  std::map<std::string, std::unique_ptr<void, FreeDeleter>> blocks_;
};

}  // namespace moetrain

// Named memory slots for a layer: a layer declares the tensors it needs (activations saved for backward,
// backward workspace) as TensorSpecs under a name prefix, and later binds typed pointers to them from
// the planned Arena. This is how "memory is planned, not discovered" reaches every layer.
#pragma once

#include <string>
#include <vector>

#include "core/arena.h"

namespace moetrain::model {

class SlotDeclarer {
 public:
  SlotDeclarer(std::vector<TensorSpec>* specs, std::string prefix, std::string category)
      : specs_(specs), prefix_(std::move(prefix)), category_(std::move(category)) {}
  void Add(const std::string& name, Shape shape, DType dtype) {
    specs_->push_back(TensorSpec{prefix_ + name, shape, dtype, category_});
  }

 private:
  std::vector<TensorSpec>* specs_;
  std::string prefix_;
  std::string category_;
};

class SlotBinder {
 public:
  SlotBinder(const Arena& arena, std::string prefix) : arena_(arena), prefix_(std::move(prefix)) {}
  template <typename T>
  T* Get(const std::string& name) const {
    return arena_.Get(prefix_ + name).as<T>();
  }

 private:
  const Arena& arena_;
  std::string prefix_;
};

}  // namespace moetrain::model

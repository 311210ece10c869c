// Non-owning tensor views.
//
// A TensorView is (pointer, shape, dtype, device): it never owns memory. Memory comes from an Arena
// (core/arena.h), a file mapping or the caller. Shapes are row-major and contiguous; up to kMaxDims dims.
// Lifetime: a view is valid while the memory it points to lives. Copying a view copies the pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace moetrain {

enum class Device : uint8_t { kCpu, kCuda };

class Shape {
 public:
  static constexpr int kMaxDims = 6;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t numel() const;
  std::vector<int64_t> dims() const { return std::vector<int64_t>(dims_, dims_ + rank_); }
  std::string ToString() const;  // "(2, 3, 4)"
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  int rank_ = 0;
  int64_t dims_[kMaxDims] = {};
};

class TensorView {
 public:
  TensorView() = default;
  TensorView(void* data, Shape shape, DType dtype, Device device = Device::kCpu)
      : data_(data), shape_(shape), dtype_(dtype), device_(device) {}

  void* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  bool empty() const { return data_ == nullptr; }

  // Typed pointer; aborts if T does not match dtype (a programming error).
  template <typename T>
  T* as() const {
    MT_CHECK_MSG(DTypeOf<T>::value == dtype_, "tensor is ", DTypeName(dtype_), ", asked for ",
                 DTypeName(DTypeOf<T>::value));
    return static_cast<T*>(data_);
  }

  std::string ToString() const;  // "f32(2, 3) cpu"

 private:
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
};

}  // namespace moetrain

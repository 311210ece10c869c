#include "core/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moetrain {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  MT_CHECK_MSG(static_cast<int>(dims.size()) <= kMaxDims, "too many dims: ", dims.size());
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) {
    MT_CHECK_MSG(dims[i] >= 0, "negative dim ", dims[i]);
    dims_[i] = dims[i];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::ToString() const { return absl::StrCat("(", absl::StrJoin(dims(), ", "), ")"); }

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

std::string TensorView::ToString() const {
  return absl::StrCat(DTypeName(dtype_), shape_.ToString(), device_ == Device::kCpu ? " cpu" : " cuda");
}

}  // namespace moetrain

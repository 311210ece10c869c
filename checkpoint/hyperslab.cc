#include "checkpoint/hyperslab.h"

#include <algorithm>

#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

// Appends the boxes of [begin, end) within shape[dim:], each prefixed by `prefix` (offsets of the
// outer dims, whose counts are 1).
void Split(const std::vector<int64_t>& shape, size_t dim, int64_t begin, int64_t end,
           const Hyperslab& prefix, std::vector<Hyperslab>* out) {
  if (begin >= end) return;
  if (dim == shape.size()) {  // a single element
    out->push_back(prefix);
    return;
  }
  int64_t inner = 1;  // elements per index of `dim`
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  auto with = [&](int64_t row, int64_t rows) {
    Hyperslab h = prefix;
    h.offset.push_back(row);
    h.count.push_back(rows);
    return h;
  };
  if (begin % inner != 0) {  // partial first row: recurse into it
    const int64_t row = begin / inner;
    const int64_t row_end = std::min(end, (row + 1) * inner);
    Split(shape, dim + 1, begin - row * inner, row_end - row * inner, with(row, 1), out);
    begin = row_end;
  }
  const int64_t full_rows = end / inner - begin / inner;
  if (begin < end && full_rows > 0) {  // whole rows: one box spanning the inner dims entirely
    Hyperslab h = with(begin / inner, full_rows);
    for (size_t d = dim + 1; d < shape.size(); ++d) {
      h.offset.push_back(0);
      h.count.push_back(shape[d]);
    }
    out->push_back(std::move(h));
    begin += full_rows * inner;
  }
  if (begin < end) {  // partial last row
    const int64_t row = begin / inner;
    Split(shape, dim + 1, 0, end - row * inner, with(row, 1), out);
  }
}

}  // namespace

std::vector<Hyperslab> FlatRangeToHyperslabs(const std::vector<int64_t>& shape, int64_t begin,
                                             int64_t end) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  MT_CHECK_MSG(0 <= begin && begin <= end && end <= numel, "FlatRangeToHyperslabs: bad range");
  std::vector<Hyperslab> out;
  Split(shape, 0, begin, end, Hyperslab{}, &out);
  return out;
}

}  // namespace moetrain::checkpoint

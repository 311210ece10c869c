// The per-rank memory plan that `moetrain train --dry-run` prints and training compares its
// measured peak against: named lines of bytes and their total.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace moetrain::trainer {

std::string FormatBytes(size_t bytes);

class MemoryPlanReport {
 public:
  void Add(std::string what, size_t bytes) { lines_.push_back({std::move(what), bytes}); total_ += bytes; }
  size_t total() const { return total_; }
  const std::vector<std::pair<std::string, size_t>>& items() const { return lines_; }
  // "params 12.3 MiB" ..., then "total 45.6 MiB".
  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    for (const auto& [what, bytes] : lines_) out.push_back(what + " " + FormatBytes(bytes));
    out.push_back("total " + FormatBytes(total_));
    return out;
  }

 private:
  std::vector<std::pair<std::string, size_t>> lines_;
  size_t total_ = 0;
};

inline std::string FormatBytes(size_t b) {
  if (b >= (size_t{1} << 30)) return absl::StrFormat("%.2f GiB", b / 1073741824.0);
  if (b >= (size_t{1} << 20)) return absl::StrFormat("%.2f MiB", b / 1048576.0);
  return absl::StrFormat("%.1f KiB", b / 1024.0);
}

}  // namespace moetrain::trainer

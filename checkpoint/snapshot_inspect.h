// DescribeSnapshot: the text `moetrain inspect DIR` prints for a snapshot directory.
//
// Opens DIR (full validation), verifies every checksum, then describes: format and version, step,
// world size, the state's layout (and the names of the other state entries), per field the number
// of tensors and their fp32 bytes, and "all N datasets verified". Any validation or checksum
// failure is returned as the error instead.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace moetrain::checkpoint {

absl::StatusOr<std::string> DescribeSnapshot(const std::string& dir);

}  // namespace moetrain::checkpoint

// UTF-8 validation for corpus text.
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <string_view>

namespace moetrain::data {

// Index of the first byte of `s` that does not start (or continue) a well-formed UTF-8 sequence
// (Unicode 15, Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF), or -1 when
// all of `s` is valid. A sequence truncated by the end of `s` is invalid at its first byte.
int64_t FindInvalidUtf8(std::string_view s);

}  // namespace moetrain::data

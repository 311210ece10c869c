// Line-by-line reading of a UTF-8 text file with positions for error messages.
//
// Next() yields each line without its "\n" (and without a trailing "\r"); a leading UTF-8 BOM is
// dropped. Each line is checked for valid UTF-8 before it is returned.
// Thread-safety: none (one reader per thread). Move-only; owns the FILE*.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/status.h"

namespace moetrain::data {

class LineReader {
 public:
  // NotFound if `path` does not exist; FailedPrecondition if it cannot be opened.
  static absl::StatusOr<LineReader> Open(const std::string& path);
  LineReader(LineReader&& other) noexcept;
  LineReader& operator=(LineReader&&) = delete;
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  ~LineReader();

  // true and *line set (valid until the next call), or false at end of file.
  // Errors: FailedPrecondition on a read error; InvalidArgument
  // "<path>:<line>: invalid UTF-8 byte 0x.. at byte offset N (column C)".
  absl::StatusOr<bool> Next(std::string_view* line);

  // 1-based number of the line last returned by Next (0 before the first).
  int64_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }
  // "<path>:<line>: " for messages about the current line.
  std::string Where() const { return absl::StrCat(path_, ":", line_number_, ": "); }

 private:
  LineReader(std::string path, std::FILE* f) : path_(std::move(path)), file_(f) {}
  std::string path_;
  std::FILE* file_ = nullptr;
  char* buf_ = nullptr;  // getline(3) buffer
  size_t cap_ = 0;
  int64_t line_number_ = 0;
  int64_t offset_ = 0;  // byte offset of the start of the next line
};

}  // namespace moetrain::data

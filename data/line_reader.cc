#include "data/line_reader.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "data/utf8.h"

namespace moetrain::data {

absl::StatusOr<LineReader> LineReader::Open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot open for reading: ", std::strerror(errno)));
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  return LineReader(path, f);
}

LineReader::LineReader(LineReader&& other) noexcept
    : path_(std::move(other.path_)),
      file_(other.file_),
      buf_(other.buf_),
      cap_(other.cap_),
      line_number_(other.line_number_),
      offset_(other.offset_) {
  other.file_ = nullptr;
  other.buf_ = nullptr;
  other.cap_ = 0;
}

LineReader::~LineReader() {
  if (file_ != nullptr) std::fclose(file_);
  std::free(buf_);
}

absl::StatusOr<bool> LineReader::Next(std::string_view* line) {
  errno = 0;
  const ssize_t n = ::getline(&buf_, &cap_, file_);
  if (n < 0) {
    if (std::ferror(file_)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, ":", line_number_ + 1, ": read error: ", std::strerror(errno)));
    }
    return false;
  }
  ++line_number_;
  const int64_t line_start = offset_;
  offset_ += n;
  std::string_view s(buf_, static_cast<size_t>(n));
  int64_t skipped = 0;  // bytes dropped from the front (BOM)
  if (line_number_ == 1 && s.substr(0, 3) == "\xEF\xBB\xBF") {
    s.remove_prefix(3);
    skipped = 3;
  }
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  const int64_t bad = FindInvalidUtf8(s);
  if (bad >= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d: invalid UTF-8 byte 0x%02x at byte offset %d (column %d)", path_,
                        line_number_, static_cast<unsigned char>(s[static_cast<size_t>(bad)]),
                        line_start + skipped + bad, skipped + bad + 1));
  }
  *line = s;
  return true;
}

}  // namespace moetrain::data

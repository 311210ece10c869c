// A read-only memory mapping of a whole file.
// Lifetime: the mapping lives as long as the object (move-only). The file must not be truncated
// while mapped (reads would raise SIGBUS); replacing it by rename is safe.
// Thread-safety: data() may be read from any number of threads.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace moetrain::data {

class MappedFile {
 public:
  // NotFound if missing; FailedPrecondition if not a regular file or it cannot be opened/mapped.
  // An empty file maps to data() == nullptr, size() == 0.
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile() = default;  // empty: no mapping
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const void* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void Reset();
  std::string path_;
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moetrain::data

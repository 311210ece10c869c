// File-system helpers for writing outputs that are never left half-written.
//
// The pattern every writer in data/ follows:
//   1. write into a temporary sibling (TempSiblingPath) so the final rename stays on one file
//   system;
//   2. FileWriter::Close() flushes and fsyncs each file;
//   3. rename the temporary into place (RenameReplacing) and fsync the parent directory;
//   4. on any error the ScopedRemover deletes the temporary; the previous output is never touched
//      before step 3.
// Every error Status names the path and the failing call with strerror(errno).
// Thread-safety: free functions are thread-safe; FileWriter and ScopedRemover are not shared.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "core/status.h"

namespace moetrain::data {

// "<path>.tmp.<pid>" (a name in the same directory as `path`).
std::string TempSiblingPath(const std::string& path);

// The directory holding `path` ("." for a bare file name).
std::string ParentDir(const std::string& path);

// fsync the file or directory at `path`.
absl::Status FsyncPath(const std::string& path);

// rename(2) `from` onto `to` (atomically replacing a file at `to`), then fsync the parent of `to`.
absl::Status RenameReplacing(const std::string& from, const std::string& to);

// Whole file into memory. NotFound if missing; FailedPrecondition if unreadable.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Removes a file or directory tree when destroyed unless Release() was called. Removal errors are
// ignored (best effort: the temporary is ours and may already be gone).
class ScopedRemover {
 public:
  explicit ScopedRemover(std::string path) : path_(std::move(path)) {}
  ScopedRemover(const ScopedRemover&) = delete;
  ScopedRemover& operator=(const ScopedRemover&) = delete;
  ~ScopedRemover();
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

// Buffered binary/text writer that records the first error.
// Usage: ASSIGN_OR_RETURN(auto w, FileWriter::Create(p)); w.Write(...); RETURN_IF_ERROR(w.Close());
// Close() flushes, fsyncs and closes; a writer destroyed without Close() just closes the file.
class FileWriter {
 public:
  // Creates or truncates `path`. FailedPrecondition naming the path if it cannot be opened.
  static absl::StatusOr<FileWriter> Create(const std::string& path);
  FileWriter(FileWriter&& other) noexcept;
  FileWriter& operator=(FileWriter&& other) = delete;
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  ~FileWriter();

  // Appends bytes. Errors are sticky and reported by Write's Status and by Close().
  absl::Status Write(const void* data, size_t n);
  absl::Status Write(std::string_view s) { return Write(s.data(), s.size()); }
  absl::Status Close();
  int64_t bytes_written() const { return bytes_written_; }
  const std::string& path() const { return path_; }

 private:
  FileWriter(std::string path, std::FILE* f) : path_(std::move(path)), file_(f) {}
  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t bytes_written_ = 0;
  absl::Status error_;
};

}  // namespace moetrain::data

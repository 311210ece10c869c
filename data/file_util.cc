#include "data/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace moetrain::data {
namespace {
namespace fs = std::filesystem;

std::string Errno() { return std::strerror(errno); }
}  // namespace

std::string TempSiblingPath(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return absl::StrCat(p, ".tmp.", ::getpid());
}

std::string ParentDir(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const fs::path parent = fs::path(p).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

absl::Status FsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::FailedPreconditionError(absl::StrCat(path, ": open for fsync: ", Errno()));
  const int rc = ::fsync(fd);
  const int err = rc != 0 ? errno : 0;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); that is not a data-loss risk we
  // control.
  if (rc != 0 && err != EINVAL) {
    return absl::DataLossError(absl::StrCat(path, ": fsync: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status RenameReplacing(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("rename ", from, " -> ", to, ": ", Errno()));
  }
  return FsyncPath(ParentDir(to));
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  if (fs::is_directory(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, expected a file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open: ", Errno()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::FailedPreconditionError(absl::StrCat(path, ": read error: ", Errno()));
  return ss.str();
}

ScopedRemover::~ScopedRemover() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

absl::StatusOr<FileWriter> FileWriter::Create(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot create: ", Errno()));
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  return FileWriter(path, f);
}

FileWriter::FileWriter(FileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      file_(other.file_),
      bytes_written_(other.bytes_written_),
      error_(std::move(other.error_)) {
  other.file_ = nullptr;
}

FileWriter::~FileWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status FileWriter::Write(const void* data, size_t n) {
  if (!error_.ok()) return error_;
  if (file_ == nullptr) {
    error_ = absl::FailedPreconditionError(absl::StrCat(path_, ": write after close"));
    return error_;
  }
  if (n > 0 && std::fwrite(data, 1, n, file_) != n) {
    error_ = absl::DataLossError(absl::StrCat(path_, ": write failed: ", Errno()));
    return error_;
  }
  bytes_written_ += static_cast<int64_t>(n);
  return absl::OkStatus();
}

absl::Status FileWriter::Close() {
  if (file_ == nullptr) return error_.ok() ? absl::OkStatus() : error_;
  std::FILE* f = file_;
  file_ = nullptr;
  if (error_.ok() && std::fflush(f) != 0) {
    error_ = absl::DataLossError(absl::StrCat(path_, ": flush failed: ", Errno()));
  }
  if (error_.ok() && ::fsync(::fileno(f)) != 0) {
    error_ = absl::DataLossError(absl::StrCat(path_, ": fsync failed: ", Errno()));
  }
  if (std::fclose(f) != 0 && error_.ok()) {
    error_ = absl::DataLossError(absl::StrCat(path_, ": close failed: ", Errno()));
  }
  return error_;
}

}  // namespace moetrain::data

#include "core/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace moetrain {
namespace {

absl::Status Errno(int err, const std::string& path, const std::string& what) {
  return absl::ErrnoToStatus(err, absl::StrCat(path, ": ", what, ": ", std::strerror(err)));
}

}  // namespace

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, dir, "cannot open directory to fsync it");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP) return Errno(err, dir, "fsync failed");
  return absl::OkStatus();
}

absl::Status WriteFileDurably(const std::string& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(errno, path, "cannot create file");
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Errno(err, path, "write failed");
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno(err, path, "fsync failed");
  }
  if (::close(fd) != 0) return Errno(errno, path, "close failed");
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  absl::Status s = WriteFileDurably(tmp, contents);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    s = Errno(errno, path, absl::StrCat("cannot rename ", tmp, " over it"));
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return FsyncDir(parent.empty() ? "." : parent.string());
}

}  // namespace moetrain

#include "checkpoint/snapshot_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(int err, const std::string& path, const std::string& what) {
  return absl::ErrnoToStatus(err, absl::StrCat(path, ": ", what, ": ", std::strerror(err)));
}

}  // namespace

std::string StepDirName(int64_t step) { return absl::StrFormat("step-%08d", step); }
std::string TmpDirName(int64_t step) { return absl::StrCat(".tmp-", StepDirName(step)); }
std::string ShardFileName(int rank) { return absl::StrFormat("shard-%05d.h5", rank); }

std::optional<int64_t> ParseStepDirName(const std::string& name) {
  absl::string_view digits = name;
  if (!absl::ConsumePrefix(&digits, "step-") || digits.size() < 8) return std::nullopt;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t step = 0;
  if (!absl::SimpleAtoi(digits, &step)) return std::nullopt;
  return step;
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": cannot remove: ", ec.message()));
  return absl::OkStatus();
}

absl::Status WriteLatest(const std::string& root, const std::string& dir_name) {
  return WriteFileAtomically(absl::StrCat(root, "/", kLatestFile), dir_name + "\n");
}

absl::StatusOr<std::string> ReadLatest(const std::string& root) {
  const std::string latest = absl::StrCat(root, "/", kLatestFile);
  const int fd = ::open(latest.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(latest, ": does not exist"));
    return Errno(errno, latest, "cannot open");
  }
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  const int err = errno;
  ::close(fd);
  if (n < 0) return Errno(err, latest, "read failed");
  std::string name(buf, static_cast<size_t>(n));
  absl::StripTrailingAsciiWhitespace(&name);
  if (name.empty() || name.find('/') != std::string::npos) {
    return absl::DataLossError(absl::StrCat(latest, ": does not hold a snapshot directory name"));
  }
  return name;
}

std::vector<std::pair<int64_t, std::string>> ListCompleteSnapshots(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::optional<int64_t> step = ParseStepDirName(name);
    if (step && it->is_directory(ec)) out.emplace_back(*step, name);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a > b; });
  return out;
}

absl::Status ApplyRetention(const std::string& root, int keep) {
  const absl::StatusOr<std::string> latest = ReadLatest(root);
  const auto snapshots = ListCompleteSnapshots(root);
  if (keep > 0) {
    for (size_t i = static_cast<size_t>(keep); i < snapshots.size(); ++i) {
      if (latest.ok() && snapshots[i].second == *latest) continue;
      RETURN_IF_ERROR(RemoveTree(absl::StrCat(root, "/", snapshots[i].second)));
    }
  }
  std::error_code ec;
  std::vector<std::string> stale;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, ".tmp-")) stale.push_back(it->path().string());
  }
  for (const std::string& path : stale) RETURN_IF_ERROR(RemoveTree(path));
  return FsyncDir(root);
}

}  // namespace moetrain::checkpoint

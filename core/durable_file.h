// Small-file writes that survive a crash: the one place for write + fsync + rename + directory fsync.
// Every error names the path and carries errno's text.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace moetrain {

// fsync of a directory (makes renames and new entries in it durable). File systems that cannot
// fsync directories (EINVAL/ENOTSUP) count as success.
absl::Status FsyncDir(const std::string& dir);
// Creates `path` (truncating), writes `contents`, fsyncs and closes it. Not atomic by itself.
absl::Status WriteFileDurably(const std::string& path, const std::string& contents);
// Atomically replaces `path` with `contents`: writes `path.tmp.<pid>` durably, renames it over
// `path` and fsyncs the directory. Readers see the old or the new file, never a partial one; on
// error the temp file is removed and `path` is untouched.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace moetrain

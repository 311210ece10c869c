// Small HDF5 C API helpers shared by the shard file writer and reader (internal to checkpoint/).
//
// H5Id owns one hid_t and closes it with the matching H5?close (by H5Iget_type). Hdf5Error turns
// the calling thread's HDF5 error stack into a Status that names the file and the object, with the
// library's innermost message (for a failed write(2) that is strerror's text, e.g. "No space left
// on device"). QuietHdf5() switches off HDF5's automatic printing of error stacks for the calling
// thread (the library is built thread-safe, where that setting is per thread); every public entry
// point of checkpoint/ that calls HDF5 calls it first.
#pragma once

#include <hdf5.h>

#include <string>

#include "absl/status/status.h"

namespace moetrain::checkpoint::hdf5 {

class H5Id {
 public:
  H5Id() = default;
  explicit H5Id(hid_t id) : id_(id) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  H5Id(H5Id&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  H5Id& operator=(H5Id&& o) noexcept;
  ~H5Id() { Reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes the handle; returns false when the close itself failed (for files: data not flushed).
  bool Reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

void QuietHdf5();

// The innermost (most specific) messages of the current thread's error stack, joined by "; ".
// Clears the stack.
std::string TakeErrorStack();

// True when the current error stack mentions a checksum failure (fletcher32). Does not clear it.
bool ErrorStackIsChecksum();

// Status `code` with "<path>: <object>: <what>: <error stack>" (object omitted when empty).
absl::Status Hdf5Error(absl::StatusCode code, const std::string& path, const std::string& object,
                       const std::string& what);

}  // namespace moetrain::checkpoint::hdf5

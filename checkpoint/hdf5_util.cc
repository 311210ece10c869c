#include "checkpoint/hdf5_util.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moetrain::checkpoint::hdf5 {

H5Id& H5Id::operator=(H5Id&& o) noexcept {
  if (this != &o) {
    Reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

bool H5Id::Reset() {
  if (id_ < 0) return true;
  herr_t rc = 0;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: rc = H5Fclose(id_); break;
    case H5I_GROUP: rc = H5Gclose(id_); break;
    case H5I_DATASET: rc = H5Dclose(id_); break;
    case H5I_DATASPACE: rc = H5Sclose(id_); break;
    case H5I_ATTR: rc = H5Aclose(id_); break;
    case H5I_GENPROP_LST: rc = H5Pclose(id_); break;
    case H5I_DATATYPE: rc = H5Tclose(id_); break;
    default: rc = H5Idec_ref(id_); break;
  }
  id_ = H5I_INVALID_HID;
  return rc >= 0;
}

void QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

namespace {

herr_t CollectMessage(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  out->push_back(err->desc ? err->desc : "");
  return 0;
}

std::vector<std::string> StackMessages() {
  std::vector<std::string> msgs;
  // H5E_WALK_UPWARD starts at the innermost call, where the concrete cause is reported.
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, CollectMessage, &msgs);
  return msgs;
}

// sec2's write/read failures carry "..., error message = 'No space left on device', ...": keep
// just strerror's text, which is what a user needs.
std::string Simplify(const std::string& msg) {
  const std::string key = "error message = '";
  const size_t at = msg.find(key);
  if (at == std::string::npos) return msg;
  const size_t begin = at + key.size();
  const size_t end = msg.find('\'', begin);
  return msg.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

}  // namespace

std::string TakeErrorStack() {
  std::vector<std::string> msgs = StackMessages();
  H5Eclear2(H5E_DEFAULT);
  std::vector<std::string> kept;
  for (size_t i = 0; i < msgs.size() && kept.size() < 2; ++i) {
    if (!msgs[i].empty()) kept.push_back(Simplify(msgs[i]));
  }
  if (kept.empty()) return "unknown HDF5 error";
  return absl::StrJoin(kept, "; ");
}

bool ErrorStackIsChecksum() {
  for (const std::string& m : StackMessages()) {
    if (m.find("Fletcher32") != std::string::npos || m.find("checksum") != std::string::npos) {
      return true;
    }
  }
  return false;
}

absl::Status Hdf5Error(absl::StatusCode code, const std::string& path, const std::string& object,
                       const std::string& what) {
  std::string msg = path;
  if (!object.empty()) absl::StrAppend(&msg, ": ", object);
  absl::StrAppend(&msg, ": ", what, ": ", TakeErrorStack());
  return absl::Status(code, msg);
}

}  // namespace moetrain::checkpoint::hdf5

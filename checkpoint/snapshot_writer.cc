#include "checkpoint/snapshot_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "checkpoint/snapshot_dir.h"
#include "core/logging.h"
#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

namespace fs = std::filesystem;

// A Status travels between ranks as kSlots int32s: the code, then up to 4*(kSlots-1) bytes of
// message (longer messages are cut; they are one line naming a path).
constexpr int kSlots = 256;
constexpr size_t kMessageBytes = 4 * (kSlots - 1);

std::vector<int32_t> Pack(const absl::Status& s) {
  std::vector<int32_t> buf(kSlots, 0);
  buf[0] = static_cast<int32_t>(s.code());
  const size_t n = std::min(s.message().size(), kMessageBytes - 1);
  std::memcpy(buf.data() + 1, s.message().data(), n);
  return buf;
}

absl::Status Unpack(const int32_t* buf) {
  const auto code = static_cast<absl::StatusCode>(buf[0]);
  if (code == absl::StatusCode::kOk) return absl::OkStatus();
  const char* text = reinterpret_cast<const char*>(buf + 1);
  return absl::Status(code, std::string(text, strnlen(text, kMessageBytes)));
}

// Every rank's status (a world of one: just `mine`).
absl::StatusOr<std::vector<absl::Status>> AllGatherStatus(parallel::Communicator* comm,
                                                          const absl::Status& mine) {
  if (comm == nullptr || comm->size() == 1) return std::vector<absl::Status>{mine};
  const std::vector<int32_t> send = Pack(mine);
  std::vector<int32_t> recv(static_cast<size_t>(kSlots) * comm->size());
  RETURN_IF_ERROR(comm->AllGather(send.data(), recv.data(), kSlots, DType::kI32));
  std::vector<absl::Status> all;
  for (int r = 0; r < comm->size(); ++r) all.push_back(Unpack(recv.data() + r * kSlots));
  return all;
}

// Rank 0's status on every rank.
absl::Status BroadcastStatus(parallel::Communicator* comm, const absl::Status& root_status) {
  if (comm == nullptr || comm->size() == 1) return root_status;
  std::vector<int32_t> buf = Pack(root_status);
  RETURN_IF_ERROR(comm->Broadcast(buf.data(), kSlots, DType::kI32, /*root=*/0));
  return Unpack(buf.data());
}

absl::Status MakeFreshDir(const std::string& root, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat(root, ": cannot create directory: ", ec.message()));
  RETURN_IF_ERROR(RemoveTree(dir));
  fs::create_directory(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create directory: ", ec.message()));
  return absl::OkStatus();
}

absl::Status RenameDir(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(
        err, absl::StrCat(to, ": cannot rename ", from, " to it: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

nlohmann::json MakeSnapshotMeta(int64_t step, int world_size, const SnapshotContents& contents,
                                const nlohmann::json& state) {
  nlohmann::json meta = nlohmann::json::object();
  meta["format"] = "moetrain-snapshot";
  meta["version"] = 1;
  meta["step"] = step;
  meta["world_size"] = world_size;
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [name, shape] : contents.tensors) tensors[name] = shape;
  meta["tensors"] = std::move(tensors);
  nlohmann::json fields = nlohmann::json::array();
  nlohmann::json field_tensors = nlohmann::json::object();
  for (const auto& [field, names] : contents.fields) {
    fields.push_back(field);
    if (!names.empty()) field_tensors[field] = names;
  }
  meta["fields"] = std::move(fields);
  if (!field_tensors.empty()) meta["field_tensors"] = std::move(field_tensors);
  nlohmann::json shards = nlohmann::json::array();
  for (int r = 0; r < world_size; ++r) shards.push_back(ShardFileName(r));
  meta["shards"] = std::move(shards);
  meta["state"] = state.is_null() ? nlohmann::json::object() : state;
  return meta;
}

SnapshotWriter::SnapshotWriter(parallel::Communicator* comm, int keep)
    : comm_(comm), keep_(keep) {
  if (comm_ != nullptr) {
    rank_ = comm_->rank();
    world_size_ = comm_->size();
  }
}

absl::Status SnapshotWriter::Begin(const std::string& root, int64_t step) {
  (void)async_.Wait();  // a previous, uncommitted write must not race the new directory
  root_ = root;
  step_ = step;
  tmp_dir_ = absl::StrCat(root, "/", TmpDirName(step));
  final_dir_ = absl::StrCat(root, "/", StepDirName(step));
  shard_path_ = absl::StrCat(tmp_dir_, "/", ShardFileName(rank_));
  local_ = absl::OkStatus();
  began_ = true;
  absl::Status made = rank_ == 0 ? MakeFreshDir(root, tmp_dir_) : absl::OkStatus();
  absl::Status all = BroadcastStatus(comm_, made);
  if (!all.ok()) began_ = false;
  return all;
}

absl::Status SnapshotWriter::WriteShard(const std::vector<ShardRecord>& records,
                                        const std::map<std::string, std::string>& blobs) {
  if (!began_) return absl::FailedPreconditionError("SnapshotWriter::WriteShard before Begin");
  absl::Status s = WriteShardFile(shard_path_, records, blobs);
  if (!s.ok() && local_.ok()) local_ = s;
  return s;
}

absl::Status SnapshotWriter::StartShardWrite(std::vector<ShardRecord> records,
                                             std::map<std::string, std::string> blobs) {
  if (!began_) return absl::FailedPreconditionError("SnapshotWriter::StartShardWrite before Begin");
  absl::Status s = async_.Start(shard_path_, std::move(records), std::move(blobs));
  if (!s.ok() && local_.ok()) local_ = s;
  return s;
}

absl::Status SnapshotWriter::Commit(const SnapshotContents& contents,
                                    const nlohmann::json& state) {
  absl::Status local = began_ ? local_ : absl::FailedPreconditionError(
                                             "SnapshotWriter::Commit without a successful Begin");
  const absl::Status written = async_.Wait();
  if (local.ok()) local = written;
  if (local.ok() && ::access(shard_path_.c_str(), F_OK) != 0) {
    local = absl::FailedPreconditionError(absl::StrCat(shard_path_, ": no shard was written"));
  }
  began_ = false;
  ASSIGN_OR_RETURN(std::vector<absl::Status> all, AllGatherStatus(comm_, local));
  std::string failures;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].ok()) continue;
    if (code == absl::StatusCode::kOk) code = all[r].code();
    absl::StrAppend(&failures, failures.empty() ? "" : "; ", "rank ", r, ": ", all[r].message());
  }
  if (code != absl::StatusCode::kOk) {
    if (rank_ == 0) (void)RemoveTree(tmp_dir_);  // frees the space; nothing was published
    return absl::Status(code, absl::StrCat("snapshot ", final_dir_, " not committed (", failures,
                                           "); ", root_, "/latest is unchanged"));
  }
  absl::Status published = rank_ == 0 ? Publish(contents, state) : absl::OkStatus();
  return BroadcastStatus(comm_, published);
}

absl::Status SnapshotWriter::Publish(const SnapshotContents& contents,
                                     const nlohmann::json& state) {
  const nlohmann::json meta = MakeSnapshotMeta(step_, world_size_, contents, state);
  const absl::Status meta_written =
      WriteFileDurably(absl::StrCat(tmp_dir_, "/", kMetaFile), meta.dump(2) + "\n");
  absl::Status synced = meta_written.ok() ? FsyncDir(tmp_dir_) : meta_written;
  if (!synced.ok()) {
    (void)RemoveTree(tmp_dir_);
    return absl::Status(synced.code(), absl::StrCat("snapshot ", final_dir_, " not committed: ",
                                                    synced.message()));
  }
  // Re-saving a step (e.g. after resuming from an older snapshot): move the old one aside under a
  // .tmp-* name, which retention removes should we die before removing it ourselves.
  const std::string replaced = absl::StrCat(root_, "/.tmp-replaced-", StepDirName(step_));
  std::error_code ec;
  if (fs::exists(final_dir_, ec)) {
    RETURN_IF_ERROR(RemoveTree(replaced));
    RETURN_IF_ERROR(RenameDir(final_dir_, replaced));
  }
  RETURN_IF_ERROR(RenameDir(tmp_dir_, final_dir_));
  RETURN_IF_ERROR(FsyncDir(root_));
  RETURN_IF_ERROR(WriteLatest(root_, StepDirName(step_)));
  (void)RemoveTree(replaced);
  // The snapshot is complete and `latest` names it: a retention failure is only worth a warning.
  const absl::Status retained = ApplyRetention(root_, keep_);
  if (!retained.ok()) MT_LOG(WARNING) << "snapshot retention: " << retained.message();
  return absl::OkStatus();
}

}  // namespace moetrain::checkpoint

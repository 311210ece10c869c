#include "checkpoint/async_shard_writer.h"

#include <utility>

namespace moetrain::checkpoint {

AsyncShardWriter::~AsyncShardWriter() { (void)Wait(); }

absl::Status AsyncShardWriter::Start(std::string path, std::vector<ShardRecord> records,
                                     std::map<std::string, std::string> blobs) {
  const bool unreported = !status_reported_;
  absl::Status previous = Wait();
  if (unreported && !previous.ok()) return previous;
  status_ = absl::OkStatus();
  status_reported_ = false;
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this, path = std::move(path), records = std::move(records),
                         blobs = std::move(blobs)]() mutable {
    status_ = WriteShardFile(path, records, blobs);
    // Free the host copy as soon as it is on disk, not when the owner next calls Wait().
    std::vector<ShardRecord>().swap(records);
    running_.store(false, std::memory_order_release);
  });
  return absl::OkStatus();
}

absl::Status AsyncShardWriter::Wait() {
  if (thread_.joinable()) thread_.join();
  status_reported_ = true;
  return status_;
}

}  // namespace moetrain::checkpoint

// AsyncShardWriter: writes one shard file on a background thread while the caller keeps training.
//
// The caller first copies the state to host memory (ShardRecord data), then moves the records into
// Start(); the writer owns them until the write finishes. One write at a time: Start() waits for
// the previous write. Wait() returns the status of the last write (OK when none was started) and
// may be called any number of times. The thread only calls WriteShardFile (HDF5, built
// thread-safe); no MPI is used off the caller's thread.
// Thread-safety: call Start/Done/Wait from one thread (the owner). The destructor waits.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "checkpoint/shard_file.h"

namespace moetrain::checkpoint {

class AsyncShardWriter {
 public:
  AsyncShardWriter() = default;
  AsyncShardWriter(const AsyncShardWriter&) = delete;
  AsyncShardWriter& operator=(const AsyncShardWriter&) = delete;
  ~AsyncShardWriter();

  // Waits for the previous write. If that write failed and its error was not yet returned by
  // Wait(), returns that error and starts nothing; otherwise starts writing `path` and returns OK.
  absl::Status Start(std::string path, std::vector<ShardRecord> records,
                     std::map<std::string, std::string> blobs);
  // True when no write is in flight.
  bool Done() const { return !running_.load(std::memory_order_acquire); }
  // Blocks until the current write (if any) finishes; returns its status (OK when none).
  absl::Status Wait();

 private:
  std::thread thread_;
  std::atomic<bool> running_{false};
  absl::Status status_;          // written by the thread, read after join
  bool status_reported_ = true;  // Wait() returned status_ already
};

}  // namespace moetrain::checkpoint

// One rank's HDF5 shard file of a snapshot: records (hyperslabs of tensors, per field) and blobs.
//
// Layout (docs/checkpoint_format.md): record k of (field, tensor) in this file is the dataset
// `/<field>/<tensor>/<k>` (k = 0, 1, ...), a 1-D float32 array of product(count) values, row-major
// over `count`, chunked with the fletcher32 checksum filter, with int64 attributes full_shape,
// offset, count (arrays of the tensor's rank) and step (scalar). Blobs are `/blobs/<name>`, 1-D
// uint8, fletcher32.
//
// Writing: WriteShardFile validates every record before touching the file system, writes `path`,
// closes and fsyncs it; on failure it removes the partial file. Reading: ShardFile::Open indexes
// attributes only (no data is read, nothing is allocated from sizes in the file beyond tiny,
// bounded attribute arrays); data is read per value range by ReadRange, where HDF5 verifies each
// chunk's checksum (a mismatch is DataLoss naming the file and dataset).
// Every error names the file, and the dataset where one is involved.
// Thread-safety: HDF5 is built thread-safe (one global lock); a ShardFile may be used from one
// thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/hdf5_util.h"

namespace moetrain::checkpoint {

// One hyperslab of one tensor for one field.
struct ShardRecord {
  std::string field;                // "param" (fp32 master), "exp_avg", "exp_avg_sq", or any name
  std::string tensor;               // ParamTable name, e.g. model.layers.0.mlp.w1.weight
  std::vector<int64_t> full_shape;  // the tensor's global shape
  std::vector<int64_t> offset;      // hyperslab start in the full tensor (same rank as full_shape)
  std::vector<int64_t> count;       // hyperslab extent
  std::vector<float> data;          // row-major over count (product(count) values)
  int64_t step = 0;                 // per-tensor optimizer step count
};

// Number of elements of a shape (1 for rank 0); -1 if a dim is negative or the product overflows.
int64_t Volume(const std::vector<int64_t>& shape);

// Writes `records` and `blobs` (name -> bytes) to a new HDF5 file at `path` (fsync'd).
// REQUIRES of each record (InvalidArgument naming path and record otherwise): field and tensor
// non-empty, without '/', field != "blobs"; offset/count of the rank of full_shape; count >= 1
// and offset >= 0 and offset + count <= full_shape in every dim; data.size() == product(count).
// Blob names non-empty without '/'. I/O failures name the path (e.g. "...: write failed: No space
// left on device"); the partial file is removed.
absl::Status WriteShardFile(const std::string& path, const std::vector<ShardRecord>& records,
                            const std::map<std::string, std::string>& blobs);

// A record's index entry: everything but the data.
struct ShardPiece {
  std::string field;
  std::string tensor;
  std::string dataset;  // "/<field>/<tensor>/<k>"
  std::vector<int64_t> full_shape;
  std::vector<int64_t> offset;
  std::vector<int64_t> count;
  int64_t step = 0;
  int64_t num_values = 0;  // the dataset's extent (== Volume(count) once validated)
};

class ShardFile {
 public:
  // Opens `path` read-only and indexes it. Failing to open the file (missing, not HDF5, truncated)
  // is the returned error; a malformed object inside it (a dataset without its attributes, a name
  // that is not a record index, an attribute array of the wrong size) is appended to `problems`
  // as "path: dataset: what" and the object is left out of the index.
  static absl::StatusOr<ShardFile> Open(const std::string& path, std::vector<std::string>* problems);

  ShardFile(ShardFile&&) = default;
  ShardFile& operator=(ShardFile&&) = default;

  const std::string& path() const { return path_; }
  const std::vector<ShardPiece>& pieces() const { return pieces_; }
  const std::map<std::string, int64_t>& blob_sizes() const { return blob_sizes_; }

  // Reads values [begin, begin + n) of `piece`'s dataset into out (n floats). REQUIRES: the range
  // lies inside the dataset. DataLoss naming file and dataset when a checksum fails or the read
  // fails.
  absl::Status ReadRange(const ShardPiece& piece, int64_t begin, int64_t n, float* out) const;
  // NotFound if the file has no such blob; DataLoss on a checksum or read failure.
  absl::StatusOr<std::string> ReadBlob(const std::string& name) const;
  // Reads every record and blob in chunk-sized pieces (every checksum); one Status per failure.
  std::vector<absl::Status> VerifyAll() const;

 private:
  ShardFile() = default;
  std::string path_;
  hdf5::H5Id file_;
  std::vector<ShardPiece> pieces_;
  std::map<std::string, int64_t> blob_sizes_;
};

}  // namespace moetrain::checkpoint

// Safetensors reading and writing (the Hugging Face tensor file format).
//
// Format: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON, then the data buffer.
//   {"__metadata__": {"key": "value", ...},                      (optional, string values only)
//    "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the start of the data buffer; data is row-major and little-endian.
// moetrain reads and writes the dtypes it has (core/dtype.h): F64, F32, BF16, F16, I32, I64,
// I8. Other dtypes of the spec (U8, BOOL, F8_*, ...) make Open fail with a message naming the tensor.
//
// Reading: SafetensorsFile::Open maps the file read-only and validates the whole header up front,
// so every later call only fails for caller errors (unknown name, wrong destination shape or
// dtype). Writing: WriteSafetensors is atomic: it writes `path + ".tmp.<pid>"`, fsyncs it, renames
// it over `path` and fsyncs the directory. A failure never leaves a partial file at `path`; an
// existing file there stays untouched unless the rename succeeded. See docs/safetensors.md.
//
// Every error Status names the file (and the tensor, where one is involved).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "core/tensor.h"

namespace moetrain::checkpoint {

// "F32", "F64", "BF16", "F16", "I32", "I64", "I8": the safetensors spelling of a DType.
const char* SafetensorsDTypeName(DType dtype);
// Inverse of SafetensorsDTypeName. InvalidArgument for any other string (including valid spec
// dtypes moetrain cannot represent, such as "U8").
absl::StatusOr<DType> ParseSafetensorsDType(const std::string& name);

// One tensor entry of a file's header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;   // dtype stored in the file
  std::vector<int64_t> shape;  // [] for a scalar
  int64_t numel = 0;           // product of shape (1 for a scalar)
  size_t nbytes = 0;           // numel * DTypeSize(dtype) == end - begin of data_offsets
  size_t file_offset = 0;      // absolute byte offset of the data in the file
};

// A validated, read-only, memory-mapped safetensors file.
//
// Open checks: the file exists and is a regular file; it has at least 8 bytes; the header length
// fits in the file; the header is a JSON object; each tensor has a known dtype, a shape of
// non-negative integers and two data_offsets begin <= end; (end - begin) == numel * dtype size;
// every range lies inside the data buffer; no two non-empty ranges overlap; "__metadata__" (if
// present) maps strings to strings. Holes between ranges and ranges in any order are allowed (the
// spec permits them).
//
// Lifetime: owns the mapping; move-only. The file must not be truncated while open (reading a
// truncated mapping raises SIGBUS); replacing it by rename, as WriteSafetensors does, is safe.
// Thread-safety: all const methods may be called concurrently from any number of threads.
class SafetensorsFile {
 public:
  // Errors: NotFound if the file does not exist; FailedPrecondition if it cannot be opened or
  // mapped or is not a regular file; DataLoss for any header or layout problem listed above.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensor names, sorted (never includes "__metadata__").
  std::vector<std::string> Names() const;
  bool Has(const std::string& name) const { return tensors_.count(name) > 0; }
  // The "__metadata__" map; empty when the file has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // NotFound if the file has no tensor `name`.
  absl::StatusOr<TensorInfo> Info(const std::string& name) const;

  // The tensor's elements converted to double / float, row-major. Any stored dtype converts (16-bit
  // floats exactly, F64 -> float rounds to nearest, I64 -> floating point may round).
  // NotFound if the file has no tensor `name`.
  absl::StatusOr<std::vector<double>> ReadAsDouble(const std::string& name) const;
  absl::StatusOr<std::vector<float>> ReadAsFloat(const std::string& name) const;

  // Copies the tensor into dst, converting from the stored dtype.
  // REQUIRES: dst.data() points to dst.nbytes() writable bytes (unless dst is empty of elements).
  // Supported: dst f32/f64 from any stored dtype; dst of any dtype equal to the stored dtype (a raw
  // copy, e.g. BF16 into bf16). Errors: NotFound (no such tensor); InvalidArgument if dst.shape()
  // is not exactly the stored shape (message names the tensor, the file and both shapes), if the
  // conversion is unsupported, or if dst is not on the CPU.
  absl::Status ReadInto(const std::string& name, const TensorView& dst) const;

 private:
  struct Entry {
    TensorInfo info;
    const uint8_t* data = nullptr;  // into the mapping
  };
  SafetensorsFile() = default;
  absl::StatusOr<const Entry*> Find(const std::string& name) const;
  void Release();

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: its name, its data (CPU, contiguous) and the dtype to store it as.
struct NamedTensor {
  std::string name;
  TensorView view;
  DType out_dtype = DType::kF32;
};

// Writes `tensors` (laid out in the order given, no gaps) and `metadata` to `path` atomically.
// Conversions: f32/f64 data to F32, F64, BF16 or F16 (16-bit outputs round to nearest even with
// core/dtype.h; f64 data goes through f32 first, as torch does); any data to its own dtype (raw
// copy). The JSON header keeps the given order, puts "__metadata__" first (omitted when metadata is
// empty) and is padded with spaces to a multiple of 8 bytes, as the Python library writes it.
// REQUIRES: every view with elements has non-null data.
// Errors (all name the file): InvalidArgument for an empty, duplicate or reserved ("__metadata__")
// name, a non-CPU view, an unsupported conversion or invalid UTF-8 in a name or metadata (all
// checked before anything is created); Internal for any I/O failure (the temp file is removed).
// Thread-safety: safe to call concurrently for different paths; not for the same path from two
// threads of one process (they would share the temp name).
absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace moetrain::checkpoint

#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this reader copies bytes as-is");

namespace moetrain::checkpoint {
namespace {

constexpr char kMetadataKey[] = "__metadata__";

std::string Where(const std::string& path) { return absl::StrCat("safetensors '", path, "': "); }

std::string ShapeString(const std::vector<int64_t>& dims) {
  return absl::StrCat("(", absl::StrJoin(dims, ", "), ")");
}

absl::Status DataLoss(const std::string& path, const std::string& msg) {
  return absl::DataLossError(absl::StrCat(Where(path), msg));
}

absl::Status ErrnoError(int err, const std::string& path, const std::string& what) {
  return absl::ErrnoToStatus(err, absl::StrCat(Where(path), what, ": ", std::strerror(err)));
}

// Reads one little-endian element of type T at an arbitrary (possibly unaligned) address.
template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Converts n stored elements of dtype `src` at `bytes` to T (float or double).
template <typename T>
void ConvertToFloating(DType src, const uint8_t* bytes, int64_t n, T* out) {
  switch (src) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<float>(bytes + 4 * i));
      return;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<double>(bytes + 8 * i));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(Load<uint16_t>(bytes + 2 * i));
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = F16ToFloat(Load<uint16_t>(bytes + 2 * i));
      return;
    case DType::kI32:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<int32_t>(bytes + 4 * i));
      return;
    case DType::kI64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<int64_t>(bytes + 8 * i));
      return;
    case DType::kI8:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<int8_t>(bytes[i]));
      return;
  }
  MT_CHECK_MSG(false, "unhandled dtype ", static_cast<int>(src));
}

// Encodes `count` elements of floating-point data (float or double) starting at `src` as `out`.
template <typename S>
void EncodeFloating(const S* src, int64_t count, DType out, uint8_t* dst) {
  for (int64_t i = 0; i < count; ++i) {
    switch (out) {
      case DType::kF32: {
        const float v = static_cast<float>(src[i]);
        std::memcpy(dst + 4 * i, &v, 4);
        break;
      }
      case DType::kF64: {
        const double v = static_cast<double>(src[i]);
        std::memcpy(dst + 8 * i, &v, 8);
        break;
      }
      case DType::kBF16: {
        const uint16_t v = FloatToBf16(static_cast<float>(src[i]));
        std::memcpy(dst + 2 * i, &v, 2);
        break;
      }
      case DType::kF16: {
        const uint16_t v = FloatToF16(static_cast<float>(src[i]));
        std::memcpy(dst + 2 * i, &v, 2);
        break;
      }
      default:
        MT_CHECK_MSG(false, "unsupported output dtype ", DTypeName(out));
    }
  }
}

bool IsFloatOut(DType t) {
  return t == DType::kF32 || t == DType::kF64 || t == DType::kBF16 || t == DType::kF16;
}

bool CanWrite(DType in, DType out) {
  if (in == out) return true;
  return (in == DType::kF32 || in == DType::kF64) && IsFloatOut(out);
}

// Owns a file descriptor; closes it on destruction unless released.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports close()'s errno (0 on success).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, const void* data, size_t n, const std::string& tmp_path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, tmp_path, "write failed");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

const char* SafetensorsDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kI8:
      return "I8";
  }
  return "?";
}

absl::StatusOr<DType> ParseSafetensorsDType(const std::string& name) {
  for (DType t : {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64,
                  DType::kI8}) {
    if (name == SafetensorsDTypeName(t)) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported safetensors dtype '", name, "' (moetrain reads F64, F32, BF16, F16, I32, I64, I8)"));
}

// ---------------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    Release();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    tensors_ = std::move(other.tensors_);  // Entry::data points into the mapping, which moves along
    metadata_ = std::move(other.metadata_);
    other.tensors_.clear();
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { Release(); }

void SafetensorsFile::Release() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile file;
  file.path_ = path;
  size_t size = 0;
  {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return ErrnoError(errno, path, "cannot open");
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, path, "cannot stat");
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(Where(path), "not a regular file"));
    }
    size = static_cast<size_t>(st.st_size);
    if (size < 8) {
      return DataLoss(
          path, absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (map == MAP_FAILED) return ErrnoError(errno, path, "mmap failed");
    file.map_ = map;
    file.map_size_ = size;
  }  // the mapping stays valid after the descriptor is closed
  const auto* bytes = static_cast<const uint8_t*>(file.map_);

  const uint64_t header_len = Load<uint64_t>(bytes);
  if (header_len > size - 8) {
    return DataLoss(path, absl::StrCat("header length ", header_len, " exceeds the file size ",
                                       size, " minus 8"));
  }
  const uint8_t* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(path, absl::StrCat("invalid JSON header: ", e.what()));
  }
  if (!header.is_object()) {
    return DataLoss(path, absl::StrCat("header is a JSON ", header.type_name(), ", not an object"));
  }

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == kMetadataKey) {
      if (!v.is_object()) return DataLoss(path, "__metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return DataLoss(path, absl::StrCat("__metadata__ value for '", m.key(), "' is a ",
                                             m.value().type_name(), ", not a string"));
        }
        file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", name, "': ");
    if (!v.is_object()) return DataLoss(path, absl::StrCat(where, "entry is not a JSON object"));
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      if (!v.contains(field)) {
        return DataLoss(path, absl::StrCat(where, "missing field '", field, "'"));
      }
    }
    const nlohmann::json& jdtype = v["dtype"];
    const nlohmann::json& jshape = v["shape"];
    const nlohmann::json& joffsets = v["data_offsets"];
    if (!jdtype.is_string()) return DataLoss(path, absl::StrCat(where, "dtype is not a string"));
    auto dtype = ParseSafetensorsDType(jdtype.get<std::string>());
    if (!dtype.ok()) return DataLoss(path, absl::StrCat(where, dtype.status().message()));

    Entry entry;
    entry.info.name = name;
    entry.info.dtype = *dtype;
    if (!jshape.is_array()) return DataLoss(path, absl::StrCat(where, "shape is not an array"));
    uint64_t numel = 1;
    constexpr uint64_t kMaxNumel = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (const auto& d : jshape) {
      if (!d.is_number_unsigned()) {
        return DataLoss(path, absl::StrCat(where, "shape ", jshape.dump(),
                                           " is not a list of non-negative integers"));
      }
      const uint64_t dim = d.get<uint64_t>();
      if (dim > kMaxNumel || (dim != 0 && numel > kMaxNumel / dim)) {
        return DataLoss(path, absl::StrCat(where, "shape ", jshape.dump(), " overflows"));
      }
      numel *= dim;
      entry.info.shape.push_back(static_cast<int64_t>(dim));
    }
    entry.info.numel = static_cast<int64_t>(numel);
    const uint64_t esize = DTypeSize(*dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize) {
      return DataLoss(path, absl::StrCat(where, "shape ", jshape.dump(), " overflows"));
    }
    const uint64_t nbytes = numel * esize;

    if (!joffsets.is_array() || joffsets.size() != 2 || !joffsets[0].is_number_unsigned() ||
        !joffsets[1].is_number_unsigned()) {
      return DataLoss(path, absl::StrCat(where, "data_offsets ", joffsets.dump(),
                                         " is not [begin, end] of non-negative integers"));
    }
    const uint64_t begin = joffsets[0].get<uint64_t>();
    const uint64_t end = joffsets[1].get<uint64_t>();
    if (begin > end) {
      return DataLoss(path,
                      absl::StrCat(where, "data_offsets [", begin, ", ", end, "] has begin > end"));
    }
    if (end - begin != nbytes) {
      return DataLoss(
          path, absl::StrCat(where, "data_offsets [", begin, ", ", end, "] hold ", end - begin,
                             " bytes but ", jdtype.get<std::string>(), " shape ",
                             ShapeString(entry.info.shape), " needs ", nbytes));
    }
    if (end > data_size) {
      return DataLoss(path, absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                         "] run past the data buffer of ", data_size,
                                         " bytes (file truncated?)"));
    }
    entry.info.nbytes = static_cast<size_t>(nbytes);
    entry.info.file_offset = static_cast<size_t>(8 + header_len + begin);
    entry.data = data + begin;
    auto inserted = file.tensors_.emplace(name, std::move(entry));
    if (nbytes > 0) ranges.push_back({begin, end, &inserted.first->first});
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      return DataLoss(
          path, absl::StrCat("tensors '", *ranges[i - 1].name, "' [", ranges[i - 1].begin, ", ",
                             ranges[i - 1].end, ") and '", *ranges[i].name, "' [", ranges[i].begin,
                             ", ", ranges[i].end, ") overlap"));
    }
  }
  return file;
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& kv : tensors_) names.push_back(kv.first);
  return names;
}

absl::StatusOr<const SafetensorsFile::Entry*> SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(Where(path_), "no tensor '", name, "' (file has ",
                                            tensors_.size(), " tensors)"));
  }
  return &it->second;
}

absl::StatusOr<TensorInfo> SafetensorsFile::Info(const std::string& name) const {
  ASSIGN_OR_RETURN(const Entry* e, Find(name));
  return e->info;
}

absl::StatusOr<std::vector<double>> SafetensorsFile::ReadAsDouble(const std::string& name) const {
  ASSIGN_OR_RETURN(const Entry* e, Find(name));
  std::vector<double> out(static_cast<size_t>(e->info.numel));
  ConvertToFloating(e->info.dtype, e->data, e->info.numel, out.data());
  return out;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadAsFloat(const std::string& name) const {
  ASSIGN_OR_RETURN(const Entry* e, Find(name));
  std::vector<float> out(static_cast<size_t>(e->info.numel));
  ConvertToFloating(e->info.dtype, e->data, e->info.numel, out.data());
  return out;
}

absl::Status SafetensorsFile::ReadInto(const std::string& name, const TensorView& dst) const {
  ASSIGN_OR_RETURN(const Entry* e, Find(name));
  const TensorInfo& info = e->info;
  if (dst.device() != Device::kCpu) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path_), "tensor '", name, "': destination ", dst.ToString(), " is not on the CPU"));
  }
  if (dst.shape().dims() != info.shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(path_), "tensor '", name, "' has shape ", ShapeString(info.shape),
                     " but the destination has shape ", dst.shape().ToString()));
  }
  const bool raw = dst.dtype() == info.dtype;
  if (!raw && dst.dtype() != DType::kF32 && dst.dtype() != DType::kF64) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path_), "tensor '", name, "': cannot convert stored ",
        SafetensorsDTypeName(info.dtype), " to a ", DTypeName(dst.dtype()),
        " destination (supported: f32/f64 from any dtype, or the stored dtype itself)"));
  }
  if (info.numel == 0) return absl::OkStatus();
  MT_CHECK_MSG(dst.data() != nullptr, "ReadInto('", name, "'): destination has no data");
  if (raw) {
    std::memcpy(dst.data(), e->data, info.nbytes);
  } else if (dst.dtype() == DType::kF32) {
    ConvertToFloating(info.dtype, e->data, info.numel, static_cast<float*>(dst.data()));
  } else {
    ConvertToFloating(info.dtype, e->data, info.numel, static_cast<double*>(dst.data()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------
// Writer

absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  // 1. Validate everything and build the header before touching the file system.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) meta[kv.first] = kv.second;
    header[kMetadataKey] = std::move(meta);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(path), "invalid tensor name '", t.name, "'"));
    }
    if (!seen.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(path), "duplicate tensor name '", t.name, "'"));
    }
    if (t.view.device() != Device::kCpu) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(path), "tensor '", t.name, "': ", t.view.ToString(), " is not on the CPU"));
    }
    if (!CanWrite(t.view.dtype(), t.out_dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(path), "tensor '", t.name, "': cannot write ",
                       DTypeName(t.view.dtype()), " data as ", DTypeName(t.out_dtype),
                       " (supported: f32/f64 to F32, F64, BF16, F16, or any dtype to itself)"));
    }
    MT_CHECK_MSG(t.view.numel() == 0 || t.view.data() != nullptr, "WriteSafetensors: tensor '",
                 t.name, "' has no data");
    const uint64_t nbytes = static_cast<uint64_t>(t.view.numel()) * DTypeSize(t.out_dtype);
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = SafetensorsDTypeName(t.out_dtype);
    entry["shape"] = t.view.shape().dims();
    entry["data_offsets"] = nlohmann::ordered_json::array({offset, offset + nbytes});
    header[t.name] = std::move(entry);
    offset += nbytes;
  }
  std::string header_text;
  try {
    header_text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path), "cannot encode the header (names and metadata must be UTF-8): ", e.what()));
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  uint8_t len_bytes[8];
  const uint64_t header_len = header_text.size();
  std::memcpy(len_bytes, &header_len, 8);

  // 2. Write the temp file; remove it on any failure.
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError(errno, tmp, "cannot create temp file");
  bool committed = false;
  struct RemoveTemp {
    const std::string& tmp;
    const bool& committed;
    ~RemoveTemp() {
      if (!committed) ::unlink(tmp.c_str());
    }
  } remove_temp{tmp, committed};

  RETURN_IF_ERROR(WriteAll(fd.get(), len_bytes, 8, tmp));
  RETURN_IF_ERROR(WriteAll(fd.get(), header_text.data(), header_text.size(), tmp));
  constexpr int64_t kChunk = int64_t{1} << 16;  // elements converted per write
  std::vector<uint8_t> buf;
  for (const NamedTensor& t : tensors) {
    const int64_t n = t.view.numel();
    if (n == 0) continue;
    if (t.view.dtype() == t.out_dtype) {
      RETURN_IF_ERROR(WriteAll(fd.get(), t.view.data(), t.view.nbytes(), tmp));
      continue;
    }
    const size_t out_size = DTypeSize(t.out_dtype);
    buf.resize(static_cast<size_t>(std::min(n, kChunk)) * out_size);
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t count = std::min(kChunk, n - i);
      if (t.view.dtype() == DType::kF32) {
        EncodeFloating(static_cast<const float*>(t.view.data()) + i, count, t.out_dtype,
                       buf.data());
      } else {
        EncodeFloating(static_cast<const double*>(t.view.data()) + i, count, t.out_dtype,
                       buf.data());
      }
      RETURN_IF_ERROR(WriteAll(fd.get(), buf.data(), static_cast<size_t>(count) * out_size, tmp));
    }
  }
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, tmp, "fsync failed");
  if (const int err = fd.Close(); err != 0) return ErrnoError(err, tmp, "close failed");

  // 3. Publish: rename over the target, then make the rename durable.
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoError(errno, path, absl::StrCat("cannot rename '", tmp, "' over it"));
  }
  committed = true;
  const std::string dir = DirName(path);
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) {
    return ErrnoError(errno, path,
                      absl::StrCat("written, but cannot open directory '", dir, "' to fsync it"));
  }
  // Some file systems do not support fsync on directories (EINVAL); the rename is then as durable
  // as that file system makes it.
  if (::fsync(dir_fd.get()) != 0 && errno != EINVAL && errno != ENOTSUP) {
    return ErrnoError(errno, path,
                      absl::StrCat("written, but fsync of directory '", dir, "' failed"));
  }
  return absl::OkStatus();
}

}  // namespace moetrain::checkpoint

#include "checkpoint/shard_file.h"

#include "checkpoint/snapshot_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

using hdf5::H5Id;
using hdf5::Hdf5Error;

// Chunk size of the 1-D datasets: 1 Mi values (4 MiB of float32). Each chunk carries its own
// fletcher32 checksum, and a slab read touches (and verifies) only the chunks it needs.
constexpr hsize_t kChunkValues = hsize_t{1} << 20;
// Attribute arrays longer than this are malformed (tensors have a handful of dims).
constexpr hssize_t kMaxRank = 32;

std::string Shape(const std::vector<int64_t>& v) { return absl::StrCat("[", absl::StrJoin(v, ","), "]"); }

std::string Dataset(const std::string& field, const std::string& tensor, int k) {
  return absl::StrCat("/", field, "/", tensor, "/", k);
}

bool ValidName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

absl::Status CheckRecord(const std::string& path, const ShardRecord& r) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": record field '", r.field, "' tensor '",
                                                   r.tensor, "': ", what));
  };
  if (!ValidName(r.field) || r.field == "blobs") return bad("invalid field name");
  if (!ValidName(r.tensor)) return bad("invalid tensor name");
  const size_t rank = r.full_shape.size();
  if (r.offset.size() != rank || r.count.size() != rank) {
    return bad(absl::StrCat("offset ", Shape(r.offset), " and count ", Shape(r.count),
                            " must have the rank of full_shape ", Shape(r.full_shape)));
  }
  for (size_t d = 0; d < rank; ++d) {
    if (r.count[d] < 1 || r.offset[d] < 0 || r.full_shape[d] < r.offset[d] + r.count[d]) {
      return bad(absl::StrCat("hyperslab offset ", Shape(r.offset), " count ", Shape(r.count),
                              " is empty or outside full_shape ", Shape(r.full_shape)));
    }
  }
  const int64_t n = Volume(r.count);
  if (n < 0 || static_cast<int64_t>(r.data.size()) != n) {
    return bad(absl::StrCat("data has ", r.data.size(), " values, count ", Shape(r.count),
                            " needs ", n));
  }
  return absl::OkStatus();
}

absl::Status WriteInt64Attr(hid_t obj, const char* name, const std::vector<int64_t>& v,
                            bool scalar, const std::string& path, const std::string& ds) {
  const hsize_t dims[1] = {v.size()};
  H5Id space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr));
  H5Id attr(space.valid() ? H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                                       H5P_DEFAULT)
                          : H5I_INVALID_HID);
  if (!attr.valid() || (!v.empty() && H5Awrite(attr.get(), H5T_NATIVE_INT64, v.data()) < 0)) {
    return Hdf5Error(absl::StatusCode::kInternal, path, ds,
                     absl::StrCat("cannot write attribute ", name));
  }
  return absl::OkStatus();
}

// Creates (or opens) group `name` under `parent`.
absl::StatusOr<H5Id> CreateOrOpenGroup(hid_t parent, const std::string& name,
                                       const std::string& path) {
  if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) > 0) {
    H5Id g(H5Gopen2(parent, name.c_str(), H5P_DEFAULT));
    if (g.valid()) return g;
  } else {
    H5Id g(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (g.valid()) return g;
  }
  return Hdf5Error(absl::StatusCode::kInternal, path, name, "cannot create group");
}

// A chunked, fletcher32-checked 1-D dataset of n values of `file_type`, written from `data`.
absl::Status WriteDataset1D(hid_t parent, const std::string& name, hid_t file_type,
                            hid_t mem_type, const void* data, hsize_t n, const std::string& path,
                            const std::string& ds, H5Id* out) {
  const hsize_t dims[1] = {n};
  // A chunked dataset needs chunk <= extent unless the extent may grow: empty blobs get an
  // unlimited maximum so they can use the same (chunked, checksummed) layout.
  const hsize_t unlimited[1] = {H5S_UNLIMITED};
  H5Id space(H5Screate_simple(1, dims, n == 0 ? unlimited : nullptr));
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  const hsize_t chunk[1] = {std::max<hsize_t>(1, std::min(n, kChunkValues))};
  if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), 1, chunk) < 0 ||
      H5Pset_fletcher32(dcpl.get()) < 0) {
    return Hdf5Error(absl::StatusCode::kInternal, path, ds, "cannot set up the dataset");
  }
  H5Id dset(H5Dcreate2(parent, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(),
                       H5P_DEFAULT));
  if (!dset.valid()) return Hdf5Error(absl::StatusCode::kInternal, path, ds, "cannot create dataset");
  if (n > 0 && H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    return Hdf5Error(absl::StatusCode::kInternal, path, ds, "write failed");
  }
  *out = std::move(dset);
  return absl::OkStatus();
}

absl::Status WriteContents(hid_t file, const std::string& path,
                           const std::vector<ShardRecord>& records,
                           const std::map<std::string, std::string>& blobs) {
  std::map<std::pair<std::string, std::string>, int> next_k;
  for (const ShardRecord& r : records) {
    ASSIGN_OR_RETURN(H5Id field_group, CreateOrOpenGroup(file, r.field, path));
    ASSIGN_OR_RETURN(H5Id tensor_group, CreateOrOpenGroup(field_group.get(), r.tensor, path));
    const int k = next_k[{r.field, r.tensor}]++;
    const std::string ds = Dataset(r.field, r.tensor, k);
    H5Id dset;
    RETURN_IF_ERROR(WriteDataset1D(tensor_group.get(), std::to_string(k), H5T_IEEE_F32LE,
                                   H5T_NATIVE_FLOAT, r.data.data(), r.data.size(), path, ds,
                                   &dset));
    RETURN_IF_ERROR(WriteInt64Attr(dset.get(), "full_shape", r.full_shape, false, path, ds));
    RETURN_IF_ERROR(WriteInt64Attr(dset.get(), "offset", r.offset, false, path, ds));
    RETURN_IF_ERROR(WriteInt64Attr(dset.get(), "count", r.count, false, path, ds));
    RETURN_IF_ERROR(WriteInt64Attr(dset.get(), "step", {r.step}, true, path, ds));
    if (!dset.Reset()) return Hdf5Error(absl::StatusCode::kInternal, path, ds, "write failed");
  }
  if (!blobs.empty()) {
    ASSIGN_OR_RETURN(H5Id group, CreateOrOpenGroup(file, "blobs", path));
    for (const auto& [name, bytes] : blobs) {
      H5Id dset;
      const std::string ds = absl::StrCat("/blobs/", name);
      RETURN_IF_ERROR(WriteDataset1D(group.get(), name, H5T_STD_U8LE, H5T_NATIVE_UINT8,
                                     bytes.data(), bytes.size(), path, ds, &dset));
    }
  }
  return absl::OkStatus();
}


// Reads a small int64 attribute array (or scalar) of `obj`.
absl::StatusOr<std::vector<int64_t>> ReadInt64Attr(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return absl::NotFoundError(absl::StrCat("missing attribute ", name));
  }
  H5Id attr(H5Aopen(obj, name, H5P_DEFAULT));
  H5Id space(attr.valid() ? H5Aget_space(attr.get()) : H5I_INVALID_HID);
  const hssize_t n = space.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
  if (n < 0 || n > kMaxRank) {
    H5Eclear2(H5E_DEFAULT);
    return absl::DataLossError(absl::StrCat("attribute ", name, " is unreadable or has ", n,
                                            " values (at most ", kMaxRank, ")"));
  }
  std::vector<int64_t> v(static_cast<size_t>(n));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_INT64, v.data()) < 0) {
    return absl::DataLossError(
        absl::StrCat("cannot read attribute ", name, ": ", hdf5::TakeErrorStack()));
  }
  return v;
}

// Names of the links directly under `group`, in name order.
std::vector<std::string> ChildNames(hid_t group) {
  std::vector<std::string> names;
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                           H5P_DEFAULT);
    if (len < 0) continue;
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

H5I_type_t ObjectType(hid_t parent, const std::string& name, H5Id* out) {
  H5Id obj(H5Oopen(parent, name.c_str(), H5P_DEFAULT));
  if (!obj.valid()) {
    H5Eclear2(H5E_DEFAULT);
    return H5I_BADID;
  }
  const H5I_type_t t = H5Iget_type(obj.get());
  *out = std::move(obj);
  return t;
}

int64_t DatasetExtent(hid_t dset) {
  H5Id space(H5Dget_space(dset));
  if (!space.valid() || H5Sget_simple_extent_ndims(space.get()) != 1) return -1;
  hsize_t dims[1];
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return static_cast<int64_t>(dims[0]);
}

// Reads [begin, begin + n) of a 1-D dataset as mem_type.
absl::Status ReadDatasetRange(hid_t file, const std::string& path, const std::string& ds,
                              hid_t mem_type, int64_t begin, int64_t n, void* out) {
  if (n == 0) return absl::OkStatus();
  H5Id dset(H5Dopen2(file, ds.c_str(), H5P_DEFAULT));
  H5Id fspace(dset.valid() ? H5Dget_space(dset.get()) : H5I_INVALID_HID);
  const hsize_t start[1] = {static_cast<hsize_t>(begin)};
  const hsize_t count[1] = {static_cast<hsize_t>(n)};
  H5Id mspace(H5Screate_simple(1, count, nullptr));
  if (!fspace.valid() || !mspace.valid() ||
      H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0) {
    return Hdf5Error(absl::StatusCode::kDataLoss, path, ds, "cannot open dataset");
  }
  if (H5Dread(dset.get(), mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out) < 0) {
    if (hdf5::ErrorStackIsChecksum()) {
      hdf5::TakeErrorStack();
      return absl::DataLossError(absl::StrCat(
          path, ": ", ds, ": checksum mismatch (fletcher32): the data is corrupt"));
    }
    return Hdf5Error(absl::StatusCode::kDataLoss, path, ds, "read failed");
  }
  return absl::OkStatus();
}

}  // namespace

int64_t Volume(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

absl::Status WriteShardFile(const std::string& path, const std::vector<ShardRecord>& records,
                            const std::map<std::string, std::string>& blobs) {
  hdf5::QuietHdf5();
  for (const ShardRecord& r : records) RETURN_IF_ERROR(CheckRecord(path, r));
  for (const auto& kv : blobs) {
    if (!ValidName(kv.first)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": invalid blob name '", kv.first, "'"));
    }
  }
  // The file is built in memory (HDF5's core driver, no backing store) and written out by us: a
  // full disk or any I/O error is then a plain write() error with its errno, and HDF5 never holds a
  // half-flushed file it would try to flush again at exit (which crashed in H5_term_library).
  absl::Status status;
  std::string image;
  {
    H5Id fapl(H5Pcreate(H5P_FILE_ACCESS));
    if (!fapl.valid() || H5Pset_fapl_core(fapl.get(), size_t{1} << 20, /*backing_store=*/0) < 0)
      return Hdf5Error(absl::StatusCode::kInternal, path, "", "cannot set up the in-memory file");
    H5Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
    if (!file.valid()) {
      return Hdf5Error(absl::StatusCode::kFailedPrecondition, path, "", "cannot create file");
    }
    status = WriteContents(file.get(), path, records, blobs);
    if (status.ok() && H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0)
      status = Hdf5Error(absl::StatusCode::kInternal, path, "", "cannot flush the in-memory file");
    if (status.ok()) {
      const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
      if (size <= 0) {
        status = Hdf5Error(absl::StatusCode::kInternal, path, "", "cannot get the file image");
      } else {
        image.resize(static_cast<size_t>(size));
        if (H5Fget_file_image(file.get(), image.data(), image.size()) != size)
          status = Hdf5Error(absl::StatusCode::kInternal, path, "", "cannot get the file image");
      }
    }
    file.Reset();
  }
  if (status.ok()) status = WriteFileDurably(path, image);  // errors name the path and errno
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

absl::StatusOr<ShardFile> ShardFile::Open(const std::string& path,
                                          std::vector<std::string>* problems) {
  hdf5::QuietHdf5();
  if (::access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": shard file does not exist"));
  }
  ShardFile f;
  f.path_ = path;
  f.file_ = H5Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.file_.valid()) {
    return Hdf5Error(absl::StatusCode::kDataLoss, path, "",
                     "cannot open as HDF5 (truncated or not a shard file)");
  }
  auto problem = [&](const std::string& ds, const std::string& what) {
    problems->push_back(absl::StrCat(path, ": ", ds, ": ", what));
  };
  const hid_t root = f.file_.get();
  for (const std::string& top : ChildNames(root)) {
    H5Id group;
    if (ObjectType(root, top, &group) != H5I_GROUP) {
      problem("/" + top, "not a group");
      continue;
    }
    if (top == "blobs") {
      for (const std::string& name : ChildNames(group.get())) {
        H5Id dset;
        const int64_t n = ObjectType(group.get(), name, &dset) == H5I_DATASET
                              ? DatasetExtent(dset.get())
                              : -1;
        if (n < 0) {
          problem("/blobs/" + name, "not a 1-D dataset");
          continue;
        }
        f.blob_sizes_[name] = n;
      }
      continue;
    }
    for (const std::string& tensor : ChildNames(group.get())) {
      H5Id tgroup;
      if (ObjectType(group.get(), tensor, &tgroup) != H5I_GROUP) {
        problem(absl::StrCat("/", top, "/", tensor), "not a group");
        continue;
      }
      for (const std::string& k : ChildNames(tgroup.get())) {
        ShardPiece p;
        p.field = top;
        p.tensor = tensor;
        p.dataset = absl::StrCat("/", top, "/", tensor, "/", k);
        int index = 0;
        H5Id dset;
        if (!absl::SimpleAtoi(k, &index) || index < 0 ||
            ObjectType(tgroup.get(), k, &dset) != H5I_DATASET) {
          problem(p.dataset, "not a record dataset (expected /<field>/<tensor>/<k>)");
          continue;
        }
        auto full_shape = ReadInt64Attr(dset.get(), "full_shape");
        auto offset = ReadInt64Attr(dset.get(), "offset");
        auto count = ReadInt64Attr(dset.get(), "count");
        auto step = ReadInt64Attr(dset.get(), "step");
        bool ok = true;
        for (const auto* a : {&full_shape, &offset, &count, &step}) {
          if (!a->ok()) {
            problem(p.dataset, std::string(a->status().message()));
            ok = false;
          }
        }
        if (!ok) continue;
        if (step->size() != 1) {
          problem(p.dataset, "attribute step must hold one value");
          continue;
        }
        p.full_shape = *std::move(full_shape);
        p.offset = *std::move(offset);
        p.count = *std::move(count);
        p.step = (*step)[0];
        p.num_values = DatasetExtent(dset.get());
        if (p.num_values < 0) {
          problem(p.dataset, "not a 1-D dataset");
          continue;
        }
        f.pieces_.push_back(std::move(p));
      }
    }
  }
  H5Eclear2(H5E_DEFAULT);
  return f;
}

absl::Status ShardFile::ReadRange(const ShardPiece& piece, int64_t begin, int64_t n,
                                  float* out) const {
  hdf5::QuietHdf5();
  MT_CHECK_MSG(begin >= 0 && n >= 0 && begin + n <= piece.num_values, "ReadRange out of bounds");
  return ReadDatasetRange(file_.get(), path_, piece.dataset, H5T_NATIVE_FLOAT, begin, n, out);
}

absl::StatusOr<std::string> ShardFile::ReadBlob(const std::string& name) const {
  hdf5::QuietHdf5();
  auto it = blob_sizes_.find(name);
  if (it == blob_sizes_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no blob '", name, "'"));
  }
  std::string bytes(static_cast<size_t>(it->second), '\0');
  RETURN_IF_ERROR(ReadDatasetRange(file_.get(), path_, "/blobs/" + name, H5T_NATIVE_UINT8, 0,
                                   it->second, bytes.data()));
  return bytes;
}

std::vector<absl::Status> ShardFile::VerifyAll() const {
  hdf5::QuietHdf5();
  std::vector<absl::Status> errors;
  std::vector<float> buf;
  for (const ShardPiece& p : pieces_) {
    // Chunk-aligned reads: memory stays bounded by one chunk whatever the dataset size.
    for (int64_t b = 0; b < p.num_values; b += static_cast<int64_t>(kChunkValues)) {
      const int64_t n = std::min<int64_t>(static_cast<int64_t>(kChunkValues), p.num_values - b);
      buf.resize(static_cast<size_t>(n));
      absl::Status s = ReadRange(p, b, n, buf.data());
      if (!s.ok()) {
        errors.push_back(s);
        break;
      }
    }
  }
  for (const auto& kv : blob_sizes_) {
    auto blob = ReadBlob(kv.first);
    if (!blob.ok()) errors.push_back(blob.status());
  }
  return errors;
}

}  // namespace moetrain::checkpoint

// shard_data_offset SHARD.h5: prints "OFFSET SIZE DATASET" for the first stored chunk of the
// shard's largest record dataset (its byte offset and size in the file), so a fault-injection test
// can flip a byte that is certainly tensor data, not HDF5 metadata. Exit 0 on success, 2 on error.
#include <hdf5.h>

#include <cstdio>
#include <vector>

#include "checkpoint/shard_file.h"

using moetrain::checkpoint::ShardFile;
using moetrain::checkpoint::ShardPiece;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: shard_data_offset SHARD.h5\n");
    return 2;
  }
  std::vector<std::string> problems;
  absl::StatusOr<ShardFile> shard = ShardFile::Open(argv[1], &problems);
  if (!shard.ok() || !problems.empty() || shard->pieces().empty()) {
    std::fprintf(stderr, "%s: cannot index (%s)\n", argv[1],
                 shard.ok() ? "no records or malformed" : shard.status().ToString().c_str());
    return 2;
  }
  const ShardPiece* largest = &shard->pieces()[0];
  for (const ShardPiece& p : shard->pieces())
    if (p.num_values > largest->num_values) largest = &p;

  const hid_t file = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t dset = file >= 0 ? H5Dopen2(file, largest->dataset.c_str(), H5P_DEFAULT) : -1;
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  unsigned filter_mask = 0;
  hsize_t chunk_offset[1] = {0};
  const hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
  const herr_t rc = space >= 0 ? H5Dget_chunk_info(dset, space, 0, chunk_offset, &filter_mask,
                                                   &addr, &size)
                               : -1;
  if (space >= 0) H5Sclose(space);
  if (dset >= 0) H5Dclose(dset);
  if (file >= 0) H5Fclose(file);
  if (rc < 0 || addr == HADDR_UNDEF || size == 0) {
    std::fprintf(stderr, "%s: %s: no chunk information\n", argv[1], largest->dataset.c_str());
    return 2;
  }
  std::printf("%llu %llu %s\n", static_cast<unsigned long long>(addr),
              static_cast<unsigned long long>(size), largest->dataset.c_str());
  return 0;
}

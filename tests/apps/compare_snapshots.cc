// compare_snapshots FIELD DIR_A DIR_B: the FIELD of two snapshots (any layouts) must cover the same
// tensors with the same shapes and bitwise-equal fp32 values (each read whole through the
// resharding reader, which verifies the checksums). Exit 0 when equal; prints the first mismatch.
#include <cstdio>
#include <cstring>
#include <vector>

#include "checkpoint/shard_file.h"
#include "checkpoint/snapshot_reader.h"

using moetrain::checkpoint::SnapshotReader;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: compare_snapshots FIELD DIR_A DIR_B\n");
    return 2;
  }
  const std::string field = argv[1];
  auto a = SnapshotReader::Open(argv[2]);
  auto b = SnapshotReader::Open(argv[3]);
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "%s\n", (!a.ok() ? a.status() : b.status()).ToString().c_str());
    return 2;
  }
  if (!a->fields().count(field) || !b->fields().count(field)) {
    std::fprintf(stderr, "field %s missing in %s\n", field.c_str(),
                 a->fields().count(field) ? argv[3] : argv[2]);
    return 1;
  }
  const std::vector<std::string>& names_a = a->fields().at(field);
  const std::vector<std::string>& names_b = b->fields().at(field);
  if (names_a != names_b) {
    std::fprintf(stderr, "field %s covers %zu tensors in %s, %zu in %s (or other names)\n",
                 field.c_str(), names_a.size(), argv[2], names_b.size(), argv[3]);
    return 1;
  }
  for (const std::string& name : names_a) {
    const std::vector<int64_t>& shape = a->tensors().at(name);
    if (b->tensors().at(name) != shape) {
      std::fprintf(stderr, "%s: shapes differ\n", name.c_str());
      return 1;
    }
    const int64_t n = moetrain::checkpoint::Volume(shape);
    std::vector<float> va(n), vb(n);
    const std::vector<int64_t> zero(shape.size(), 0);
    for (auto [reader, out] : {std::pair{&*a, &va}, std::pair{&*b, &vb}}) {
      absl::Status s = reader->ReadSlab(field, name, zero, shape, out->data());
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 2;
      }
    }
    if (std::memcmp(va.data(), vb.data(), n * sizeof(float)) != 0) {
      std::fprintf(stderr, "%s/%s: values differ\n", field.c_str(), name.c_str());
      return 1;
    }
  }
  std::printf("field %s: %zu tensors bitwise equal\n", field.c_str(), names_a.size());
  return 0;
}

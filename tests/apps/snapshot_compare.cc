// snapshot_compare A B [RTOL]: are two snapshots (any layouts) the same training state, bit for
// bit (or, with RTOL, within a per-tensor relative L2 error sqrt(sum (a-b)^2 / sum b^2) <= RTOL,
// computed in float64: for comparing runs whose float reassociation differs)?
//
// Opens both with full validation (checkpoint::SnapshotReader), then requires the same tensor table
// (names and global shapes), the same fields with the same tensor lists, the same per-tensor
// optimizer step counts, and for every (field, tensor) a full-tensor ReadSlab of A that is
// bytewise equal to B's (or close). Each slab is gathered from whatever pieces the writing layout produced, so
// two layouts agree only if resharding lost and changed nothing.
// Exit 0: identical; 1: they differ (every difference is listed, the first mismatching element of
// tensor with both values, or its relative error); 2: usage, or a snapshot fails to open or read.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoint/snapshot_reader.h"

using moetrain::checkpoint::SnapshotReader;

namespace {

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Compares one (field, tensor) of a and b; returns false (after printing why) when they differ.
bool SameSlab(const SnapshotReader& a, const SnapshotReader& b, const std::string& field,
              const std::string& tensor, const std::vector<int64_t>& shape, double rtol,
              double* worst, bool* read_error) {
  const std::vector<int64_t> offset(shape.size(), 0);
  const int64_t n = NumElements(shape);
  std::vector<float> xa(n), xb(n);
  for (auto [reader, out] : {std::pair{&a, &xa}, std::pair{&b, &xb}}) {
    absl::Status s = reader->ReadSlab(field, tensor, offset, shape, out->data());
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      *read_error = true;
      return false;
    }
  }
  if (rtol >= 0) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(xa[i]) - xb[i];
      num += d * d;
      den += static_cast<double>(xb[i]) * xb[i];
    }
    const double rel = std::sqrt(num / std::max(den, 1e-300));
    *worst = std::max(*worst, rel);
    if (rel <= rtol) return true;
    std::printf("DIFF %s/%s: relative L2 error %.3g > %.3g\n", field.c_str(), tensor.c_str(), rel,
                rtol);
    return false;
  }
  if (std::memcmp(xa.data(), xb.data(), n * sizeof(float)) == 0) return true;
  int64_t first = 0, differing = 0;
  for (int64_t i = n - 1; i >= 0; --i)
    if (std::memcmp(&xa[i], &xb[i], sizeof(float)) != 0) first = i, ++differing;
  std::printf("DIFF %s/%s: %lld of %lld values differ; first at flat index %lld: %.9g vs %.9g\n",
              field.c_str(), tensor.c_str(), static_cast<long long>(differing),
              static_cast<long long>(n), static_cast<long long>(first), xa[first], xb[first]);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: snapshot_compare SNAPSHOT_DIR_A SNAPSHOT_DIR_B [RTOL]\n");
    return 2;
  }
  const double rtol = argc == 4 ? std::atof(argv[3]) : -1;  // < 0: bitwise
  absl::StatusOr<SnapshotReader> a = SnapshotReader::Open(argv[1]);
  absl::StatusOr<SnapshotReader> b = SnapshotReader::Open(argv[2]);
  for (const auto* r : {&a, &b})
    if (!r->ok()) {
      std::fprintf(stderr, "%s\n", r->status().ToString().c_str());
      return 2;
    }
  int differences = 0;
  if (a->tensors() != b->tensors()) {
    std::printf("DIFF tensor tables differ (%zu vs %zu tensors, or shapes)\n", a->tensors().size(),
                b->tensors().size());
    return 1;  // nothing below is comparable
  }
  if (a->fields() != b->fields()) {
    std::printf("DIFF field lists differ\n");
    return 1;
  }
  bool read_error = false;
  int64_t values = 0;
  double worst = 0;
  for (const auto& [tensor, shape] : a->tensors()) {
    absl::StatusOr<int64_t> sa = a->StepCount(tensor), sb = b->StepCount(tensor);
    if (!sa.ok() || !sb.ok() || *sa != *sb) {
      std::printf("DIFF step count of %s\n", tensor.c_str());
      ++differences;
    }
  }
  for (const auto& [field, tensors] : a->fields())
    for (const std::string& tensor : tensors) {
      const std::vector<int64_t>& shape = a->tensors().at(tensor);
      if (!SameSlab(*a, *b, field, tensor, shape, rtol, &worst, &read_error)) ++differences;
      if (read_error) return 2;
      values += NumElements(shape);
    }
  std::printf("%s vs %s: %lld values in %zu fields compared %s, %d difference(s)", argv[1], argv[2],
              static_cast<long long>(values), a->fields().size(),
              rtol < 0 ? "bitwise" : "with a relative tolerance", differences);
  if (rtol >= 0) std::printf(", worst relative error %.3g", worst);
  std::printf("\n");
  return differences == 0 ? 0 : 1;
}

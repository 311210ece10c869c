#include "checkpoint/snapshot_reader.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/snapshot_dir.h"
#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

constexpr size_t kMaxListedProblems = 100;

std::string Shape(const std::vector<int64_t>& v) { return absl::StrCat("[", absl::StrJoin(v, ","), "]"); }

absl::Status ProblemsError(const std::string& what, const std::vector<std::string>& problems) {
  std::string msg = absl::StrCat(what, " (", problems.size(), " problem",
                                 problems.size() == 1 ? "" : "s", "):");
  for (size_t i = 0; i < problems.size() && i < kMaxListedProblems; ++i) {
    absl::StrAppend(&msg, "\n  - ", problems[i]);
  }
  if (problems.size() > kMaxListedProblems) {
    absl::StrAppend(&msg, "\n  ... and ", problems.size() - kMaxListedProblems, " more");
  }
  return absl::DataLossError(msg);
}

bool ParseShape(const nlohmann::json& j, std::vector<int64_t>* shape) {
  if (!j.is_array()) return false;
  shape->clear();
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) return false;
    shape->push_back(d.get<int64_t>());
  }
  return Volume(*shape) >= 0;
}

// Do the boxes [a_off, a_off + a_cnt) and [b_off, b_off + b_cnt) intersect?
bool Overlap(const ShardPiece& a, const ShardPiece& b) {
  for (size_t d = 0; d < a.offset.size(); ++d) {
    if (a.offset[d] + a.count[d] <= b.offset[d] || b.offset[d] + b.count[d] <= a.offset[d]) {
      return false;
    }
  }
  return true;
}

// Row-major linear index of `idx` in a box of extent `count`.
int64_t Linear(const std::vector<int64_t>& idx, const std::vector<int64_t>& count) {
  int64_t lin = 0;
  for (size_t d = 0; d < count.size(); ++d) lin = lin * count[d] + idx[d];
  return lin;
}

}  // namespace

absl::StatusOr<SnapshotReader> SnapshotReader::Open(const std::string& snapshot_dir) {
  SnapshotReader r;
  r.dir_ = snapshot_dir;
  const std::string meta_path = absl::StrCat(snapshot_dir, "/", kMetaFile);
  std::ifstream in(meta_path);
  if (!in) return absl::NotFoundError(absl::StrCat(meta_path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  r.meta_ = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (r.meta_.is_discarded() || !r.meta_.is_object()) {
    return absl::DataLossError(absl::StrCat(meta_path, ": not a JSON object"));
  }

  // 1. meta.json schema.
  std::vector<std::string> problems;
  auto meta_problem = [&](const std::string& what) {
    problems.push_back(absl::StrCat(meta_path, ": ", what));
  };
  const nlohmann::json& m = r.meta_;
  if (m.value("format", "") != "moetrain-snapshot") meta_problem("format is not \"moetrain-snapshot\"");
  if (!m.contains("version") || m["version"] != 1) meta_problem("unsupported version (expected 1)");
  if (!m.contains("step") || !m["step"].is_number_integer()) {
    meta_problem("step missing or not an integer");
  } else {
    r.step_ = m["step"].get<int64_t>();
  }
  if (!m.contains("tensors") || !m["tensors"].is_object()) {
    meta_problem("tensors missing or not an object");
  } else {
    for (const auto& [name, shape_json] : m["tensors"].items()) {
      std::vector<int64_t> shape;
      if (!ParseShape(shape_json, &shape)) {
        meta_problem(absl::StrCat("tensor ", name, ": shape is not a list of non-negative integers"));
        continue;
      }
      r.tensors_[name] = shape;
    }
  }
  const nlohmann::json empty_object = nlohmann::json::object();
  const nlohmann::json& field_tensors =
      m.contains("field_tensors") && m["field_tensors"].is_object() ? m["field_tensors"]
                                                                      : empty_object;
  if (!m.contains("fields") || !m["fields"].is_array()) {
    meta_problem("fields missing or not a list");
  } else {
    for (const auto& f : m["fields"]) {
      if (!f.is_string()) {
        meta_problem("fields holds a non-string");
        continue;
      }
      std::vector<std::string> names;
      if (field_tensors.contains(f.get<std::string>())) {
        for (const auto& n : field_tensors[f.get<std::string>()]) {
          if (!n.is_string() || r.tensors_.count(n.get<std::string>()) == 0) {
            meta_problem(absl::StrCat("field_tensors.", f.get<std::string>(), " names ", n.dump(),
                                      ", which is not in tensors"));
            continue;
          }
          names.push_back(n.get<std::string>());
        }
      } else {
        for (const auto& kv : r.tensors_) names.push_back(kv.first);
      }
      r.fields_[f.get<std::string>()] = std::move(names);
    }
  }
  std::vector<std::string> shard_names;
  const int world_size = m.contains("world_size") && m["world_size"].is_number_integer()
                             ? m["world_size"].get<int>()
                             : -1;
  if (world_size < 1) meta_problem("world_size missing or < 1");
  if (!m.contains("shards") || !m["shards"].is_array()) {
    meta_problem("shards missing or not a list");
  } else {
    for (const auto& s : m["shards"]) {
      if (!s.is_string() || s.get<std::string>().find('/') != std::string::npos) {
        meta_problem(absl::StrCat("shards holds an invalid file name ", s.dump()));
        continue;
      }
      shard_names.push_back(s.get<std::string>());
    }
    if (world_size >= 1 && static_cast<int>(m["shards"].size()) != world_size) {
      meta_problem(absl::StrCat("lists ", m["shards"].size(), " shards for world_size ", world_size));
    }
  }
  if (m.contains("state") && !m["state"].is_object()) meta_problem("state is not an object");
  if (!problems.empty()) return ProblemsError(absl::StrCat("snapshot ", snapshot_dir, ": bad meta.json"), problems);

  // 2. Shard indexes (attributes only).
  bool unreadable_shard = false;  // then coverage gaps are consequences, not news
  for (const std::string& name : shard_names) {
    const std::string path = absl::StrCat(snapshot_dir, "/", name);
    absl::StatusOr<ShardFile> shard = ShardFile::Open(path, &problems);
    if (!shard.ok()) {
      problems.push_back(shard.status().code() == absl::StatusCode::kNotFound
                             ? absl::StrCat("missing shard file ", path)
                             : std::string(shard.status().message()));
      // A truncated or corrupt file (not a missing one, whose absence is the whole story).
      if (shard.status().code() != absl::StatusCode::kNotFound) unreadable_shard = true;
      continue;
    }
    r.shards_.push_back(*std::move(shard));
  }

  // 3. Every record against the table.
  std::set<std::pair<std::string, std::string>> seen;  // (field, tensor) with any record at all
  std::map<std::string, std::pair<int64_t, std::string>> first_step;  // tensor -> (step, where)
  for (int s = 0; s < static_cast<int>(r.shards_.size()); ++s) {
    const ShardFile& shard = r.shards_[s];
    for (int i = 0; i < static_cast<int>(shard.pieces().size()); ++i) {
      const ShardPiece& p = shard.pieces()[i];
      const std::string where = absl::StrCat(shard.path(), ", dataset ", p.dataset);
      auto field = r.fields_.find(p.field);
      if (field == r.fields_.end()) {
        problems.push_back(absl::StrCat("extra field ", p.field, " (", where,
                                        ") is not listed in meta.json fields"));
        continue;
      }
      auto tensor = r.tensors_.find(p.tensor);
      if (tensor == r.tensors_.end()) {
        problems.push_back(absl::StrCat("extra tensor ", p.tensor, " (", where,
                                        ") is not in meta.json tensors"));
        continue;
      }
      if (std::find(field->second.begin(), field->second.end(), p.tensor) == field->second.end()) {
        problems.push_back(absl::StrCat("extra tensor ", p.tensor, " in field ", p.field, " (",
                                        where, "): meta.json field_tensors leaves it out"));
        continue;
      }
      seen.insert({p.field, p.tensor});
      if (p.full_shape != tensor->second) {
        problems.push_back(absl::StrCat("shape mismatch for tensor ", p.tensor, " in ", where,
                                        ": file says ", Shape(p.full_shape), ", meta.json says ",
                                        Shape(tensor->second)));
        continue;
      }
      bool inside = p.offset.size() == p.full_shape.size() && p.count.size() == p.full_shape.size();
      for (size_t d = 0; inside && d < p.full_shape.size(); ++d) {
        inside = p.count[d] >= 1 && p.offset[d] >= 0 && p.offset[d] + p.count[d] <= p.full_shape[d];
      }
      if (!inside) {
        problems.push_back(absl::StrCat("hyperslab offset ", Shape(p.offset), " count ",
                                        Shape(p.count), " lies outside tensor ", p.tensor, " ",
                                        Shape(p.full_shape), " (", where, ")"));
        continue;
      }
      if (p.num_values != Volume(p.count)) {
        problems.push_back(absl::StrCat(where, ": holds ", p.num_values, " values, count ",
                                        Shape(p.count), " needs ", Volume(p.count)));
        continue;
      }
      auto [it, inserted] = first_step.emplace(p.tensor, std::make_pair(p.step, where));
      if (!inserted && it->second.first != p.step) {
        problems.push_back(absl::StrCat("tensor ", p.tensor, ": step ", p.step, " in ", where,
                                        " differs from step ", it->second.first, " in ",
                                        it->second.second));
      }
      r.pieces_[{p.field, p.tensor}].push_back({s, i});
    }
  }

  // 4. Exact coverage of every expected (field, tensor), unless a shard could not be read at all
  // (its tensors would all be listed as missing, burying the one real problem).
  for (const auto& [field, names] : r.fields_) {
    if (unreadable_shard) break;
    for (const std::string& name : names) {
      const int64_t numel = Volume(r.tensors_[name]);
      auto it = r.pieces_.find({field, name});
      if (it == r.pieces_.end()) {
        if (numel > 0 && seen.count({field, name}) == 0) {
          problems.push_back(absl::StrCat("missing tensor ", name, " (field ", field,
                                          "): no shard holds it"));
        }
        continue;
      }
      const std::vector<PieceRef>& refs = it->second;
      int64_t covered = 0;
      bool overlap = false;
      for (size_t a = 0; a < refs.size(); ++a) {
        const ShardPiece& pa = r.shards_[refs[a].shard].pieces()[refs[a].piece];
        covered += Volume(pa.count);
        for (size_t b = a + 1; b < refs.size() && !overlap; ++b) {
          const ShardPiece& pb = r.shards_[refs[b].shard].pieces()[refs[b].piece];
          if (Overlap(pa, pb)) {
            problems.push_back(absl::StrCat(
                "tensor ", name, " (field ", field, "): pieces ",
                r.shards_[refs[a].shard].path(), ":", pa.dataset, " and ",
                r.shards_[refs[b].shard].path(), ":", pb.dataset, " overlap"));
            overlap = true;
          }
        }
      }
      if (!overlap && covered != numel) {
        problems.push_back(absl::StrCat("tensor ", name, " (field ", field, "): pieces cover ",
                                        covered, " of ", numel, " elements"));
      }
    }
  }
  for (const auto& [tensor, step_where] : first_step) r.steps_[tensor] = step_where.first;
  if (!problems.empty()) {
    return ProblemsError(absl::StrCat("snapshot ", snapshot_dir, " does not match its meta.json"),
                         problems);
  }
  return r;
}

bool SnapshotReader::Has(const std::string& field, const std::string& tensor) const {
  auto f = fields_.find(field);
  return f != fields_.end() &&
         std::find(f->second.begin(), f->second.end(), tensor) != f->second.end();
}

absl::Status SnapshotReader::ReadSlab(const std::string& field, const std::string& tensor,
                                      const std::vector<int64_t>& offset,
                                      const std::vector<int64_t>& count, float* out) const {
  if (!Has(field, tensor)) {
    return absl::NotFoundError(
        absl::StrCat(dir_, ": snapshot has no tensor ", tensor, " in field ", field));
  }
  const std::vector<int64_t>& shape = tensors_.at(tensor);
  const size_t rank = shape.size();
  bool inside = offset.size() == rank && count.size() == rank;
  for (size_t d = 0; inside && d < rank; ++d) {
    inside = offset[d] >= 0 && count[d] >= 0 && offset[d] + count[d] <= shape[d];
  }
  if (!inside) {
    return absl::InvalidArgumentError(absl::StrCat(dir_, ": slab offset ", Shape(offset), " count ",
                                                   Shape(count), " lies outside tensor ", tensor,
                                                   " ", Shape(shape)));
  }
  if (Volume(count) == 0) return absl::OkStatus();
  auto it = pieces_.find({field, tensor});
  if (it == pieces_.end()) return absl::OkStatus();  // an empty tensor
  std::vector<float> buf;
  std::vector<int64_t> lo(rank), hi(rank), idx(rank), in_piece(rank), in_out(rank);
  for (const PieceRef& ref : it->second) {
    const ShardFile& shard = shards_[ref.shard];
    const ShardPiece& p = shard.pieces()[ref.piece];
    bool overlaps = true;
    for (size_t d = 0; d < rank; ++d) {
      lo[d] = std::max(offset[d], p.offset[d]);
      hi[d] = std::min(offset[d] + count[d], p.offset[d] + p.count[d]);
      overlaps = overlaps && lo[d] < hi[d];
    }
    if (!overlaps) continue;
    // The contiguous range of the piece's values from the overlap's first to its last element:
    // the whole overlap when it is a run of rows (a dim-0 split), at most the whole piece.
    for (size_t d = 0; d < rank; ++d) {
      in_piece[d] = lo[d] - p.offset[d];
      idx[d] = hi[d] - 1 - p.offset[d];
    }
    const int64_t first = Linear(in_piece, p.count);
    const int64_t last = Linear(idx, p.count);
    buf.resize(static_cast<size_t>(last - first + 1));
    RETURN_IF_ERROR(shard.ReadRange(p, first, last - first + 1, buf.data()));
    // Copy the overlap one innermost run at a time; idx walks the outer dims of the overlap.
    const int64_t run = rank == 0 ? 1 : hi[rank - 1] - lo[rank - 1];
    idx = lo;
    while (true) {
      for (size_t d = 0; d < rank; ++d) {
        in_piece[d] = idx[d] - p.offset[d];
        in_out[d] = idx[d] - offset[d];
      }
      std::copy_n(buf.data() + (Linear(in_piece, p.count) - first), run,
                  out + Linear(in_out, count));
      // Next outer index (dims rank-2 .. 0), odometer style.
      int d = static_cast<int>(rank) - 2;
      for (; d >= 0; --d) {
        if (++idx[d] < hi[d]) break;
        idx[d] = lo[d];
      }
      if (d < 0) break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SnapshotReader::StepCount(const std::string& tensor) const {
  auto it = steps_.find(tensor);
  if (it == steps_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no step count for tensor ", tensor));
  }
  return it->second;
}

absl::StatusOr<std::string> SnapshotReader::ReadBlob(int rank, const std::string& name) const {
  if (rank < 0 || rank >= static_cast<int>(shards_.size())) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no shard of rank ", rank, " (world size ",
                                            shards_.size(), ")"));
  }
  return shards_[rank].ReadBlob(name);
}

absl::Status SnapshotReader::Verify() const {
  std::vector<std::string> problems;
  for (const ShardFile& shard : shards_) {
    for (const absl::Status& s : shard.VerifyAll()) problems.emplace_back(s.message());
  }
  if (problems.empty()) return absl::OkStatus();
  return ProblemsError(absl::StrCat("snapshot ", dir_, " failed verification"), problems);
}

int64_t SnapshotReader::num_datasets() const {
  int64_t n = 0;
  for (const ShardFile& shard : shards_) n += shard.pieces().size() + shard.blob_sizes().size();
  return n;
}

absl::StatusOr<std::string> FindLatestValid(const std::string& root,
                                            std::vector<std::string>* skipped) {
  std::vector<std::string> reasons;
  std::vector<std::string> candidates;
  absl::StatusOr<std::string> latest = ReadLatest(root);
  if (latest.ok()) {
    candidates.push_back(*latest);
  } else if (latest.status().code() != absl::StatusCode::kNotFound) {
    reasons.emplace_back(latest.status().message());
  }
  for (const auto& [step, name] : ListCompleteSnapshots(root)) {
    if (!latest.ok() || name != *latest) candidates.push_back(name);
  }
  for (const std::string& name : candidates) {
    const std::string dir = absl::StrCat(root, "/", name);
    absl::StatusOr<SnapshotReader> reader = SnapshotReader::Open(dir);
    absl::Status s = reader.ok() ? reader->Verify() : reader.status();
    if (s.ok()) return dir;
    reasons.push_back(absl::StrCat(dir, ": ", s.message()));
    if (skipped != nullptr) skipped->push_back(reasons.back());
  }
  return absl::NotFoundError(absl::StrCat(
      "no snapshot under ", root, " verifies",
      reasons.empty() ? " (there is none)" : absl::StrCat(":\n", absl::StrJoin(reasons, "\n"))));
}

}  // namespace moetrain::checkpoint

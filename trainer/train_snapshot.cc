#include "trainer/train_snapshot.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "checkpoint/hyperslab.h"

namespace moetrain::trainer {
namespace {

// The hyperslabs (global coordinates) of the flat range [a, b) of tp rank `tp_rank`'s shard.
std::vector<checkpoint::Hyperslab> GlobalSlabs(const model::ParamSpec& spec, int tp, int tp_rank,
                                               int64_t a, int64_t b) {
  const std::vector<int64_t> local = spec.LocalShape(tp);
  std::vector<checkpoint::Hyperslab> slabs = checkpoint::FlatRangeToHyperslabs(local, a, b);
  if (spec.IsTpSplit(tp))
    for (auto& s : slabs) s.offset[spec.tp_dim] += tp_rank * local[spec.tp_dim];
  return slabs;
}

int64_t Volume(const std::vector<int64_t>& count) {
  int64_t v = 1;
  for (int64_t c : count) v *= c;
  return v;
}

}  // namespace

std::vector<checkpoint::ShardRecord> CollectShardRecords(const model::Model<float>& model,
                                                         optim::ZeroOptimizer<float>& zero,
                                                         const SnapshotRanks& ranks) {
  std::vector<checkpoint::ShardRecord> records;
  const int tp = model.tp_size();
  for (const auto& us : zero.Units()) {
    // Stage 0 keeps replicas of each unit on every rank of its group: rank 0 of it writes.
    if (zero.stage() == 0 && (us.unit->expert >= 0 ? ranks.edp : ranks.dp) != 0) continue;
    for (const model::ParamUnit::Tensor& t : us.unit->tensors) {
      if (!t.spec->IsTpSplit(tp) && ranks.tp != 0) continue;  // replicated over tp
      const int64_t a = std::max(us.begin, t.offset), b = std::min(us.end, t.offset + t.numel);
      if (a >= b) continue;
      int64_t pos = a - us.begin;  // into the chunk arrays
      for (const auto& slab : GlobalSlabs(*t.spec, tp, model.tp_rank(), a - t.offset, b - t.offset)) {
        const int64_t n = Volume(slab.count);
        const std::pair<const char*, const float*> fields[] = {
            {"param", us.master}, {"exp_avg", us.m}, {"exp_avg_sq", us.v}};
        for (const auto& [field, base] : fields) {
          checkpoint::ShardRecord r;
          r.field = field;
          r.tensor = t.spec->name;
          r.full_shape = t.spec->shape;
          r.offset = slab.offset;
          r.count = slab.count;
          r.data.assign(base + pos, base + pos + n);
          r.step = *us.step;
          records.push_back(std::move(r));
        }
        pos += n;
      }
    }
  }
  if (ranks.world == 0) {  // buffers are replicated everywhere
    for (const model::ParamSpec& s : model.table().specs()) {
      if (s.kind != model::ParamKind::kBuffer || !model.Holds(s.name)) continue;
      TensorView v = model.Param(s.name);
      checkpoint::ShardRecord r;
      r.field = "param";
      r.tensor = s.name;
      r.full_shape = s.shape;
      r.offset.assign(s.shape.size(), 0);
      r.count = s.shape;
      r.data.assign(v.as<float>(), v.as<float>() + v.numel());
      records.push_back(std::move(r));
    }
  }
  return records;
}

absl::Status CheckSnapshotTable(const checkpoint::SnapshotReader& reader,
                                const model::ParamTable& table, const std::string& what) {
  std::vector<std::string> problems;
  for (const model::ParamSpec& s : table.specs()) {
    auto it = reader.tensors().find(s.name);
    if (it == reader.tensors().end()) {
      if (s.kind != model::ParamKind::kBuffer) problems.push_back(absl::StrCat("missing tensor ", s.name));
    } else if (it->second != s.shape) {
      problems.push_back(absl::StrCat(s.name, " has shape [", absl::StrJoin(it->second, ","),
                                      "] in the snapshot, [", absl::StrJoin(s.shape, ","),
                                      "] in this model"));
    }
  }
  for (const auto& [name, shape] : reader.tensors())
    if (table.Find(name) == nullptr) problems.push_back(absl::StrCat("extra tensor ", name));
  if (!problems.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        reader.dir(), ": the snapshot does not fit ", what, ": ",
        absl::StrJoin(problems, "; ")));
  return absl::OkStatus();
}

checkpoint::SnapshotContents ContentsOf(const model::ParamTable& table) {
  checkpoint::SnapshotContents c;
  std::vector<std::string> trained;
  for (const model::ParamSpec& s : table.specs()) {
    c.tensors[s.name] = s.shape;
    if (s.kind != model::ParamKind::kBuffer) trained.push_back(s.name);
  }
  c.fields["param"] = {};
  c.fields["exp_avg"] = trained;
  c.fields["exp_avg_sq"] = trained;
  return c;
}

absl::Status LoadTrainState(const checkpoint::SnapshotReader& reader, model::Model<float>& model,
                            optim::ZeroOptimizer<float>& zero, bool with_optimizer) {
  // The tables must agree before anything is read.
  RETURN_IF_ERROR(CheckSnapshotTable(reader, model.table(), "this model configuration"));
  const bool moments = with_optimizer && reader.fields().count("exp_avg") > 0 &&
                       reader.fields().count("exp_avg_sq") > 0;
  const int tp = model.tp_size();
  for (const auto& us : zero.Units()) {
    const int64_t n = us.end - us.begin;
    std::fill(us.m, us.m + n, 0.0f);
    std::fill(us.v, us.v + n, 0.0f);
    *us.step = 0;
    for (const model::ParamUnit::Tensor& t : us.unit->tensors) {
      const int64_t a = std::max(us.begin, t.offset), b = std::min(us.end, t.offset + t.numel);
      if (a >= b) continue;
      int64_t pos = a - us.begin;
      for (const auto& slab : GlobalSlabs(*t.spec, tp, model.tp_rank(), a - t.offset, b - t.offset)) {
        RETURN_IF_ERROR(reader.ReadSlab("param", t.spec->name, slab.offset, slab.count, us.master + pos));
        if (moments) {
          RETURN_IF_ERROR(reader.ReadSlab("exp_avg", t.spec->name, slab.offset, slab.count, us.m + pos));
          RETURN_IF_ERROR(reader.ReadSlab("exp_avg_sq", t.spec->name, slab.offset, slab.count, us.v + pos));
        }
        pos += Volume(slab.count);
      }
      if (moments) {
        ASSIGN_OR_RETURN(int64_t step, reader.StepCount(t.spec->name));
        *us.step = step;
      }
    }
  }
  for (const model::ParamSpec& s : model.table().specs()) {
    if (s.kind != model::ParamKind::kBuffer || !model.Holds(s.name)) continue;
    TensorView v = model.Param(s.name);
    if (!reader.Has("param", s.name)) {
      std::fill(v.as<float>(), v.as<float>() + v.numel(), 0.0f);
      continue;
    }
    RETURN_IF_ERROR(reader.ReadSlab("param", s.name, std::vector<int64_t>(s.shape.size(), 0), s.shape,
                                    v.as<float>()));
  }
  zero.MasterChanged();
  return absl::OkStatus();
}

}  // namespace moetrain::trainer

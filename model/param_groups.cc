#include "model/param_groups.h"

namespace moetrain::model {
namespace {

int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace

std::vector<ParamGroup> BuildParamGroups(const ModelConfig& config, const ParamTable& table,
                                         const std::function<bool(const ParamSpec&)>& held,
                                         int tp, int dense_ways, int expert_ways) {
  const int L = config.num_hidden_layers;
  std::vector<ParamGroup> groups(L + 1);
  std::vector<std::vector<ParamUnit>> expert_units(L + 1);  // per group, in expert order
  for (int g = 0; g <= L; ++g) {
    groups[g].index = g;
    groups[g].layer = g < L ? g : -1;
    groups[g].units.push_back(ParamUnit{-1, 0, 0, 0, dense_ways, {}});
  }
  int moe_index = 0;
  for (int l = 0; l < L; ++l) groups[l].moe_index = config.IsMoeLayer(l) ? moe_index++ : -1;

  for (const ParamSpec& s : table.specs()) {
    if (s.kind == ParamKind::kBuffer || !held(s)) continue;
    const int g = s.layer >= 0 ? s.layer : L;
    ParamUnit* unit = &groups[g].units[0];
    if (s.kind == ParamKind::kExpert) {
      auto& eu = expert_units[g];
      if (eu.empty() || eu.back().expert != s.expert)
        eu.push_back(ParamUnit{s.expert, 0, 0, 0, expert_ways, {}});
      unit = &eu.back();
    }
    const int64_t n = s.LocalNumel(tp);
    unit->tensors.push_back({&s, unit->numel, n});
    unit->numel += n;
  }
  for (int g = 0; g <= L; ++g) {
    ParamGroup& grp = groups[g];
    for (ParamUnit& u : expert_units[g]) grp.units.push_back(std::move(u));
    int64_t offset = 0;
    for (ParamUnit& u : grp.units) {
      u.offset = offset;
      u.padded = RoundUp(u.numel, u.ways);
      offset += u.padded;
    }
    grp.numel = offset;
  }
  return groups;
}

}  // namespace moetrain::model

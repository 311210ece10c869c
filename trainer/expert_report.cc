#include "trainer/expert_report.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <regex>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "checkpoint/snapshot_reader.h"
#include "core/status.h"

namespace moetrain::trainer {
namespace {

// expert_load must be a non-empty list of equally long non-empty lists of integers >= 0.
absl::StatusOr<ExpertLoad> ParseLoad(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expert_load ", what));
  };
  if (!j.is_array() || j.empty()) return bad("is not a non-empty list of per-layer lists");
  ExpertLoad load;
  for (const nlohmann::json& row : j) {
    if (!row.is_array() || row.empty()) return bad("has a row that is not a non-empty list");
    std::vector<int64_t> r;
    for (const nlohmann::json& v : row) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        return bad(absl::StrCat("has a value that is not a token count: ", v.dump()));
      r.push_back(v.get<int64_t>());
    }
    if (!load.empty() && r.size() != load[0].size())
      return bad(absl::StrCat("rows differ in length (", load[0].size(), " and ", r.size(), ")"));
    load.push_back(std::move(r));
  }
  return load;
}

}  // namespace

absl::StatusOr<ExpertLoadWindow> ReadExpertLoads(const std::string& path, int64_t last_steps) {
  if (last_steps < 1)
    return absl::InvalidArgumentError(absl::StrCat("the window must be >= 1 step, got ", last_steps));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open metrics file"));
  std::deque<std::pair<int64_t, ExpertLoad>> window;
  std::vector<int64_t> moe_layers;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat(path, ":", line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object (a metrics file has one per line)"));
    const std::string event = j.value("event", "");
    if (event == "start") {  // a new run: only the last one counts
      window.clear();
      moe_layers.clear();
      if (j.contains("moe_layers") && j["moe_layers"].is_array())
        for (const nlohmann::json& l : j["moe_layers"])
          if (l.is_number_integer()) moe_layers.push_back(l.get<int64_t>());
      continue;
    }
    if (event != "step" || !j.contains("expert_load")) continue;
    ASSIGN_OR_RETURN(ExpertLoad load, ParseLoad(j["expert_load"], where));
    if (!window.empty() && (load.size() != window.back().second.size() ||
                            load[0].size() != window.back().second[0].size()))
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": expert_load is ", load.size(), " x ", load[0].size(), " but earlier steps of this run are ",
          window.back().second.size(), " x ", window.back().second[0].size()));
    const int64_t step = j.contains("step") && j["step"].is_number_integer() ? j["step"].get<int64_t>() : 0;
    window.emplace_back(step, std::move(load));
    if (static_cast<int64_t>(window.size()) > last_steps) window.pop_front();
  }
  if (window.empty())
    return absl::NotFoundError(absl::StrCat(
        path, ": the last run has no step event with expert_load (metrics written by an older "
              "moetrain, or no step logged yet)"));
  ExpertLoadWindow w;
  w.source = path;
  w.first_step = window.front().first;
  w.last_step = window.back().first;
  w.num_steps = static_cast<int64_t>(window.size());
  for (const auto& [step, load] : window) AccumulateExpertLoad(load, &w.tokens);
  if (moe_layers.size() != w.tokens.size()) {  // older start event: number the MoE layers
    moe_layers.clear();
    for (size_t i = 0; i < w.tokens.size(); ++i) moe_layers.push_back(static_cast<int64_t>(i));
  }
  w.moe_layers = std::move(moe_layers);
  return w;
}

std::vector<LayerUtilisation> SummarizeExpertLoads(const ExpertLoadWindow& window) {
  std::vector<LayerUtilisation> out;
  for (size_t i = 0; i < window.tokens.size(); ++i) {
    const std::vector<int64_t>& t = window.tokens[i];
    LayerUtilisation u;
    u.moe_index = static_cast<int64_t>(i);
    u.layer = i < window.moe_layers.size() ? window.moe_layers[i] : static_cast<int64_t>(i);
    int64_t mx = 0;
    for (size_t e = 0; e < t.size(); ++e) {
      u.total_tokens += t[e];
      mx = std::max(mx, t[e]);
      if (t[e] == 0) u.dead.push_back(static_cast<int64_t>(e));
    }
    u.share.assign(t.size(), 0.0);
    if (u.total_tokens > 0) {
      for (size_t e = 0; e < t.size(); ++e) u.share[e] = static_cast<double>(t[e]) / u.total_tokens;
      u.imbalance = static_cast<double>(mx) / (static_cast<double>(u.total_tokens) / t.size());
    }
    out.push_back(std::move(u));
  }
  return out;
}

std::string FormatExpertReport(const ExpertLoadWindow& window,
                               const std::vector<LayerUtilisation>& layers) {
  const size_t experts = window.tokens.empty() ? 0 : window.tokens[0].size();
  std::string s = absl::StrFormat(
      "expert utilisation: %s, last run, %d logged step(s) %d..%d, %d MoE layers x %d experts\n"
      "share = the expert's part of the layer's routed tokens; max/mean: 1.00 = balanced; "
      "dead = 0 tokens in the window\n\n",
      window.source, window.num_steps, window.first_step, window.last_step, layers.size(), experts);
  absl::StrAppendFormat(&s, "%6s %12s %9s %9s %9s  %s\n", "layer", "tokens", "max/mean", "min %",
                        "max %", "dead experts");
  int64_t num_dead = 0;
  for (const LayerUtilisation& u : layers) {
    const auto [mn, mx] = std::minmax_element(u.share.begin(), u.share.end());
    num_dead += static_cast<int64_t>(u.dead.size());
    absl::StrAppendFormat(&s, "%6d %12d %9.2f %9.2f %9.2f  %s\n", u.layer, u.total_tokens,
                          u.imbalance, 100 * *mn, 100 * *mx,
                          u.dead.empty() ? "-" : absl::StrJoin(u.dead, ","));
  }
  absl::StrAppendFormat(&s, "\n%d dead expert(s) over %d layers\n", num_dead, layers.size());
  s += "\nshare per expert (%), 16 per line:\n";
  for (const LayerUtilisation& u : layers) {
    for (size_t e = 0; e < u.share.size(); e += 16) {
      std::string row = e == 0 ? absl::StrFormat("layer %3d", u.layer) : std::string(9, ' ');
      absl::StrAppendFormat(&row, "  e%-3d", e);
      for (size_t k = e; k < std::min(u.share.size(), e + 16); ++k)
        absl::StrAppendFormat(&row, " %5.1f", 100 * u.share[k]);
      s += row + "\n";
    }
  }
  return s;
}

absl::StatusOr<std::string> SnapshotExpertReport(const std::string& snapshot_dir) {
  ASSIGN_OR_RETURN(checkpoint::SnapshotReader reader, checkpoint::SnapshotReader::Open(snapshot_dir));
  static const std::regex kBias(R"(model\.layers\.(\d+)\.block_sparse_moe\.gate\.e_score_correction_bias)");
  std::vector<std::pair<int64_t, std::string>> biases;  // (layer, tensor)
  for (const auto& [name, shape] : reader.tensors()) {
    std::smatch m;
    if (std::regex_match(name, m, kBias) && reader.Has("param", name))
      biases.emplace_back(std::stoll(m[1].str()), name);
  }
  std::sort(biases.begin(), biases.end());
  std::string metrics_file;
  const nlohmann::json& meta = reader.meta();
  if (meta.contains("state") && meta["state"].contains("recipe") && meta["state"]["recipe"].is_string()) {
    static const std::regex kMetrics(R"(metrics_file:\s*(\S+))");
    std::smatch m;
    const std::string recipe = meta["state"]["recipe"].get<std::string>();
    if (std::regex_search(recipe, m, kMetrics) && m[1].str() != "\"\"" && m[1].str() != "''")
      metrics_file = m[1].str();
  }
  std::string s = absl::StrFormat("snapshot %s (step %d)\n", snapshot_dir, reader.step());
  s += "a snapshot holds no expert loads: run `moetrain experts` on the run's metrics file";
  s += metrics_file.empty() ? std::string(" (logging.metrics_file)") : absl::StrCat(" (", metrics_file, ")");
  s += " for utilisation, imbalance and dead experts.\n";
  if (biases.empty()) {
    s += "no router bias in this snapshot (balancing: aux_loss); nothing per expert to report.\n";
    return s;
  }
  s += "\nrouter selection bias per expert (aux-loss-free balancing: b_e > 0 pulls tokens to an "
       "under-loaded expert):\n";
  absl::StrAppendFormat(&s, "%6s %10s %10s %10s  %s\n", "layer", "min", "mean", "max", "bias per expert");
  for (const auto& [layer, name] : biases) {
    const std::vector<int64_t>& shape = reader.tensors().at(name);
    const int64_t n = shape.empty() ? 1 : shape[0];
    std::vector<float> b(n);
    RETURN_IF_ERROR(reader.ReadSlab("param", name, {0}, {n}, b.data()));
    double sum = 0;
    for (float v : b) sum += v;
    const auto [mn, mx] = std::minmax_element(b.begin(), b.end());
    std::string values;
    for (int64_t e = 0; e < n; ++e) absl::StrAppendFormat(&values, "%s%+.4f", e ? " " : "", b[e]);
    absl::StrAppendFormat(&s, "%6d %+10.4f %+10.4f %+10.4f  %s\n", layer, *mn, sum / n, *mx, values);
  }
  return s;
}

}  // namespace moetrain::trainer

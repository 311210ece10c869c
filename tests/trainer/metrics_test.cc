// Metrics files: the JSON-lines step event and the Prometheus textfile (parsed here by an
// independent little parser: every sample line is `name{labels} value`, every metric has HELP and
// TYPE lines, and the values equal the JSON ones of the same step), the atomic write, and the
// expert report on a hand-made metrics file with a dead expert.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "trainer/expert_report.h"
#include "trainer/metrics.h"
#include "core/durable_file.h"

namespace moetrain::trainer {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("moetrain-metrics-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The text exposition format, parsed independently of RenderPrometheusText.
struct PromFile {
  std::map<std::string, std::string> help, type;        // metric name -> text
  std::map<std::string, double> samples;                // "name{labels}" -> value
};

PromFile ParseProm(const std::string& text) {
  PromFile f;
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+))");
  static const std::regex kType(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_]+="[^"]*"(,[a-zA-Z_]+="[^"]*")*\})? (\S+))");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      f.help[m[1]] = m[2];
    } else if (std::regex_match(line, m, kType)) {
      f.type[m[1]] = m[2];
    } else if (std::regex_match(line, m, kSample)) {
      EXPECT_TRUE(f.type.count(m[1])) << "sample before its TYPE line: " << line;
      const std::string v = m[4];
      f.samples[std::string(m[1]) + std::string(m[2])] =
          v == "NaN" ? NAN : v == "+Inf" ? INFINITY : v == "-Inf" ? -INFINITY : std::stod(v);
    } else {
      ADD_FAILURE() << "not a Prometheus text-format line: '" << line << "'";
    }
  }
  for (const auto& [name, t] : f.type) EXPECT_TRUE(f.help.count(name)) << name << " has no HELP";
  return f;
}

StepMetrics RandomStep(std::mt19937& rng, int64_t step, int layers, int experts) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  StepMetrics m;
  m.step = step;
  m.loss = 1 + 9 * u(rng);
  m.aux_loss = u(rng) / 7;
  m.lr = 1e-3 * u(rng);
  m.grad_norm = 3 * u(rng);
  m.tokens_per_s = 1e5 * u(rng);
  m.mfu = u(rng) / 3;
  m.eta_s = 100 * u(rng);
  m.loss_scale = 65536;
  m.expert_load.assign(layers, std::vector<int64_t>(experts));
  for (auto& row : m.expert_load)
    for (int64_t& c : row) c = static_cast<int64_t>(1000 * u(rng));
  return m;
}

TEST(MetricsTest, PrometheusFileEqualsTheJsonStepEvent) {
  const std::string dir = TempDir("prom");
  const std::string jsonl = dir + "/m.jsonl", prom = dir + "/node/moetrain.prom";
  fs::create_directories(dir + "/node");
  std::mt19937 rng(7);
  MetricsWriter w;
  ASSERT_TRUE(w.Open(jsonl, prom, 0, 40).ok());
  // Before any step: step, total and the skip counter only.
  PromFile f0 = ParseProm(ReadAll(prom));
  EXPECT_EQ(f0.samples.at("moetrain_step"), 0);
  EXPECT_EQ(f0.samples.at("moetrain_total_steps"), 40);
  EXPECT_EQ(f0.samples.count("moetrain_loss"), 0u);

  w.Write({{"event", "start"}});
  w.WriteStep(RandomStep(rng, 10, 3, 5));
  w.WriteSkippedStep(11, 65536, 32768);
  w.WriteEval(20, 2.5, 4.0);
  w.WriteStep(RandomStep(rng, 20, 3, 5));

  const std::vector<nlohmann::json> events = ReadJsonLines(jsonl);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0]["event"], "start");
  const nlohmann::json& step = events[4];
  for (const char* key : {"step", "loss", "aux_loss", "lr", "grad_norm", "tokens_per_s", "mfu",
                          "load_imbalance", "eta_s", "elapsed_s", "loss_scale", "expert_load"})
    EXPECT_TRUE(step.contains(key)) << key;

  const PromFile f = ParseProm(ReadAll(prom));
  const std::map<std::string, std::string> gauge_of_key = {
      {"step", "moetrain_step"},       {"loss", "moetrain_loss"},
      {"lr", "moetrain_lr"},           {"grad_norm", "moetrain_grad_norm"},
      {"tokens_per_s", "moetrain_tokens_per_second"}, {"mfu", "moetrain_mfu"},
      {"loss_scale", "moetrain_loss_scale"}, {"load_imbalance", "moetrain_load_imbalance"},
      {"aux_loss", "moetrain_aux_loss"}};
  for (const auto& [key, gauge] : gauge_of_key) {
    ASSERT_TRUE(f.samples.count(gauge)) << gauge;
    EXPECT_EQ(f.samples.at(gauge), step[key].get<double>()) << gauge << " vs JSON " << key;
    EXPECT_EQ(f.type.at(gauge), "gauge");
  }
  EXPECT_EQ(f.samples.at("moetrain_val_loss"), events[3]["val_loss"].get<double>());
  EXPECT_EQ(f.samples.at("moetrain_skipped_steps_total"), 1);
  EXPECT_EQ(f.type.at("moetrain_skipped_steps_total"), "counter");
  // Every expert of every layer, equal to the JSON loads; and the imbalance recomputed here.
  const auto& load = step["expert_load"];
  ASSERT_EQ(load.size(), 3u);
  double worst = 0;
  for (size_t l = 0; l < load.size(); ++l) {
    double sum = 0, mx = 0;
    for (size_t e = 0; e < load[l].size(); ++e) {
      const std::string key = "moetrain_expert_load{layer=\"" + std::to_string(l) + "\",expert=\"" +
                              std::to_string(e) + "\"}";
      ASSERT_TRUE(f.samples.count(key)) << key;
      EXPECT_EQ(f.samples.at(key), load[l][e].get<double>());
      sum += load[l][e].get<double>();
      mx = std::max(mx, load[l][e].get<double>());
    }
    worst = std::max(worst, mx / (sum / load[l].size()));
  }
  EXPECT_NEAR(step["load_imbalance"].get<double>(), worst, 1e-12);
  // Atomic writes leave no temp file behind.
  for (const auto& entry : fs::directory_iterator(dir + "/node"))
    EXPECT_EQ(entry.path().filename(), "moetrain.prom");
  fs::remove_all(dir);
}

TEST(MetricsTest, OpenNamesAnUnwritablePrometheusFile) {
  MetricsWriter w;
  absl::Status s = w.Open("", "/nonexistent-dir-moetrain/x.prom");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("/nonexistent-dir-moetrain/x.prom"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("logging.prometheus_file"), std::string::npos) << s;
}

TEST(MetricsTest, AtomicWriteReplacesTheWholeFile) {
  const std::string dir = TempDir("atomic");
  const std::string path = dir + "/f.txt";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(10000, 'a')).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "short\n").ok());
  EXPECT_EQ(ReadAll(path), "short\n");
  fs::remove_all(dir);
}

// A hand-made metrics file: an older run (other shape, which must be ignored), then a run whose
// layer 1 never routes to expert 2 in the last 3 logged steps (but did in an earlier one).
TEST(ExpertReportTest, FindsTheDeadExpertInTheWindow) {
  const std::string dir = TempDir("experts");
  const std::string path = dir + "/m.jsonl";
  {
    std::ofstream out(path);
    out << R"({"event":"start","moe_layers":[0]})" << "\n";
    out << R"({"event":"step","step":5,"expert_load":[[1,0]]})" << "\n";
    out << R"({"event":"start","moe_layers":[1,2]})" << "\n";
    out << R"({"event":"step","step":10,"expert_load":[[5,5,5,5],[4,4,4,4]]})" << "\n";
    out << R"({"event":"eval","step":10,"val_loss":3.0})" << "\n";
    out << R"({"event":"step","step":20,"expert_load":[[8,4,2,2],[6,6,0,4]]})" << "\n";
    out << R"({"event":"step","step":30,"expert_load":[[4,4,4,4],[5,5,0,6]]})" << "\n";
    out << R"({"event":"step","step":40,"expert_load":[[1,2,3,10],[2,8,0,6]]})" << "\n";
  }
  absl::StatusOr<ExpertLoadWindow> w = ReadExpertLoads(path, 3);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->num_steps, 3);
  EXPECT_EQ(w->first_step, 20);
  EXPECT_EQ(w->last_step, 40);
  EXPECT_EQ(w->moe_layers, (std::vector<int64_t>{1, 2}));
  const std::vector<LayerUtilisation> layers = SummarizeExpertLoads(*w);
  ASSERT_EQ(layers.size(), 2u);
  // Reference by hand: layer rows summed over steps 20, 30, 40.
  const std::vector<std::vector<int64_t>> sums = {{13, 10, 9, 16}, {13, 19, 0, 16}};
  for (int l = 0; l < 2; ++l) {
    int64_t total = 0, mx = 0;
    for (int64_t c : sums[l]) total += c, mx = std::max(mx, c);
    EXPECT_EQ(layers[l].total_tokens, total);
    for (int e = 0; e < 4; ++e) EXPECT_DOUBLE_EQ(layers[l].share[e], double(sums[l][e]) / total);
    EXPECT_DOUBLE_EQ(layers[l].imbalance, double(mx) / (double(total) / 4));
  }
  EXPECT_TRUE(layers[0].dead.empty());
  EXPECT_EQ(layers[1].dead, (std::vector<int64_t>{2}));
  const std::string text = FormatExpertReport(*w, layers);
  EXPECT_NE(text.find("1 dead expert(s)"), std::string::npos) << text;
  EXPECT_TRUE(std::regex_search(text, std::regex(R"(\n\s+2\s+48\s.*\s2\n)"))) << text;
  // A window reaching back to step 10 sees expert 2 of layer 1 alive.
  absl::StatusOr<ExpertLoadWindow> all = ReadExpertLoads(path, 10);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(SummarizeExpertLoads(*all)[1].dead.empty());
  fs::remove_all(dir);
}

TEST(ExpertReportTest, BadLinesNameFileAndLine) {
  const std::string dir = TempDir("bad");
  const std::string path = dir + "/m.jsonl";
  {
    std::ofstream out(path);
    out << R"({"event":"start"})" << "\n";
    out << R"({"event":"step","step":1,"expert_load":[[1,2],[3,4]]})" << "\n";
    out << R"({"event":"step","step":2,"expert_load":[[1,2],[3]]})" << "\n";
  }
  absl::StatusOr<ExpertLoadWindow> w = ReadExpertLoads(path, 5);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(std::string(w.status().message()).find(path + ":3"), std::string::npos) << w.status();
  {
    std::ofstream out(path);
    out << R"({"event":"start"})" << "\n" << "{not json\n";
  }
  w = ReadExpertLoads(path, 5);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(std::string(w.status().message()).find(path + ":2"), std::string::npos) << w.status();
  {
    std::ofstream out(path);
    out << R"({"event":"start"})" << "\n" << R"({"event":"step","step":1,"loss":2})" << "\n";
  }
  w = ReadExpertLoads(path, 5);
  EXPECT_TRUE(absl::IsNotFound(w.status())) << w.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moetrain::trainer

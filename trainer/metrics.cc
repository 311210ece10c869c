#include "trainer/metrics.h"

#include "core/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/logging.h"

namespace moetrain::trainer {
namespace {

// Prometheus sample values: Go's ParseFloat spellings for the non-finite ones, and the shortest
// round-trip decimal otherwise (so a parser reads back the JSON file's double exactly).
std::string PromValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  for (int precision = 1; precision <= 17; ++precision) {
    std::string s = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(s.c_str(), nullptr) == v) return s;
  }
  return absl::StrFormat("%.17g", v);
}

void Metric(std::string* out, const char* name, const char* type, const char* help, double value) {
  if (std::isnan(value)) return;
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                  PromValue(value), "\n");
}


}  // namespace

void AccumulateExpertLoad(const ExpertLoad& add, ExpertLoad* sum) {
  if (sum->empty()) {
    *sum = add;
    return;
  }
  for (size_t l = 0; l < add.size(); ++l)
    for (size_t e = 0; e < add[l].size(); ++e) (*sum)[l][e] += add[l][e];
}

double LoadImbalance(const ExpertLoad& load) {
  double worst = 0;
  for (const auto& layer : load) {
    double sum = 0, mx = 0;
    for (int64_t c : layer) {
      sum += c;
      mx = std::max(mx, static_cast<double>(c));
    }
    if (sum > 0) worst = std::max(worst, mx / (sum / layer.size()));
  }
  return worst;
}

nlohmann::json StepEventJson(const StepMetrics& m) {
  return {{"event", "step"},       {"step", m.step},
          {"loss", m.loss},        {"aux_loss", m.aux_loss},
          {"lr", m.lr},            {"grad_norm", m.grad_norm},
          {"tokens_per_s", m.tokens_per_s}, {"mfu", m.mfu},
          {"load_imbalance", LoadImbalance(m.expert_load)},
          {"eta_s", m.eta_s},      {"batch_hash", m.batch_hash},
          {"elapsed_s", m.elapsed_s}, {"loss_scale", m.loss_scale},
          {"experts_skipped", m.experts_skipped}, {"expert_load", m.expert_load}};
}

std::string RenderPrometheusText(const PrometheusSnapshot& s) {
  const StepMetrics& m = s.step;
  std::string out;
  Metric(&out, "moetrain_step", "gauge", "Optimizer steps done.", static_cast<double>(m.step));
  Metric(&out, "moetrain_total_steps", "gauge", "Optimizer steps the run will take.",
         static_cast<double>(s.total_steps));
  Metric(&out, "moetrain_skipped_steps_total", "counter",
         "Steps skipped on a non-finite gradient in this run.",
         static_cast<double>(s.skipped_steps_total));
  if (m.step == 0) return out;  // nothing trained yet: no loss, lr, ... to report
  Metric(&out, "moetrain_loss", "gauge", "Training cross-entropy at the last logged step.", m.loss);
  Metric(&out, "moetrain_aux_loss", "gauge", "Router auxiliary loss at the last logged step.", m.aux_loss);
  Metric(&out, "moetrain_val_loss", "gauge", "Validation cross-entropy at the last evaluation.", s.val_loss);
  Metric(&out, "moetrain_lr", "gauge", "Learning rate of the last logged step.", m.lr);
  Metric(&out, "moetrain_grad_norm", "gauge", "Global gradient L2 norm before clipping.", m.grad_norm);
  Metric(&out, "moetrain_tokens_per_second", "gauge",
         "Global training tokens per second since the previous log line.", m.tokens_per_s);
  Metric(&out, "moetrain_mfu", "gauge", "Model FLOPs utilisation (0..1) against the measured sgemm peak.",
         m.mfu);
  Metric(&out, "moetrain_loss_scale", "gauge", "Loss scale used by the last logged step.", m.loss_scale);
  Metric(&out, "moetrain_load_imbalance", "gauge",
         "Max over MoE layers of max/mean tokens per expert at the last logged step.",
         LoadImbalance(m.expert_load));
  Metric(&out, "moetrain_eta_seconds", "gauge", "Estimated seconds to the end of the run.", m.eta_s);
  if (!m.expert_load.empty()) {
    absl::StrAppend(&out,
                    "# HELP moetrain_expert_load Tokens routed to each expert at the last logged step "
                    "(layer = MoE layer index).\n# TYPE moetrain_expert_load gauge\n");
    for (size_t l = 0; l < m.expert_load.size(); ++l)
      for (size_t e = 0; e < m.expert_load[l].size(); ++e)
        absl::StrAppend(&out, "moetrain_expert_load{layer=\"", l, "\",expert=\"", e, "\"} ",
                        m.expert_load[l][e], "\n");
  }
  return out;
}

absl::Status MetricsWriter::Open(const std::string& jsonl_path, const std::string& prometheus_path,
                                 int64_t start_step, int64_t total_steps) {
  if (!jsonl_path.empty()) {
    jsonl_.open(jsonl_path, std::ios::app);
    if (!jsonl_)
      return absl::FailedPreconditionError(
          absl::StrCat(jsonl_path, ": cannot open metrics file for appending"));
  }
  prometheus_path_ = prometheus_path;
  prom_ = PrometheusSnapshot();
  prom_.step.step = start_step;
  prom_.total_steps = total_steps;
  if (!prometheus_path_.empty()) {
    absl::Status s = WriteFileAtomically(prometheus_path_, RenderPrometheusText(prom_));
    if (!s.ok())
      return absl::FailedPreconditionError(
          absl::StrCat("logging.prometheus_file: ", s.message()));
  }
  return absl::OkStatus();
}

void MetricsWriter::Write(const nlohmann::json& event) {
  if (!jsonl_.is_open()) return;
  jsonl_ << event.dump() << "\n";
  jsonl_.flush();
}

void MetricsWriter::WriteStep(const StepMetrics& m) {
  Write(StepEventJson(m));
  prom_.step = m;
  WritePrometheus();
}

void MetricsWriter::WriteEval(int64_t step, double val_loss, double unigram_val_loss) {
  Write({{"event", "eval"}, {"step", step}, {"val_loss", val_loss},
         {"unigram_val_loss", unigram_val_loss}});
  prom_.val_loss = val_loss;
  WritePrometheus();
}

void MetricsWriter::WriteFinal(int64_t step, double val_loss, double unigram_val_loss) {
  Write({{"event", "final"}, {"step", step}, {"val_loss", val_loss},
         {"unigram_val_loss", unigram_val_loss}});
  prom_.val_loss = val_loss;
  WritePrometheus();
}

void MetricsWriter::WriteSkippedStep(int64_t step, double loss_scale, double new_loss_scale) {
  Write({{"event", "skipped_step"}, {"step", step}, {"loss_scale", loss_scale},
         {"new_loss_scale", new_loss_scale}});
  ++prom_.skipped_steps_total;
}

void MetricsWriter::WritePrometheus() {
  if (prometheus_path_.empty()) return;
  absl::Status s = WriteFileAtomically(prometheus_path_, RenderPrometheusText(prom_));
  if (!s.ok() && !prometheus_warned_) {
    prometheus_warned_ = true;
    MT_LOG(WARNING) << "logging.prometheus_file: " << s.message()
                    << " (training goes on; further failures are not reported)";
  }
}

}  // namespace moetrain::trainer

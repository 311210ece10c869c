#include "data/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/logging.h"

namespace moetrain::data {

std::string HumanCount(double v) {
  const char* suffix = "";
  if (v >= 1e9) {
    v /= 1e9;
    suffix = "G";
  } else if (v >= 1e6) {
    v /= 1e6;
    suffix = "M";
  } else if (v >= 1e3) {
    v /= 1e3;
    suffix = "k";
  }
  if (*suffix == '\0') return absl::StrFormat("%.0f", v);
  return absl::StrFormat(v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s", v, suffix);
}

std::string HumanSeconds(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return absl::StrFormat("%.1fs", s);
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total, double interval_seconds)
    : label_(std::move(label)),
      total_(total),
      interval_s_(interval_seconds),
      start_(Clock::now()),
      last_print_(start_) {}

void Progress::Update(int64_t done, int64_t tokens) {
  const auto now = Clock::now();
  if (std::chrono::duration<double>(now - last_print_).count() < interval_s_) return;
  last_print_ = now;
  Print(done, tokens, /*final=*/false);
}

void Progress::Finish(int64_t done, int64_t tokens) { Print(done, tokens, /*final=*/true); }

void Progress::Print(int64_t done, int64_t tokens, bool final) {
  const double elapsed =
      std::max(1e-9, std::chrono::duration<double>(Clock::now() - start_).count());
  std::string line = absl::StrCat(label_, ": ", done);
  if (total_ > 0) {
    absl::StrAppend(&line, "/", total_, " documents",
                    absl::StrFormat(" (%.1f%%)", 100.0 * static_cast<double>(done) / total_));
  } else {
    absl::StrAppend(&line, " documents");
  }
  absl::StrAppend(&line, ", ", HumanCount(done / elapsed), " docs/s");
  if (tokens >= 0) {
    absl::StrAppend(&line, ", ", HumanCount(static_cast<double>(tokens)), " tokens, ",
                    HumanCount(tokens / elapsed), " tokens/s");
  }
  if (final) {
    absl::StrAppend(&line, ", done in ", HumanSeconds(elapsed));
  } else if (total_ > 0 && done > 0) {
    absl::StrAppend(&line, ", ETA ", HumanSeconds(elapsed * (total_ - done) / done));
  }
  MT_LOG(INFO) << line;
}

}  // namespace moetrain::data

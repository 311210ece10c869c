#include "apps/metrics_commands.h"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "generated/apps/plot_metrics_script.h"
#include "trainer/expert_report.h"

extern char** environ;

namespace moetrain::apps {

void PlotFlags::Add(CLI::App* app) {
  app->add_option("metrics", metrics, "metrics file (JSON lines, logging.metrics_file)")->required();
  app->add_option("--out", out_dir, "output directory for the PNGs (created)")->required();
  app->add_option("--run", run, "which run in the file (0 = first, -1 = last)")->capture_default_str();
}

absl::Status RunPlot(const PlotFlags& flags) {
  if (!std::filesystem::is_regular_file(flags.metrics))
    return absl::NotFoundError(absl::StrCat(flags.metrics, ": no such metrics file"));
  const char* env_python = std::getenv("MOETRAIN_PYTHON");
  const std::string python = env_python != nullptr && *env_python ? env_python : "python3";
  // python3 -c SCRIPT METRICS --out DIR --run N: the script travels inside the binary, so an
  // installed moetrain needs no source tree.
  std::vector<std::string> args = {python,        "-c",   kPlotMetricsScript, flags.metrics,
                                   "--out",       flags.out_dir, "--run",     std::to_string(flags.run)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "moetrain plot needs ", python, " on PATH with matplotlib (", std::strerror(rc),
        "); install python3 and then `pip install matplotlib` (Debian: apt-get install python3-matplotlib), "
        "or set MOETRAIN_PYTHON to an interpreter that has it"));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return absl::InternalError(absl::StrCat("waitpid on ", python, ": ", std::strerror(errno)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  // The script printed its own message (file:line, or the pip hint) to stderr.
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
    return absl::FailedPreconditionError("matplotlib is missing: pip install matplotlib (see above)");
  return absl::InvalidArgumentError(absl::StrCat(
      "plotting ", flags.metrics, " failed (", python,
      WIFEXITED(status) ? absl::StrCat(" exited with ", WEXITSTATUS(status))
                        : absl::StrCat(" killed by signal ", WTERMSIG(status)),
      "; its message is above)"));
}

void ExpertsFlags::Add(CLI::App* app) {
  app->add_option("path", path, "metrics file (JSON lines) or snapshot directory")->required();
  app->add_option("--last", last_steps, "window: the last N logged steps of the metrics file")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

absl::Status RunExperts(const ExpertsFlags& flags) {
  std::string report;
  if (std::filesystem::is_directory(flags.path)) {
    ASSIGN_OR_RETURN(report, trainer::SnapshotExpertReport(flags.path));
  } else {
    ASSIGN_OR_RETURN(trainer::ExpertLoadWindow window, trainer::ReadExpertLoads(flags.path, flags.last_steps));
    report = trainer::FormatExpertReport(window, trainer::SummarizeExpertLoads(window));
  }
  std::fwrite(report.data(), 1, report.size(), stdout);
  return absl::OkStatus();
}

}  // namespace moetrain::apps

#include "apps/metrics_commands.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

namespace {

// Runs argv[0] (searched on PATH) with argv; quiet sends its stdout and stderr to /dev/null.
// Returns its exit status (128 + signal when killed), or an error when it cannot start.
absl::StatusOr<int> Spawn(std::vector<std::string> args, bool quiet) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::NotFoundError(absl::StrCat(args[0], ": ", std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return absl::InternalError(absl::StrCat("waitpid on ", args[0], ": ", std::strerror(errno)));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

absl::Status RunPlot(const PlotFlags& flags) {
  if (!std::filesystem::is_regular_file(flags.metrics))
    return absl::NotFoundError(absl::StrCat(flags.metrics, ": no such metrics file"));
  // $MOETRAIN_PYTHON, else python3 on PATH, else the system one: scripts/install-deps.sh installs
  // Debian's python3-matplotlib for /usr/bin/python3, which a pyenv or venv python3 on PATH hides.
  const char* env_python = std::getenv("MOETRAIN_PYTHON");
  std::vector<std::string> candidates;
  if (env_python != nullptr && *env_python) {
    candidates = {env_python};
  } else {
    candidates = {"python3", "/usr/bin/python3"};
  }
  std::string python;
  for (const std::string& c : candidates) {
    absl::StatusOr<int> probe = Spawn({c, "-c", "import matplotlib"}, /*quiet=*/true);
    if (probe.ok() && *probe == 0) {
      python = c;
      break;
    }
  }
  if (python.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "moetrain plot needs python3 with matplotlib; none of ", absl::StrJoin(candidates, ", "),
        " can import it: pip install matplotlib (Debian: apt-get install python3-matplotlib, as "
        "scripts/install-deps.sh does), or set MOETRAIN_PYTHON to an interpreter that has it"));
  // python3 -c SCRIPT METRICS --out DIR --run N: the script travels inside the binary, so an
  // installed moetrain needs no source tree.
  ASSIGN_OR_RETURN(int rc, Spawn({python, "-c", kPlotMetricsScript, flags.metrics, "--out",
                                  flags.out_dir, "--run", std::to_string(flags.run)},
                                 /*quiet=*/false));
  if (rc == 0) return absl::OkStatus();
  // The script printed its own message (file:line, or the pip hint) to stderr.
  return absl::InvalidArgumentError(absl::StrCat("plotting ", flags.metrics, " failed (", python,
                                                 " exited with ", rc, "; its message is above)"));
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

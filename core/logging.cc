#include "core/logging.h"

#include <atomic>
#include <cstdio>

namespace moetrain {
namespace {
std::atomic<int> g_rank{0};
std::atomic<bool> g_quiet_nonzero{false};
}  // namespace

void SetLogRank(int rank) { g_rank = rank; }
int LogRank() { return g_rank; }
void SetLogQuietNonZeroRanks(bool quiet) { g_quiet_nonzero = quiet; }
std::string LogPrefix() { return "[rank " + std::to_string(g_rank.load()) + "] "; }

LogLine::LogLine(LogLevel level) : level_(level) {}

LogLine::~LogLine() {
  if (level_ == LogLevel::kInfo && g_quiet_nonzero && g_rank != 0) return;
  const char tag = level_ == LogLevel::kInfo ? 'I' : level_ == LogLevel::kWarning ? 'W' : 'E';
  std::string line = LogPrefix() + tag + " " + stream_.str() + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace moetrain

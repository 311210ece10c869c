// Minimal logging with a rank prefix. (Debian 12's Abseil has no absl/log.)
//
// MT_LOG(INFO) << "text";   MT_LOG(WARNING) ...;   MT_LOG(ERROR) ...
// Lines go to stderr as "[rank R] I text". SetLogRank is called once by the launcher; by default rank 0.
// Thread-safe: each line is assembled first and written with a single fwrite.
// SetLogQuietNonZeroRanks(true) drops INFO lines on ranks other than 0 (the rank-0 logger).
#pragma once

#include <sstream>
#include <string>

namespace moetrain {

enum class LogLevel { kInfo, kWarning, kError };

void SetLogRank(int rank);
int LogRank();
void SetLogQuietNonZeroRanks(bool quiet);
std::string LogPrefix();

class LogLine {
 public:
  explicit LogLine(LogLevel level);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  template <typename T>
  LogLine& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace moetrain

#define MT_LOG_LEVEL_INFO ::moetrain::LogLevel::kInfo
#define MT_LOG_LEVEL_WARNING ::moetrain::LogLevel::kWarning
#define MT_LOG_LEVEL_ERROR ::moetrain::LogLevel::kError
#define MT_LOG(level) ::moetrain::LogLine(MT_LOG_LEVEL_##level)

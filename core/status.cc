#include "core/status.h"

#include "core/logging.h"

namespace moetrain {

void CheckFailed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "%sFATAL %s:%d: check failed: %s%s%s\n", LogPrefix().c_str(), file, line, cond,
               msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace moetrain

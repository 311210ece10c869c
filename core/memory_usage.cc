#include "core/memory_usage.h"

#include <cstdio>
#include <cstring>

namespace moetrain {
namespace {

size_t StatusField(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kib = 0;
  const size_t len = std::strlen(key);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, key, len) == 0 && line[len] == ':') {
      std::sscanf(line + len + 1, "%zu", &kib);
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

}  // namespace

size_t CurrentRssBytes() { return StatusField("VmRSS"); }
size_t PeakRssBytes() { return StatusField("VmHWM"); }

}  // namespace moetrain

#include "core/phase_timer.h"

#include <cstring>

namespace moetrain {
namespace {

struct Entry {
  const char* name;
  double seconds;
};

// A handful of phases: a linear scan with a pointer fast path beats a map here.
std::vector<Entry>& Entries() {
  static std::vector<Entry> entries;
  return entries;
}

}  // namespace

std::atomic<bool> PhaseTimer::enabled_{false};

void PhaseTimer::Add(const char* name, double seconds) {
  for (Entry& e : Entries())
    if (e.name == name || std::strcmp(e.name, name) == 0) {
      e.seconds += seconds;
      return;
    }
  Entries().push_back({name, seconds});
}

std::vector<std::pair<std::string, double>> PhaseTimer::Snapshot() {
  std::vector<std::pair<std::string, double>> out;
  for (const Entry& e : Entries()) out.emplace_back(e.name, e.seconds);
  return out;
}

void PhaseTimer::Reset() { Entries().clear(); }

}  // namespace moetrain

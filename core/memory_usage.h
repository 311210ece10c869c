// This process's resident memory as the kernel reports it (/proc/self/status): VmRSS now and VmHWM,
// the peak since the process started. 0 where /proc is unavailable.
#pragma once

#include <cstddef>

namespace moetrain {

size_t CurrentRssBytes();
size_t PeakRssBytes();

}  // namespace moetrain

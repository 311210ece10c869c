// Device discovery. CudaDeviceCount() returns 0 (never fails) when there is no GPU or no usable
// driver, so GPU tests can skip cleanly with GTEST_SKIP().
#pragma once

#include <string>

namespace moetrain::cuda {
int CudaDeviceCount();
std::string CudaDeviceName(int device);
}  // namespace moetrain::cuda

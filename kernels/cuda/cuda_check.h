// CUDA error handling: every runtime call and launch is checked; failures become a Status naming the
// call, file:line and a hint.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"

namespace moetrain::cuda {

inline absl::Status CudaStatus(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrFormat(
      "%s failed at %s:%d: %s (%s). HINT: check the driver (nvidia-smi) and that the binary was "
      "built for this GPU's architecture",
      call, file, line, cudaGetErrorString(err), cudaGetErrorName(err)));
}

}  // namespace moetrain::cuda

#define CUDA_RETURN_IF_ERROR(call) \
  RETURN_IF_ERROR(::moetrain::cuda::CudaStatus((call), #call, __FILE__, __LINE__))
// After a kernel launch: catches bad launch configurations immediately.
#define CUDA_RETURN_IF_LAUNCH_ERROR() \
  RETURN_IF_ERROR(::moetrain::cuda::CudaStatus(cudaGetLastError(), "kernel launch", __FILE__, __LINE__))

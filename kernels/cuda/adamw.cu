#include <cmath>

#include "kernels/cuda/adamw.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dtype_dispatch.cuh"

namespace moetrain::cuda {

// ---- kernel: blockIdx.y picks the tensor, a grid-stride loop over x covers its elements ----

constexpr int kTensorsPerLaunch = 32;

struct AdamWSlot {
  float* param;
  float* m;
  float* v;
  const void* grad;
  int64_t n;
  float inv_bc1, inv_bc2;  // 1 / (1 - b1^t), 1 / (1 - b2^t) for this tensor's t
};
struct AdamWBatch {  // passed by value: 32 * 48 bytes, under the 4 KB kernel-argument limit
  AdamWSlot slot[kTensorsPerLaunch];
};

template <typename G>
__global__ void AdamWMultiKernel(AdamWBatch batch, float b1, float b2, float lr, float eps,
                                 float wd, float grad_scale) {
  const AdamWSlot& s = batch.slot[blockIdx.y];
  const G* grad = static_cast<const G*>(s.grad);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < s.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad_scale * LoadF(grad, i);
    const float mi = b1 * s.m[i] + (1.f - b1) * g;
    const float vi = b2 * s.v[i] + (1.f - b2) * g * g;
    const float p = s.param[i];
    const float update = (mi * s.inv_bc1) / (sqrtf(vi * s.inv_bc2) + eps) + wd * p;
    s.m[i] = mi;
    s.v[i] = vi;
    s.param[i] = p - lr * update;
  }
}

// ---- launcher ----

absl::Status AdamWMultiStep(const std::vector<AdamWTensor>& tensors, DType grad_dtype,
                            const kernels::AdamWHyper& hyper, float grad_scale,
                            cudaStream_t stream) {
  std::vector<AdamWSlot> slots;
  int64_t max_n = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const AdamWTensor& t = tensors[k];
    if (t.skip || t.n == 0) continue;
    if (t.step < 1)
      return absl::InvalidArgumentError(
          absl::StrFormat("cuda::AdamWMultiStep: tensor %d has step %d (must be >= 1)", k, t.step));
    if (!t.param || !t.m || !t.v || !t.grad)
      return absl::InvalidArgumentError(absl::StrFormat(
          "cuda::AdamWMultiStep: tensor %d of %d elements has a null pointer", k, t.n));
    // Bias corrections in double on the host, as the CPU kernel does.
    const double bc1 = 1.0 - std::pow(hyper.beta1, static_cast<double>(t.step));
    const double bc2 = 1.0 - std::pow(hyper.beta2, static_cast<double>(t.step));
    slots.push_back({t.param, t.m, t.v, t.grad, t.n, static_cast<float>(1.0 / bc1),
                     static_cast<float>(1.0 / bc2)});
    max_n = std::max(max_n, t.n);
  }
  if (slots.empty()) return absl::OkStatus();
  const unsigned blocks_x = std::min(GridFor(max_n), 4096u);
  return DispatchStorage(grad_dtype, "AdamWMultiStep", [&](auto g) -> absl::Status {
    using G = decltype(g);
    for (size_t first = 0; first < slots.size(); first += kTensorsPerLaunch) {
      AdamWBatch batch{};
      const size_t count = std::min<size_t>(kTensorsPerLaunch, slots.size() - first);
      for (size_t k = 0; k < count; ++k) batch.slot[k] = slots[first + k];
      AdamWMultiKernel<G>
          <<<dim3(blocks_x, static_cast<unsigned>(count)), kBlockThreads, 0, stream>>>(
              batch, static_cast<float>(hyper.beta1), static_cast<float>(hyper.beta2),
              static_cast<float>(hyper.lr), static_cast<float>(hyper.eps),
              static_cast<float>(hyper.weight_decay), grad_scale);
      CUDA_RETURN_IF_LAUNCH_ERROR();
    }
    return absl::OkStatus();
  });
}

}  // namespace moetrain::cuda

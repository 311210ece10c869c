// AdamW over the model's ParamTable (single process; the ZeRO-sharded version builds on this).
//
// For every trained parameter of the table the optimizer owns two moments (m, v) of the same shape,
// planned in one "optimizer" arena at construction, and a per-tensor step count (so experts skipped by
// sparse updates later keep their own bias correction). Weight decay applies only to tensors whose
// ParamSpec says so (matrices; not norms or buffers). Step() clips by global gradient norm first.
// Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "kernels/adamw.h"
#include "model/model.h"
#include "parallel/communicator.h"

namespace moetrain::optim {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // max global L2 norm of the gradient; 0 = no clipping
};

struct StepStats {
  double grad_norm = 0;    // global L2 norm before clipping
  double clip_scale = 1;   // factor applied to the gradient (1 = not clipped)
};

template <typename T>
class AdamWOptimizer {
 public:
  // ep: the expert-parallel group (nullptr = all experts local); the global gradient norm sums
  // the experts' part over it, so clipping sees the same norm on every layout. tp: the
  // tensor-parallel group (nullptr = none); the squares of tp-split shards are summed over it,
  // tensors replicated over tp are counted once.
  static absl::StatusOr<std::unique_ptr<AdamWOptimizer>> Create(model::Model<T>* model,
                                                                const AdamWConfig& config,
                                                                parallel::Communicator* ep = nullptr,
                                                                parallel::Communicator* tp = nullptr);
  AdamWOptimizer(const AdamWOptimizer&) = delete;
  AdamWOptimizer& operator=(const AdamWOptimizer&) = delete;

  // Global L2 norm of all gradients (deterministic order: the table's).
  double GradNorm() const;
  // One update at learning rate lr from the model's current gradients.
  StepStats Step(double lr);

  size_t StateBytes() const { return state_.TotalBytes(); }
  int64_t StepCount(const std::string& name) const;

 private:
  AdamWOptimizer() = default;
  struct Slot {
    std::string name;
    T* param;
    const T* grad;
    T* m;
    T* v;
    int64_t numel;
    bool weight_decay;
    bool is_expert;
    bool tp_split;  // a shard of a tensor split over tp
    int64_t step = 0;
  };
  model::Model<T>* model_ = nullptr;
  AdamWConfig config_;
  parallel::Communicator* ep_ = nullptr;
  parallel::Communicator* tp_ = nullptr;
  Arena state_;
  std::vector<Slot> slots_;
};

}  // namespace moetrain::optim

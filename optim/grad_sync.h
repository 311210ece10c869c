// Data-parallel gradient synchronisation over the ParamTable.
//
// Dense parameters are replicated over the data-parallel group (dp); expert parameters over the
// expert-data-parallel group (edp: the ranks holding the same experts). Gradients are SUMMED (not
// averaged): the model already scales each rank's loss by its share of the global token count, so
// the sum is exactly the gradient of the global loss — with ep > 1 that is also why expert
// gradients are never ep-times too large. Tensors are packed in table order into buckets of about
// `bucket_bytes`, one AllReduce per bucket; buckets are planned once at Create (no allocation in
// Run). Only tensors the model holds locally are synced (with ep > 1 a rank holds its experts only).
// Tensor parallelism changes nothing here: a tp shard is a different tensor on each tp rank, and
// dp / edp groups join ranks with the same tp rank, so each shard is reduced with its replicas; the
// tensors replicated over tp (norms, router) already get identical gradients on every tp rank.
#pragma once

#include <memory>
#include <vector>

#include "model/model.h"
#include "parallel/communicator.h"

namespace moetrain::optim {

template <typename T>
class GradSync {
 public:
  static absl::StatusOr<std::unique_ptr<GradSync>> Create(model::Model<T>* model,
                                                          parallel::Communicator* dp,
                                                          parallel::Communicator* edp,
                                                          size_t bucket_bytes = size_t{4} << 20);
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Sum-reduces every local gradient over its group. Collective: all ranks of both groups call it.
  absl::Status Run();
  size_t BufferBytes() const { return buffer_.size() * sizeof(T); }

 private:
  GradSync() = default;
  struct Bucket {
    parallel::Communicator* comm;
    std::vector<std::pair<T*, int64_t>> tensors;  // grad pointer, numel
    int64_t numel = 0;
  };
  std::vector<Bucket> buckets_;
  std::vector<T> buffer_;  // sized for the largest bucket
};

}  // namespace moetrain::optim

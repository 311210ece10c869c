#include "optim/grad_sync.h"

#include <algorithm>
#include <cstring>

namespace moetrain::optim {

template <typename T>
absl::StatusOr<std::unique_ptr<GradSync<T>>> GradSync<T>::Create(model::Model<T>* model,
                                                                 parallel::Communicator* dp,
                                                                 parallel::Communicator* edp,
                                                                 size_t bucket_bytes) {
  std::unique_ptr<GradSync<T>> sync(new GradSync<T>());
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes / sizeof(T)));
  for (parallel::Communicator* comm : {dp, edp}) {
    if (comm->size() == 1) continue;  // nothing to reduce
    const bool experts = comm == edp;
    Bucket current{comm, {}, 0};
    for (const model::ParamSpec& s : model->table().specs()) {
      if (s.kind == model::ParamKind::kBuffer || !model->HasGrad(s.name)) continue;
      if ((s.kind == model::ParamKind::kExpert) != experts) continue;
      TensorView g = model->Grad(s.name);  // this tp rank's shard
      if (current.numel > 0 && current.numel + g.numel() > cap) {
        sync->buckets_.push_back(std::move(current));
        current = Bucket{comm, {}, 0};
      }
      current.tensors.emplace_back(g.template as<T>(), g.numel());
      current.numel += g.numel();
    }
    if (current.numel > 0) sync->buckets_.push_back(std::move(current));
  }
  int64_t largest = 0;
  for (const Bucket& b : sync->buckets_) largest = std::max(largest, b.numel);
  sync->buffer_.assign(largest, T(0));
  return sync;
}

template <typename T>
absl::Status GradSync<T>::Run() {
  for (Bucket& b : buckets_) {
    T* buf = buffer_.data();
    int64_t off = 0;
    for (auto& [ptr, n] : b.tensors) {
      std::memcpy(buf + off, ptr, n * sizeof(T));
      off += n;
    }
    RETURN_IF_ERROR(b.comm->AllReduce(buf, buf, b.numel, DTypeOf<T>::value));
    off = 0;
    for (auto& [ptr, n] : b.tensors) {
      std::memcpy(ptr, buf + off, n * sizeof(T));
      off += n;
    }
  }
  return absl::OkStatus();
}

template class GradSync<float>;
template class GradSync<double>;

}  // namespace moetrain::optim

#include "parallel/comm_handle.h"

#include "core/logging.h"

namespace moetrain::parallel {

absl::Status CommHandle::Wait() {
  if (impl_ != nullptr) {
    status_ = impl_->Wait();
    impl_.reset();
  }
  return status_;
}

void CommHandle::WaitAndLog() {
  if (impl_ == nullptr) return;
  absl::Status s = Wait();
  if (!s.ok()) MT_LOG(ERROR) << "pending CommHandle waited on destruction failed: " << s;
}

CommHandle& CommHandle::operator=(CommHandle&& other) noexcept {
  if (this != &other) {
    WaitAndLog();
    impl_ = std::move(other.impl_);
    status_ = std::move(other.status_);
  }
  return *this;
}

CommHandle::~CommHandle() { WaitAndLog(); }

}  // namespace moetrain::parallel

// A ParamSource over a snapshot of any layout: full fp32 master weights ("param" field) read
// through the resharding reader. Buffers absent from the snapshot read as Has() == false.
#pragma once

#include <string>

#include "checkpoint/snapshot_reader.h"
#include "model/param_source.h"

namespace moetrain::checkpoint {

class SnapshotParamSource : public model::ParamSource {
 public:
  explicit SnapshotParamSource(const SnapshotReader& reader) : reader_(reader) {}
  absl::Status ReadFull(const model::ParamSpec& spec, float* out) override {
    return reader_.ReadSlab("param", spec.name, std::vector<int64_t>(spec.shape.size(), 0),
                            spec.shape, out);
  }
  bool Has(const std::string& name) const override { return reader_.Has("param", name); }

 private:
  const SnapshotReader& reader_;
};

}  // namespace moetrain::checkpoint

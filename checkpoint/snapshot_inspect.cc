#include "checkpoint/snapshot_inspect.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/snapshot_reader.h"
#include "core/status.h"

namespace moetrain::checkpoint {

absl::StatusOr<std::string> DescribeSnapshot(const std::string& dir) {
  ASSIGN_OR_RETURN(SnapshotReader reader, SnapshotReader::Open(dir));
  RETURN_IF_ERROR(reader.Verify());
  const nlohmann::json& meta = reader.meta();
  std::string out = absl::StrCat("snapshot ", dir, "\n");
  absl::StrAppend(&out, "  format:     ", meta["format"].get<std::string>(), " version ",
                  meta["version"].get<int>(), "\n");
  absl::StrAppend(&out, "  step:       ", reader.step(), "\n");
  absl::StrAppend(&out, "  world size: ", reader.world_size(), "\n");
  const nlohmann::json& state = meta.contains("state") ? meta["state"] : nlohmann::json::object();
  absl::StrAppend(&out, "  layout:     ",
                  state.contains("layout") ? state["layout"].dump() : std::string("(not recorded)"),
                  "\n");
  std::vector<std::string> keys;
  for (const auto& kv : state.items()) {
    if (kv.key() != "layout") keys.push_back(kv.key());
  }
  absl::StrAppend(&out, "  state:      ", keys.empty() ? "(none)" : absl::StrJoin(keys, ", "),
                  "\n");
  absl::StrAppend(&out, "  tensors:    ", reader.tensors().size(), "\n");
  for (const auto& [field, names] : reader.fields()) {
    int64_t bytes = 0;
    for (const std::string& n : names) bytes += Volume(reader.tensors().at(n)) * 4;
    absl::StrAppend(&out, "  field ", field, ": ", names.size(), " tensors, ", bytes,
                    " bytes (fp32)\n");
  }
  absl::StrAppend(&out, "all ", reader.num_datasets(), " datasets verified\n");
  return out;
}

}  // namespace moetrain::checkpoint

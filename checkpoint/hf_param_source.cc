#include "checkpoint/hf_param_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moetrain::checkpoint {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<HfParamSource>> HfParamSource::Open(const std::string& dir) {
  std::unique_ptr<HfParamSource> src(new HfParamSource());
  src->dir_ = dir;
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;  // name -> file (index only)
  if (!fs::is_directory(dir)) {
    files.push_back(dir);
  } else if (fs::exists(fs::path(dir) / "model.safetensors.index.json")) {
    const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
    std::ifstream in(index_path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return absl::DataLossError(absl::StrCat(index_path, ": not a JSON object with a \"weight_map\" object"));
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        return absl::DataLossError(absl::StrCat(index_path, ": weight_map[\"", name, "\"] is not a file name"));
      weight_map[name] = file.get<std::string>();
      if (std::find(files.begin(), files.end(), file.get<std::string>()) == files.end())
        files.push_back(file.get<std::string>());
    }
    for (std::string& f : files) f = (fs::path(dir) / f).string();
  } else {
    files.push_back((fs::path(dir) / "model.safetensors").string());
  }
  for (const std::string& f : files) {
    ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::Open(f));
    for (const std::string& name : st.Names()) {
      if (src->where_.count(name))
        return absl::DataLossError(absl::StrCat(f, ": tensor '", name, "' also appears in ",
                                                src->files_[src->where_[name]].path()));
      src->where_[name] = src->files_.size();
    }
    src->files_.push_back(std::move(st));
  }
  for (const auto& [name, file] : weight_map) {
    if (!src->where_.count(name))
      return absl::DataLossError(absl::StrCat(dir, "/model.safetensors.index.json: tensor '", name,
                                              "' is listed in ", file, " but that file lacks it"));
  }
  return src;
}

absl::Status HfParamSource::ReadFull(const model::ParamSpec& spec, float* out) {
  auto it = where_.find(spec.name);
  if (it == where_.end())
    return absl::NotFoundError(absl::StrCat(dir_, ": missing tensor '", spec.name, "'"));
  return files_[it->second].ReadInto(spec.name, TensorView(out, Shape(spec.shape), DType::kF32));
}

std::vector<std::string> HfParamSource::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, index] : where_) names.push_back(name);
  return names;
}

}  // namespace moetrain::checkpoint

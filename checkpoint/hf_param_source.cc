#include "checkpoint/hf_param_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moetrain::checkpoint {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<HfParamSource>> HfParamSource::Open(const std::string& dir) {
  HfNaming naming = HfNaming::kMixtral;
  const fs::path config = fs::path(dir) / "config.json";
  if (fs::is_directory(dir) && fs::exists(config)) {
    std::ifstream in(config);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("model_type") && j["model_type"] == "qwen2_moe")
      naming = HfNaming::kQwen2Moe;
  }
  return OpenWithNaming(dir, naming);
}

absl::StatusOr<std::unique_ptr<HfParamSource>> HfParamSource::OpenWithNaming(const std::string& dir,
                                                                             HfNaming naming) {
  std::unique_ptr<HfParamSource> src(new HfParamSource());
  src->dir_ = dir;
  src->naming_ = naming;
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
  if (naming == HfNaming::kQwen2Moe) RETURN_IF_ERROR(src->CheckQwenExtras());
  return src;
}

namespace {
bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool IsQwenExtra(const std::string& hf_name) {
  return EndsWith(hf_name, "_proj.bias") || EndsWith(hf_name, ".mlp.shared_expert_gate.weight");
}
}  // namespace

// moetrain has no attention biases and adds the shared experts ungated; a sigmoid gate is constant
// (0.5, folded into down_proj) only when its weight is zero.
absl::Status HfParamSource::CheckQwenExtras() const {
  for (const auto& [name, index] : where_) {
    if (!IsQwenExtra(name)) continue;
    ASSIGN_OR_RETURN(std::vector<float> v, files_[index].ReadAsFloat(name));
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] != 0.0f)
        return absl::FailedPreconditionError(absl::StrCat(
            files_[index].path(), ": tensor '", name, "' element ", i, " is ", v[i],
            "; not representable in moetrain (it has no attention biases and no learned shared-"
            "expert gate; only an all-zero tensor maps exactly)"));
    }
  }
  return absl::OkStatus();
}

absl::Status HfParamSource::ReadFull(const model::ParamSpec& spec, float* out) {
  const std::string hf_name = ToHfName(naming_, spec.name);
  auto it = where_.find(hf_name);
  if (it == where_.end())
    return absl::NotFoundError(absl::StrCat(dir_, ": missing tensor '", hf_name, "'"));
  RETURN_IF_ERROR(files_[it->second].ReadInto(hf_name, TensorView(out, Shape(spec.shape), DType::kF32)));
  const float scale = HfScale(naming_, spec.name);
  if (scale != 1.0f) {
    const int64_t n = spec.numel();
    for (int64_t i = 0; i < n; ++i) out[i] /= scale;  // a power of two: exact
  }
  return absl::OkStatus();
}

std::vector<std::string> HfParamSource::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, index] : where_) {
    if (naming_ == HfNaming::kMixtral) {
      names.push_back(name);
      continue;
    }
    if (IsQwenExtra(name)) continue;
    if (name.find(".mlp.shared_expert.") != std::string::npos) {
      absl::StatusOr<TensorInfo> info = files_[index].Info(name);
      if (info.ok() && info->numel == 0) continue;  // a zero-width shared expert: nothing to load
    }
    const std::string ours = FromHfName(naming_, name);
    names.push_back(ours.empty() ? name : ours);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace moetrain::checkpoint

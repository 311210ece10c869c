#include "checkpoint/hf_naming.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace moetrain::checkpoint {
namespace {

// (moetrain fragment, qwen2_moe fragment), matched against the part of a name after
// "model.layers.<i>."; "#" stands for an expert index.
constexpr std::pair<const char*, const char*> kQwenRules[] = {
    {"block_sparse_moe.gate.weight", "mlp.gate.weight"},
    {"block_sparse_moe.experts.#.w1.weight", "mlp.experts.#.gate_proj.weight"},
    {"block_sparse_moe.experts.#.w3.weight", "mlp.experts.#.up_proj.weight"},
    {"block_sparse_moe.experts.#.w2.weight", "mlp.experts.#.down_proj.weight"},
    {"block_sparse_moe.shared_experts.w1.weight", "mlp.shared_expert.gate_proj.weight"},
    {"block_sparse_moe.shared_experts.w3.weight", "mlp.shared_expert.up_proj.weight"},
    {"block_sparse_moe.shared_experts.w2.weight", "mlp.shared_expert.down_proj.weight"},
};

// Splits "model.layers.<i>.<rest>" into ("model.layers.<i>.", rest); false for other names.
bool SplitLayer(const std::string& name, std::string* prefix, std::string* rest) {
  static const std::string kHead = "model.layers.";
  if (name.compare(0, kHead.size(), kHead) != 0) return false;
  const size_t dot = name.find('.', kHead.size());
  if (dot == std::string::npos) return false;
  *prefix = name.substr(0, dot + 1);
  *rest = name.substr(dot + 1);
  return true;
}

// Matches `text` against `pattern` where '#' matches a run of digits; the digits go to *index.
bool Match(const std::string& pattern, const std::string& text, std::string* index) {
  const size_t hash = pattern.find('#');
  if (hash == std::string::npos) return pattern == text;
  const std::string head = pattern.substr(0, hash), tail = pattern.substr(hash + 1);
  if (text.size() <= head.size() + tail.size()) return false;
  if (text.compare(0, head.size(), head) != 0) return false;
  if (text.compare(text.size() - tail.size(), tail.size(), tail) != 0) return false;
  *index = text.substr(head.size(), text.size() - head.size() - tail.size());
  for (char c : *index)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string Fill(const std::string& pattern, const std::string& index) {
  const size_t hash = pattern.find('#');
  if (hash == std::string::npos) return pattern;
  return pattern.substr(0, hash) + index + pattern.substr(hash + 1);
}

// Rewrites a layer name by the first rule whose `from` side matches; unchanged if none does.
// *matched tells whether a rule applied.
std::string Rewrite(const std::string& name, bool to_hf, bool* matched) {
  *matched = false;
  std::string prefix, rest, index;
  if (!SplitLayer(name, &prefix, &rest)) return name;
  for (const auto& [ours, theirs] : kQwenRules) {
    const std::string from = to_hf ? ours : theirs, to = to_hf ? theirs : ours;
    if (Match(from, rest, &index)) {
      *matched = true;
      return prefix + Fill(to, index);
    }
  }
  return name;
}

bool IsQwenExtra(const std::string& hf_name) {
  std::string prefix, rest;
  if (!SplitLayer(hf_name, &prefix, &rest)) return false;
  return rest == "self_attn.q_proj.bias" || rest == "self_attn.k_proj.bias" ||
         rest == "self_attn.v_proj.bias" || rest == "mlp.shared_expert_gate.weight";
}

}  // namespace

const char* HfModelType(HfNaming naming) {
  return naming == HfNaming::kMixtral ? "mixtral" : "qwen2_moe";
}

std::string ToHfName(HfNaming naming, const std::string& table_name) {
  if (naming == HfNaming::kMixtral) return table_name;
  bool matched;
  return Rewrite(table_name, /*to_hf=*/true, &matched);
}

std::string FromHfName(HfNaming naming, const std::string& hf_name) {
  if (naming == HfNaming::kMixtral) return hf_name;
  if (IsQwenExtra(hf_name)) return "";
  bool matched;
  std::string ours = Rewrite(hf_name, /*to_hf=*/false, &matched);
  // A qwen name that still contains a MoE fragment unknown to the rules has no moetrain counterpart
  // (and a Mixtral-style name inside a qwen2_moe folder is foreign too).
  if (!matched && (ours.find(".mlp.experts.") != std::string::npos ||
                   ours.find(".mlp.shared_expert") != std::string::npos ||
                   ours.find("block_sparse_moe") != std::string::npos))
    return "";
  return ours;
}

float HfScale(HfNaming naming, const std::string& table_name) {
  if (naming != HfNaming::kQwen2Moe) return 1.0f;
  std::string prefix, rest;
  if (SplitLayer(table_name, &prefix, &rest) && rest == "block_sparse_moe.shared_experts.w2.weight")
    return 2.0f;
  return 1.0f;
}

std::string QwenQkvBiasName(int layer, char which) {
  return absl::StrCat("model.layers.", layer, ".self_attn.", std::string(1, which), "_proj.bias");
}
std::string QwenSharedGateName(int layer) {
  return absl::StrCat("model.layers.", layer, ".mlp.shared_expert_gate.weight");
}

}  // namespace moetrain::checkpoint

#include "trainer/recipe.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace moetrain::trainer {
namespace {

// ------------------------------------------------------------------------------------------------
// Problems and where they are.

// "a.b[1]" -> "a.b" -> "a" -> "".
std::string Parent(const std::string& path) {
  if (!path.empty() && path.back() == ']') {
    const size_t bracket = path.rfind('[');
    if (bracket != std::string::npos) return path.substr(0, bracket);
  }
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? std::string() : path.substr(0, dot);
}

std::string JoinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : absl::StrCat(parent, ".", key);
}

// FILE:LINE:COL with 1-based line and column; FILE:1:1 when the mark is unknown.
std::string MarkText(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return absl::StrCat(file, ":1:1");
  return absl::StrCat(file, ":", mark.line + 1, ":", mark.column + 1);
}

// Collects "LOCATION: key.path: what is wrong" lines.
class Problems {
 public:
  void Add(const std::string& location, const std::string& path, const std::string& what) {
    std::vector<std::string> parts;
    if (!location.empty()) parts.push_back(location);
    if (!path.empty()) parts.push_back(path);
    parts.push_back(what);
    lines_.push_back(absl::StrJoin(parts, ": "));
  }
  bool empty() const { return lines_.empty(); }
  absl::Status ToStatus() const {
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "\n"));
  }

 private:
  std::vector<std::string> lines_;
};

// Where each key path was given: "FILE:LINE:COL" or "--set key.path". A path that was not given
// resolves to its nearest given ancestor (the root is always recorded).
class Locations {
 public:
  void Set(const std::string& path, std::string where) { map_[path] = std::move(where); }
  bool Has(const std::string& path) const { return map_.count(path) > 0; }
  std::string Of(std::string path) const {
    while (true) {
      auto it = map_.find(path);
      if (it != map_.end()) return it->second;
      if (path.empty()) return "";
      path = Parent(path);
    }
  }

 private:
  std::map<std::string, std::string> map_;
};

// Where the values being read come from: the file, or one --set override.
struct Origin {
  std::string file;         // display name of the recipe
  std::string override_at;  // "--set key.path" when reading an override value, else empty
};

// ------------------------------------------------------------------------------------------------
// Scalar parsing (strict: decimal integers only, finite numbers, true/false).

bool IsPlainScalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "?"; }

// For "expected ..., got X" messages.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return absl::StrCat("the quoted string \"", node.Scalar(), "\"");
      if (node.Tag() != "?") return absl::StrCat("'", node.Scalar(), "' tagged ", node.Tag());
      return absl::StrCat("'", node.Scalar(), "'");
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// [+-]?[0-9]+ into T, range-checked.
template <typename T>
bool ParseInteger(const std::string& text, T* out) {
  std::string_view digits = text;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (!AllDigits(digits)) return false;
  if constexpr (std::is_unsigned_v<T>) {
    uint64_t v = 0;
    if (negative || !absl::SimpleAtoi(std::string(digits), &v)) return false;
    if (v > std::numeric_limits<T>::max()) return false;
    *out = static_cast<T>(v);
  } else {
    int64_t v = 0;
    if (!absl::SimpleAtoi(text, &v)) return false;
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return false;
    *out = static_cast<T>(v);
  }
  return true;
}

template <typename T>
std::string IntegerKind() {
  if constexpr (std::is_unsigned_v<T>) {
    return "a non-negative integer";
  } else if constexpr (sizeof(T) < sizeof(int64_t)) {
    return absl::StrCat("an integer in [", std::numeric_limits<T>::min(), ", ",
                        std::numeric_limits<T>::max(), "]");
  } else {
    return "an integer";
  }
}

// [+-]? (digits (. digits?)? | . digits) ([eE] [+-]? digits)?, finite.
bool ParseNumber(const std::string& text, double* out) {
  std::string_view s = text;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  const size_t exp = s.find_first_of("eE");
  std::string_view mantissa = s.substr(0, exp);
  if (exp != std::string_view::npos) {
    std::string_view e = s.substr(exp + 1);
    if (!e.empty() && (e[0] == '+' || e[0] == '-')) e.remove_prefix(1);
    if (!AllDigits(e)) return false;
  }
  const size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) {
    if (!AllDigits(mantissa)) return false;
  } else {
    std::string_view whole = mantissa.substr(0, dot), frac = mantissa.substr(dot + 1);
    if (whole.empty() && frac.empty()) return false;
    if (!whole.empty() && !AllDigits(whole)) return false;
    if (!frac.empty() && !AllDigits(frac)) return false;
  }
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// The shortest decimal text that parses back to exactly x; whole numbers below 1e15 as "10000.0".
std::string FormatNumber(double x) {
  if (std::isfinite(x) && std::fabs(x) < 1e15 && x == std::trunc(x))
    return absl::StrFormat("%.1f", x);
  for (int precision = 1; precision <= 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, x);
    double back = 0;
    if (absl::SimpleAtod(text, &back) && back == x) return text;
  }
  return absl::StrFormat("%.17g", x);
}

// Levenshtein distance, case-insensitive.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      const bool same = absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The closest of `known` to `name`, or "" when none is close enough to be a likely typo.
std::string ClosestName(const std::string& name, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  const std::string lower_name = absl::AsciiStrToLower(name);
  for (const std::string& candidate : known) {
    size_t d = EditDistance(name, candidate);
    // A prefix of either ("optimizer" for "optim", "hidden" for "hidden_size") is a near miss.
    const std::string lower_candidate = absl::AsciiStrToLower(candidate);
    const bool prefix = std::min(name.size(), candidate.size()) >= 3 &&
                        (absl::StartsWith(lower_name, lower_candidate) ||
                         absl::StartsWith(lower_candidate, lower_name));
    if (prefix) d = std::min<size_t>(d, 1);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

// ------------------------------------------------------------------------------------------------
// The schema: one KeySpec per key, bound to the fields of one Recipe. Reading, overriding and
// writing all walk it, so the three can never disagree on a key.

// The value being read: its key path and where it came from. Readers report through it.
class ValueSite {
 public:
  ValueSite(std::string path, const YAML::Node& key, const Origin& origin, Problems* problems,
            Locations* locations)
      : path_(std::move(path)),
        key_(key),
        origin_(origin),
        problems_(problems),
        locations_(locations) {}

  // The location of `value`: "--set path" for overrides; else its mark, or its key's mark when
  // the value is empty (yaml-cpp gives empty values the position of the next token).
  std::string Where(const YAML::Node& value) const {
    if (!origin_.override_at.empty()) return origin_.override_at;
    if ((value.IsNull() || value.Mark().is_null()) && key_.IsDefined() && !key_.Mark().is_null())
      return MarkText(origin_.file, key_.Mark());
    return MarkText(origin_.file, value.Mark());
  }
  void Fail(const YAML::Node& value, const std::string& what, const std::string& suffix = "") {
    problems_->Add(Where(value), path_ + suffix, what);
  }
  void Record(const YAML::Node& value, const std::string& suffix = "") {
    locations_->Set(path_ + suffix, Where(value));
  }
  // Records the key's own position (a section's `name:` line) when there is one.
  void RecordKey(const YAML::Node& value) {
    if (origin_.override_at.empty() && key_.IsDefined() && !key_.Mark().is_null()) {
      locations_->Set(path_, MarkText(origin_.file, key_.Mark()));
    } else {
      Record(value);
    }
  }

 private:
  std::string path_;
  YAML::Node key_;
  const Origin& origin_;
  Problems* problems_;
  Locations* locations_;
};

struct KeySpec {
  std::string name;
  bool is_section = false;
  std::vector<KeySpec> children;                            // sections only
  // Sections only: when non-empty, a scalar given for the whole section is read as this child
  // (`activation_checkpointing: full` means `activation_checkpointing: {mode: full}`).
  std::string scalar_child;
  std::function<void(const YAML::Node&, ValueSite&)> read;  // leaves: parse or report
  std::function<void(YAML::Emitter&)> write;                // leaves: emit the value

  const KeySpec* Find(const std::string& key) const {
    for (const KeySpec& child : children)
      if (child.name == key) return &child;
    return nullptr;
  }
  std::vector<std::string> ChildNames() const {
    std::vector<std::string> names;
    for (const KeySpec& child : children) names.push_back(child.name);
    return names;
  }
};

KeySpec Section(std::string name, std::vector<KeySpec> children) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.is_section = true;
  spec.children = std::move(children);
  return spec;
}

template <typename T>
KeySpec IntKey(std::string name, T* field) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field](const YAML::Node& value, ValueSite& site) {
    T parsed{};
    if (!IsPlainScalar(value) || !ParseInteger(value.Scalar(), &parsed)) {
      site.Fail(value, absl::StrCat("expected ", IntegerKind<T>(), ", got ", Describe(value)));
      return;
    }
    *field = parsed;
  };
  spec.write = [field](YAML::Emitter& out) { out << absl::StrCat(*field); };
  return spec;
}

bool ReadNumber(const YAML::Node& value, ValueSite& site, double* field,
                const std::string& suffix = "") {
  double parsed = 0;
  if (!IsPlainScalar(value) || !ParseNumber(value.Scalar(), &parsed)) {
    site.Fail(value, absl::StrCat("expected a number, got ", Describe(value)), suffix);
    return false;
  }
  *field = parsed;
  return true;
}

KeySpec NumberKey(std::string name, double* field) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field](const YAML::Node& value, ValueSite& site) { ReadNumber(value, site, field); };
  spec.write = [field](YAML::Emitter& out) { out << FormatNumber(*field); };
  return spec;
}

KeySpec BoolKey(std::string name, bool* field) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field](const YAML::Node& value, ValueSite& site) {
    if (IsPlainScalar(value)) {
      const std::string& s = value.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") {
        *field = true;
        return;
      }
      if (s == "false" || s == "False" || s == "FALSE") {
        *field = false;
        return;
      }
    }
    site.Fail(value, absl::StrCat("expected true or false, got ", Describe(value)));
  };
  spec.write = [field](YAML::Emitter& out) { out << (*field ? "true" : "false"); };
  return spec;
}

// Any scalar (quoted or not) is a string; an empty value is "".
KeySpec StringKey(std::string name, std::string* field) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field](const YAML::Node& value, ValueSite& site) {
    if (value.IsNull()) {
      field->clear();
    } else if (value.IsScalar()) {
      *field = value.Scalar();
    } else {
      site.Fail(value, absl::StrCat("expected a string, got ", Describe(value)));
    }
  };
  spec.write = [field](YAML::Emitter& out) { out << YAML::DoubleQuoted << *field; };
  return spec;
}

// A scalar that must be one of `choices`; `set` stores the index of the match.
KeySpec ChoiceKey(std::string name, std::vector<std::string> choices,
                  std::function<void(size_t)> set, std::function<std::string()> get) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [choices, set](const YAML::Node& value, ValueSite& site) {
    if (value.IsScalar()) {
      for (size_t i = 0; i < choices.size(); ++i) {
        if (value.Scalar() == choices[i]) {
          set(i);
          return;
        }
      }
    }
    std::string what =
        absl::StrCat("expected one of ", absl::StrJoin(choices, " | "), ", got ", Describe(value));
    if (value.IsScalar()) {
      const std::string close = ClosestName(value.Scalar(), choices);
      if (!close.empty()) absl::StrAppend(&what, " (did you mean ", close, "?)");
    }
    site.Fail(value, what);
  };
  spec.write = [get](YAML::Emitter& out) { out << get(); };
  return spec;
}

template <typename E>
KeySpec EnumKey(std::string name, E* field, std::vector<E> values, std::string_view (*spell)(E)) {
  std::vector<std::string> choices;
  for (E v : values) choices.emplace_back(spell(v));
  return ChoiceKey(
      std::move(name), choices, [field, values](size_t i) { *field = values[i]; },
      [field, spell] { return std::string(spell(*field)); });
}

KeySpec StringChoiceKey(std::string name, std::string* field, std::vector<std::string> choices) {
  return ChoiceKey(
      std::move(name), choices, [field, choices](size_t i) { *field = choices[i]; },
      [field] { return *field; });
}

// `auto` or an integer.
KeySpec VocabKey(std::string name, int64_t* field, bool* is_auto) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field, is_auto](const YAML::Node& value, ValueSite& site) {
    int64_t parsed = 0;
    if (value.IsScalar() && value.Scalar() == "auto") {
      *field = 0;
      *is_auto = true;
    } else if (IsPlainScalar(value) && ParseInteger(value.Scalar(), &parsed)) {
      *field = parsed;
      *is_auto = false;
    } else {
      site.Fail(value, absl::StrCat("expected an integer or auto, got ", Describe(value)));
    }
  };
  spec.write = [field, is_auto](YAML::Emitter& out) {
    out << (*is_auto ? std::string("auto") : absl::StrCat(*field));
  };
  return spec;
}

// [beta1, beta2]: a list of exactly two numbers.
KeySpec PairKey(std::string name, std::array<double, 2>* field) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field](const YAML::Node& value, ValueSite& site) {
    if (!value.IsSequence() || value.size() != 2) {
      const std::string got =
          value.IsSequence() ? absl::StrCat("a list of ", value.size()) : Describe(value);
      site.Fail(value, absl::StrCat("expected a list of two numbers, got ", got));
      return;
    }
    std::array<double, 2> parsed = *field;
    bool ok = true;
    for (size_t i = 0; i < 2; ++i) {
      const std::string suffix = absl::StrCat("[", i, "]");
      site.Record(value[i], suffix);
      ok = ReadNumber(value[i], site, &parsed[i], suffix) && ok;
    }
    if (ok) *field = parsed;
  };
  spec.write = [field](YAML::Emitter& out) {
    out << YAML::Flow << YAML::BeginSeq << FormatNumber((*field)[0]) << FormatNumber((*field)[1])
        << YAML::EndSeq;
  };
  return spec;
}

// A list of strings; an empty value is the empty list.
KeySpec StringListKey(std::string name, std::vector<std::string>* field) {
  KeySpec spec;
  spec.name = std::move(name);
  spec.read = [field](const YAML::Node& value, ValueSite& site) {
    if (value.IsNull()) {
      field->clear();
      return;
    }
    if (!value.IsSequence()) {
      site.Fail(value, absl::StrCat("expected a list of strings, got ", Describe(value)));
      return;
    }
    std::vector<std::string> parsed;
    bool ok = true;
    for (size_t i = 0; i < value.size(); ++i) {
      const std::string suffix = absl::StrCat("[", i, "]");
      site.Record(value[i], suffix);
      if (!value[i].IsScalar()) {
        site.Fail(value[i], absl::StrCat("expected a string, got ", Describe(value[i])), suffix);
        ok = false;
        continue;
      }
      parsed.push_back(value[i].Scalar());
    }
    if (ok) *field = std::move(parsed);
  };
  spec.write = [field](YAML::Emitter& out) {
    if (field->empty()) {
      out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
      return;
    }
    out << YAML::BeginSeq;
    for (const std::string& s : *field) out << YAML::DoubleQuoted << s;
    out << YAML::EndSeq;
  };
  return spec;
}

// `activation_checkpointing`: {mode, every}, or the mode alone as a scalar.
KeySpec ActivationCheckpointingSection(ActivationCheckpointingConfig* field) {
  using model::ActivationCheckpointing;
  KeySpec spec = Section(
      "activation_checkpointing",
      {
          EnumKey("mode", &field->mode,
                  {ActivationCheckpointing::kNone, ActivationCheckpointing::kFull,
                   ActivationCheckpointing::kSelective},
                  &ActivationCheckpointingName),
          IntKey("every", &field->every),
      });
  spec.scalar_child = "mode";
  return spec;
}

// Every key of a recipe, bound to `r`, in the documented order. The model section must list every
// model::ModelConfig field (keep in sync with model/config.h).
KeySpec RecipeSchema(Recipe* r) {
  model::ModelConfig& m = r->model;
  LrMultipliers& lm = r->finetune.lr_multipliers;
  return Section(
      "", {
              EnumKey("mode", &r->mode, {TrainMode::kPretrain, TrainMode::kFinetune, TrainMode::kDistill},
                      &TrainModeName),
              Section("model",
                      {
                          VocabKey("vocab_size", &m.vocab_size, &r->vocab_size_auto),
                          IntKey("hidden_size", &m.hidden_size),
                          IntKey("intermediate_size", &m.intermediate_size),
                          IntKey("num_hidden_layers", &m.num_hidden_layers),
                          IntKey("num_attention_heads", &m.num_attention_heads),
                          IntKey("num_key_value_heads", &m.num_key_value_heads),
                          IntKey("head_dim", &m.head_dim),
                          IntKey("num_local_experts", &m.num_local_experts),
                          IntKey("num_experts_per_tok", &m.num_experts_per_tok),
                          NumberKey("rms_norm_eps", &m.rms_norm_eps),
                          NumberKey("rope_theta", &m.rope_theta),
                          IntKey("max_position_embeddings", &m.max_position_embeddings),
                          BoolKey("tie_word_embeddings", &m.tie_word_embeddings),
                          NumberKey("router_aux_loss_coef", &m.router_aux_loss_coef),
                          NumberKey("initializer_range", &m.initializer_range),
                          IntKey("num_shared_experts", &m.num_shared_experts),
                          IntKey("moe_intermediate_size", &m.moe_intermediate_size),
                          IntKey("first_k_dense_replace", &m.first_k_dense_replace),
                          StringChoiceKey("scoring_func", &m.scoring_func, {"softmax", "sigmoid"}),
                          BoolKey("norm_topk_prob", &m.norm_topk_prob),
                          StringChoiceKey("balancing", &m.balancing, {"aux_loss", "bias"}),
                          NumberKey("router_bias_update_rate", &m.router_bias_update_rate),
                          NumberKey("router_z_loss_coef", &m.router_z_loss_coef),
                          NumberKey("capacity_factor", &m.capacity_factor),
                      }),
              Section("data",
                      {
                          StringKey("tokenizer", &r->data.tokenizer),
                          StringKey("shards", &r->data.shards),
                      }),
              Section("optim",
                      {
                          NumberKey("lr", &r->optim.lr),
                          PairKey("betas", &r->optim.betas),
                          NumberKey("eps", &r->optim.eps),
                          NumberKey("weight_decay", &r->optim.weight_decay),
                          NumberKey("grad_clip", &r->optim.grad_clip),
                          IntKey("max_consecutive_skips", &r->optim.max_consecutive_skips),
                      }),
              Section("schedule",
                      {
                          IntKey("warmup_steps", &r->schedule.warmup_steps),
                          EnumKey("decay", &r->schedule.decay,
                                  {DecayKind::kCosine, DecayKind::kLinear, DecayKind::kConstant},
                                  &DecayKindName),
                          NumberKey("min_lr", &r->schedule.min_lr),
                          IntKey("total_steps", &r->schedule.total_steps),
                      }),
              Section("batch",
                      {
                          IntKey("micro_batch", &r->batch.micro_batch),
                          IntKey("grad_accum", &r->batch.grad_accum),
                          IntKey("seq_len", &r->batch.seq_len),
                      }),
              Section("parallel",
                      {
                          IntKey("tp", &r->parallel.tp),
                          IntKey("ep", &r->parallel.ep),
                          EnumKey("ep_dispatch", &r->parallel.ep_dispatch,
                                  {EpDispatch::kFlat, EpDispatch::kHierarchical}, &EpDispatchName),
                          IntKey("ranks_per_node", &r->parallel.ranks_per_node),
                          IntKey("zero_stage", &r->parallel.zero_stage),
                          NumberKey("collective_timeout_s", &r->parallel.collective_timeout_s),
                      }),
              EnumKey("precision", &r->precision,
                      {Precision::kFp32, Precision::kBf16, Precision::kFp16}, &PrecisionName),
              Section("loss_scale",
                      {
                          NumberKey("initial", &r->loss_scale.initial),
                          NumberKey("growth_factor", &r->loss_scale.growth_factor),
                          NumberKey("backoff_factor", &r->loss_scale.backoff_factor),
                          IntKey("growth_interval", &r->loss_scale.growth_interval),
                          IntKey("hysteresis", &r->loss_scale.hysteresis),
                          NumberKey("min", &r->loss_scale.min),
                      }),
              ActivationCheckpointingSection(&r->activation_checkpointing),
              Section("logging",
                      {
                          IntKey("every_steps", &r->logging.every_steps),
                          StringKey("metrics_file", &r->logging.metrics_file),
                          StringKey("prometheus_file", &r->logging.prometheus_file),
                      }),
              Section("eval",
                      {
                          IntKey("every_steps", &r->eval.every_steps),
                          IntKey("batches", &r->eval.batches),
                      }),
              Section("checkpoint",
                      {
                          StringKey("dir", &r->checkpoint.dir),
                          IntKey("every_steps", &r->checkpoint.every_steps),
                          IntKey("keep", &r->checkpoint.keep),
                          BoolKey("async", &r->checkpoint.async),
                      }),
              Section("sample",
                      {
                          StringListKey("prompts", &r->sample.prompts),
                          IntKey("max_new_tokens", &r->sample.max_new_tokens),
                          NumberKey("temperature", &r->sample.temperature),
                          NumberKey("top_p", &r->sample.top_p),
                          IntKey("seed", &r->sample.seed),
                      }),
              Section("distill",
                      {
                          StringKey("teacher", &r->distill.teacher),
                          NumberKey("alpha", &r->distill.alpha),
                          NumberKey("temperature", &r->distill.temperature),
                      }),
              Section("finetune",
                      {
                          StringKey("train_file", &r->finetune.train_file),
                          StringKey("val_file", &r->finetune.val_file),
                          NumberKey("val_fraction", &r->finetune.val_fraction),
                          StringKey("prompt_field", &r->finetune.prompt_field),
                          StringKey("response_field", &r->finetune.response_field),
                          StringKey("init_from", &r->finetune.init_from),
                          BoolKey("freeze_router", &r->finetune.freeze_router),
                          BoolKey("freeze_non_expert", &r->finetune.freeze_non_expert),
                          Section("lr_multipliers",
                                  {
                                      NumberKey("experts", &lm.experts),
                                      NumberKey("shared_experts", &lm.shared_experts),
                                      NumberKey("router", &lm.router),
                                      NumberKey("attention", &lm.attention),
                                      NumberKey("embeddings", &lm.embeddings),
                                      NumberKey("norms", &lm.norms),
                                      NumberKey("dense_mlp", &lm.dense_mlp),
                                  }),
                      }),
              IntKey("seed", &r->seed),
              IntKey("threads", &r->threads),
          });
}

// ------------------------------------------------------------------------------------------------
// Reading YAML into the schema.

std::string UnknownKeyMessage(const KeySpec& section, const std::string& section_path,
                              const std::string& key) {
  const std::vector<std::string> known = section.ChildNames();
  const std::string close = ClosestName(key, known);
  if (!close.empty())
    return absl::StrCat("unknown key; did you mean ", JoinPath(section_path, close), "?");
  return absl::StrCat("unknown key; known keys", section_path.empty() ? "" : " in ", section_path,
                      ": ", absl::StrJoin(known, ", "));
}

class Reader {
 public:
  Reader(Problems* problems, Locations* locations) : problems_(problems), locations_(locations) {}

  // Reads `value` (given under `key`, which is a null node for overrides) into `spec` at `path`.
  void ReadValue(const KeySpec& spec, const YAML::Node& key, const YAML::Node& value,
                 const std::string& path, const Origin& origin) {
    ValueSite site(path, key, origin, problems_, locations_);
    if (!spec.is_section) {
      site.Record(value);
      spec.read(value, site);
      return;
    }
    site.RecordKey(value);
    if (value.IsNull()) return;  // `eval:` with nothing under it: all defaults
    if (!spec.scalar_child.empty() && value.IsScalar()) {  // the shorthand form
      ReadValue(*spec.Find(spec.scalar_child), key, value, JoinPath(path, spec.scalar_child),
                origin);
      return;
    }
    if (!value.IsMap()) {
      const std::string shorthand =
          spec.scalar_child.empty() ? "" : absl::StrCat("a ", spec.scalar_child, " value or ");
      site.Fail(value, absl::StrCat("expected ", shorthand, "a mapping of ",
                                    path.empty() ? "sections" : path, " keys, got ",
                                    Describe(value)));
      return;
    }
    std::map<std::string, YAML::Mark> seen;
    for (auto it = value.begin(); it != value.end(); ++it) {
      const YAML::Node child_key = it->first;
      const YAML::Node child_value = it->second;
      ValueSite key_site(path, child_key, origin, problems_, locations_);
      if (!child_key.IsScalar()) {
        key_site.Fail(child_key,
                      absl::StrCat("keys must be plain names, got ", Describe(child_key)));
        continue;
      }
      const std::string name = child_key.Scalar();
      const std::string child_path = JoinPath(path, name);
      auto [first, inserted] = seen.emplace(name, child_key.Mark());
      if (!inserted) {
        problems_->Add(
            key_site.Where(child_key), child_path,
            absl::StrCat("duplicate key (first given at line ", first->second.line + 1, ")"));
        continue;
      }
      const KeySpec* child = spec.Find(name);
      if (child == nullptr) {
        problems_->Add(key_site.Where(child_key), child_path, UnknownKeyMessage(spec, path, name));
        continue;
      }
      ReadValue(*child, child_key, child_value, child_path, origin);
    }
  }

  // Applies one "key.path=value" override.
  void ApplyOverride(const KeySpec& root, const std::string& text) {
    const size_t eq = text.find('=');
    const std::string path(absl::StripAsciiWhitespace(text.substr(0, eq)));
    Origin origin;
    origin.override_at = absl::StrCat("--set ", path);
    if (eq == std::string::npos || path.empty()) {
      problems_->Add(absl::StrCat("--set ", text), "",
                     "expected key.path=value (e.g. --set optim.lr=1e-3)");
      return;
    }
    const KeySpec* spec = &root;
    std::string walked;
    const std::vector<std::string> parts = absl::StrSplit(path, '.');
    for (const std::string& part : parts) {
      const KeySpec* child = spec->is_section ? spec->Find(part) : nullptr;
      if (child == nullptr) {
        const std::string what = spec->is_section
                                     ? UnknownKeyMessage(*spec, walked, part)
                                     : absl::StrCat(walked, " is a value, not a section");
        problems_->Add(origin.override_at, path, what);
        return;
      }
      walked = JoinPath(walked, part);
      spec = child;
    }
    YAML::Node value;
    try {
      value = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      problems_->Add(
          origin.override_at, path,
          absl::StrCat("cannot parse the value '", text.substr(eq + 1), "' as YAML: ", e.msg));
      return;
    }
    ReadValue(*spec, YAML::Node(), value, path, origin);
  }

 private:
  Problems* problems_;
  Locations* locations_;
};

// ------------------------------------------------------------------------------------------------
// Range, consistency and not-implemented checks.

class Validator {
 public:
  Validator(const Recipe& r, const Locations* locations, Problems* problems)
      : r_(r), locations_(locations), problems_(problems) {}

  void Run() {
    CheckModel();
    CheckData();
    CheckOptim();
    CheckSchedule();
    CheckBatch();
    CheckLossScale();
    if (r_.activation_checkpointing.every < 1)
      Fail("activation_checkpointing.every",
           absl::StrCat("must be >= 1, got ", r_.activation_checkpointing.every));
    if (r_.logging.every_steps < 1)
      Fail("logging.every_steps", absl::StrCat("must be >= 1, got ", r_.logging.every_steps));
    if (r_.eval.every_steps < 0)
      Fail("eval.every_steps",
           absl::StrCat("must be >= 0 (0 = only at the end), got ", r_.eval.every_steps));
    if (r_.eval.batches < 1)
      Fail("eval.batches", absl::StrCat("must be > 0, got ", r_.eval.batches));
    CheckCheckpoint();
    CheckParallel();
    CheckSample();
    CheckDistill();
    CheckMode();
    if (r_.threads < 0)
      Fail("threads", absl::StrCat("must be >= 0 (0 = all cores), got ", r_.threads));
  }

 private:
  void Fail(const std::string& path, const std::string& what) {
    problems_->Add(locations_ != nullptr ? locations_->Of(path) : "", path, what);
  }

  void CheckModel() {
    model::ModelConfig m = r_.model;
    if (r_.vocab_size_auto) m.vocab_size = 1;  // resolved from the tokenizer later
    const absl::Status status = m.Validate();
    if (status.ok()) return;
    // ModelConfig::Validate names the field as "model.FIELD: why".
    const std::string message(status.message());
    const size_t colon = message.find(": ");
    if (absl::StartsWith(message, "model.") && colon != std::string::npos) {
      Fail(message.substr(0, colon), message.substr(colon + 2));
    } else {
      Fail("model", message);
    }
  }

  void CheckData() {
    if (r_.data.tokenizer.empty())
      Fail("data.tokenizer", "must not be empty (path to a SentencePiece .model file)");
    if (r_.data.shards.empty() && r_.mode != TrainMode::kFinetune)
      Fail("data.shards", "must not be empty (path to a prepared shard directory)");
  }

  void CheckOptim() {
    const OptimConfig& o = r_.optim;
    if (!(o.lr > 0) || !std::isfinite(o.lr))
      Fail("optim.lr", absl::StrCat("must be > 0, got ", FormatNumber(o.lr)));
    for (int i = 0; i < 2; ++i) {
      if (!(o.betas[i] >= 0 && o.betas[i] < 1))
        Fail(absl::StrCat("optim.betas[", i, "]"),
             absl::StrCat("must be in [0, 1), got ", FormatNumber(o.betas[i])));
    }
    if (!(o.eps > 0)) Fail("optim.eps", absl::StrCat("must be > 0, got ", FormatNumber(o.eps)));
    if (!(o.weight_decay >= 0))
      Fail("optim.weight_decay", absl::StrCat("must be >= 0, got ", FormatNumber(o.weight_decay)));
    if (!(o.grad_clip >= 0))
      Fail("optim.grad_clip",
           absl::StrCat("must be >= 0 (0 = off), got ", FormatNumber(o.grad_clip)));
    if (o.max_consecutive_skips < 0)
      Fail("optim.max_consecutive_skips",
           absl::StrCat("must be >= 0 (0 = never abort), got ", o.max_consecutive_skips));
  }

  void CheckSchedule() {
    const ScheduleConfig& s = r_.schedule;
    if (s.total_steps <= 0)
      Fail("schedule.total_steps", absl::StrCat("must be > 0, got ", s.total_steps));
    if (s.warmup_steps < 0) {
      Fail("schedule.warmup_steps", absl::StrCat("must be >= 0, got ", s.warmup_steps));
    } else if (s.total_steps > 0 && s.warmup_steps > s.total_steps) {
      Fail("schedule.warmup_steps", absl::StrCat("must be <= schedule.total_steps (", s.total_steps,
                                                 "), got ", s.warmup_steps));
    }
    if (!(s.min_lr >= 0)) {
      Fail("schedule.min_lr", absl::StrCat("must be >= 0, got ", FormatNumber(s.min_lr)));
    } else if (r_.optim.lr > 0 && s.min_lr > r_.optim.lr) {
      Fail("schedule.min_lr", absl::StrCat("must be <= optim.lr (", FormatNumber(r_.optim.lr),
                                           "), got ", FormatNumber(s.min_lr)));
    }
  }

  void CheckBatch() {
    const BatchConfig& b = r_.batch;
    if (b.micro_batch <= 0)
      Fail("batch.micro_batch", absl::StrCat("must be > 0, got ", b.micro_batch));
    if (b.grad_accum <= 0)
      Fail("batch.grad_accum", absl::StrCat("must be > 0, got ", b.grad_accum));
    if (b.seq_len <= 0) {
      Fail("batch.seq_len", absl::StrCat("must be > 0, got ", b.seq_len));
    } else if (b.seq_len > r_.model.max_position_embeddings) {
      Fail("batch.seq_len", absl::StrCat("must be <= model.max_position_embeddings (",
                                         r_.model.max_position_embeddings, "), got ", b.seq_len));
    }
  }

  // World-size rules (tp * dp = world, ep | dp, micro_batch % dp) are checked at launch, when the
  // world size is known (trainer/layout.h), before any collective.
  void CheckParallel() {
    const ParallelConfig& p = r_.parallel;
    // The model-shape rules of tensor parallelism (heads, kv heads, vocab, widths % tp) are in
    // trainer/layout.cc, with the world-size rules.
    if (p.tp < 1) Fail("parallel.tp", absl::StrCat("must be >= 1, got ", p.tp));
    if (p.ep < 1) {
      Fail("parallel.ep", absl::StrCat("must be >= 1, got ", p.ep));
    } else if (r_.model.num_local_experts % p.ep != 0) {
      Fail("parallel.ep", absl::StrCat("must divide model.num_local_experts (",
                                       r_.model.num_local_experts, "), got ", p.ep));
    }
    if (p.ranks_per_node < 0)
      Fail("parallel.ranks_per_node",
           absl::StrCat("must be >= 0 (0 = from hostnames), got ", p.ranks_per_node));
    if (p.zero_stage < 0 || p.zero_stage > 3)
      Fail("parallel.zero_stage", absl::StrCat("must be 0, 1, 2 or 3, got ", p.zero_stage));
    if (!(p.collective_timeout_s >= 0) || !std::isfinite(p.collective_timeout_s))
      Fail("parallel.collective_timeout_s",
           absl::StrCat("must be >= 0 seconds (0 = off), got ", FormatNumber(p.collective_timeout_s)));
  }

  // The same rules as optim::ValidateLossScalerConfig, reported with the recipe's locations.
  void CheckLossScale() {
    const LossScaleConfig& s = r_.loss_scale;
    const bool min_ok = s.min > 0;
    if (!min_ok) Fail("loss_scale.min", absl::StrCat("must be > 0, got ", FormatNumber(s.min)));
    if (!(s.initial > 0)) {
      Fail("loss_scale.initial", absl::StrCat("must be > 0, got ", FormatNumber(s.initial)));
    } else if (min_ok && s.initial < s.min) {
      Fail("loss_scale.initial", absl::StrCat("must be >= loss_scale.min (", FormatNumber(s.min),
                                              "), got ", FormatNumber(s.initial)));
    }
    if (!(s.growth_factor > 1))
      Fail("loss_scale.growth_factor",
           absl::StrCat("must be > 1, got ", FormatNumber(s.growth_factor)));
    if (!(s.backoff_factor > 0 && s.backoff_factor < 1))
      Fail("loss_scale.backoff_factor",
           absl::StrCat("must be in (0, 1), got ", FormatNumber(s.backoff_factor)));
    if (s.growth_interval < 1)
      Fail("loss_scale.growth_interval", absl::StrCat("must be >= 1, got ", s.growth_interval));
    if (s.hysteresis < 1)
      Fail("loss_scale.hysteresis", absl::StrCat("must be >= 1, got ", s.hysteresis));
  }

  void CheckCheckpoint() {
    const CheckpointConfig& c = r_.checkpoint;
    if (c.every_steps < 0) {
      Fail("checkpoint.every_steps", absl::StrCat("must be >= 0 (0 = off), got ", c.every_steps));
    }
    if (c.every_steps > 0 && c.dir.empty()) Fail("checkpoint.dir", "must not be empty when every_steps > 0");
    if (c.keep < 0) Fail("checkpoint.keep", absl::StrCat("must be >= 0 (0 = all), got ", c.keep));
  }

  void CheckDistill() {
    const DistillConfig& d = r_.distill;
    if (!(d.alpha >= 0 && d.alpha <= 1))
      Fail("distill.alpha", absl::StrCat("must be in [0, 1], got ", FormatNumber(d.alpha)));
    if (!(d.temperature > 0 && std::isfinite(d.temperature)))
      Fail("distill.temperature",
           absl::StrCat("must be > 0 and finite, got ", FormatNumber(d.temperature)));
    if (r_.mode != TrainMode::kDistill) return;
    if (d.teacher.empty())
      Fail("distill.teacher", "must name the teacher's snapshot directory when mode is distill");
    // The vocabulary-parallel KL reductions are not implemented (the CE ones are).
    if (r_.parallel.tp > 1)
      Fail("parallel.tp", absl::StrCat("mode distill needs tp = 1 (the KL over a vocabulary split "
                                       "over tp is not implemented), got ", r_.parallel.tp));
  }

  void CheckSample() {
    const SampleConfig& s = r_.sample;
    if (s.max_new_tokens < 0) {
      Fail("sample.max_new_tokens", absl::StrCat("must be >= 0, got ", s.max_new_tokens));
    } else if (s.max_new_tokens > r_.model.max_position_embeddings) {
      Fail("sample.max_new_tokens",
           absl::StrCat("must be <= model.max_position_embeddings (",
                        r_.model.max_position_embeddings, "), got ", s.max_new_tokens));
    }
    if (!(s.temperature > 0) || !std::isfinite(s.temperature))
      Fail("sample.temperature", absl::StrCat("must be > 0, got ", FormatNumber(s.temperature)));
    if (!(s.top_p > 0 && s.top_p <= 1))
      Fail("sample.top_p", absl::StrCat("must be in (0, 1], got ", FormatNumber(s.top_p)));
  }

  void CheckMode() {
    if (r_.mode != TrainMode::kFinetune) return;
    const FinetuneConfig& f = r_.finetune;
    if (f.train_file.empty())
      Fail("finetune.train_file", "must not be empty in finetune mode (path to a JSONL file)");
    if (f.val_file.empty() && !(f.val_fraction > 0 && f.val_fraction < 1))
      Fail("finetune.val_fraction", absl::StrCat("must be in (0, 1) when finetune.val_file is empty, got ",
                                                 FormatNumber(f.val_fraction)));
    if (f.prompt_field.empty()) Fail("finetune.prompt_field", "must not be empty");
    if (f.response_field.empty()) Fail("finetune.response_field", "must not be empty");
    if (f.prompt_field == f.response_field && !f.prompt_field.empty())
      Fail("finetune.response_field", absl::StrCat("must differ from prompt_field (both \"", f.prompt_field, "\")"));
    const LrMultipliers& m = f.lr_multipliers;
    const std::pair<const char*, double> all[] = {
        {"experts", m.experts},       {"shared_experts", m.shared_experts}, {"router", m.router},
        {"attention", m.attention},   {"embeddings", m.embeddings},         {"norms", m.norms},
        {"dense_mlp", m.dense_mlp}};
    for (const auto& [name, value] : all)
      if (!(value >= 0) || !std::isfinite(value))
        Fail(absl::StrCat("finetune.lr_multipliers.", name),
             absl::StrCat("must be finite and >= 0 (0 = frozen), got ", FormatNumber(value)));
  }

  const Recipe& r_;
  const Locations* locations_;
  Problems* problems_;
};

void EmitKey(const KeySpec& spec, YAML::Emitter& out) {
  out << YAML::Key << spec.name << YAML::Value;
  if (!spec.is_section) {
    spec.write(out);
    return;
  }
  out << YAML::BeginMap;
  for (const KeySpec& child : spec.children) EmitKey(child, out);
  out << YAML::EndMap;
}

}  // namespace

std::string_view PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "unknown";
}


DType ComputeDType(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return DType::kF32;
    case Precision::kBf16:
      return DType::kBF16;
    case Precision::kFp16:
      return DType::kF16;
  }
  return DType::kF32;
}

std::string_view ActivationCheckpointingName(model::ActivationCheckpointing mode) {
  switch (mode) {
    case model::ActivationCheckpointing::kNone:
      return "none";
    case model::ActivationCheckpointing::kFull:
      return "full";
    case model::ActivationCheckpointing::kSelective:
      return "selective";
  }
  return "unknown";
}

model::ModelOptions ModelOptionsFromRecipe(const Recipe& recipe) {
  model::ModelOptions options;
  options.compute_dtype = ComputeDType(recipe.precision);
  options.checkpointing = recipe.activation_checkpointing.mode;
  options.checkpoint_every = recipe.activation_checkpointing.every;
  return options;
}

optim::LossScalerConfig LossScalerConfigFromRecipe(const Recipe& recipe) {
  const LossScaleConfig& s = recipe.loss_scale;
  optim::LossScalerConfig c;
  c.initial_scale = s.initial;
  c.growth_factor = s.growth_factor;
  c.backoff_factor = s.backoff_factor;
  c.growth_interval = s.growth_interval;
  c.hysteresis = s.hysteresis;
  c.min_scale = s.min;
  return c;
}

std::string_view TrainModeName(TrainMode mode) {
  switch (mode) {
    case TrainMode::kPretrain:
      return "pretrain";
    case TrainMode::kFinetune:
      return "finetune";
    case TrainMode::kDistill:
      return "distill";
  }
  return "unknown";
}

std::string_view EpDispatchName(EpDispatch mode) {
  return mode == EpDispatch::kFlat ? "flat" : "hierarchical";
}

model::ModelConfig DefaultRecipeModel() {
  model::ModelConfig config;
  config.vocab_size = 0;  // auto: taken from the tokenizer
  return config;
}

absl::StatusOr<Recipe> LoadRecipe(const std::string& path,
                                  const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the recipe file"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat(path, ": cannot read the recipe file"));
  return ParseRecipe(text.str(), path, overrides);
}

absl::StatusOr<Recipe> ParseRecipe(const std::string& yaml_text, const std::string& display_name,
                                   const std::vector<std::string>& overrides) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(MarkText(display_name, e.mark), ": YAML syntax error: ", e.msg));
  }
  if (documents.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(MarkText(display_name, documents[1].Mark()),
                     ": a recipe is one YAML document, but this file has ", documents.size(),
                     " (remove '---')"));
  }
  const YAML::Node root = documents.empty() ? YAML::Node() : documents[0];

  Recipe recipe;
  const KeySpec schema = RecipeSchema(&recipe);
  Problems problems;
  Locations locations;
  Reader reader(&problems, &locations);
  Origin file_origin;
  file_origin.file = display_name;
  reader.ReadValue(schema, YAML::Node(), root, "", file_origin);
  for (const std::string& override_text : overrides) reader.ApplyOverride(schema, override_text);

  for (const char* required : {"data.tokenizer", "data.shards"}) {
    if (recipe.mode != TrainMode::kPretrain && std::string_view(required) == "data.shards") continue;
    if (!locations.Has(required))
      problems.Add(locations.Of(required), required, "missing required key");
  }
  if (!problems.empty()) return problems.ToStatus();

  Validator(recipe, &locations, &problems).Run();
  if (!problems.empty()) return problems.ToStatus();
  return recipe;
}

absl::Status ValidateRecipe(const Recipe& recipe) {
  Problems problems;
  Validator(recipe, nullptr, &problems).Run();
  return problems.ToStatus();
}

std::string RecipeToYaml(const Recipe& recipe) {
  Recipe copy = recipe;
  const KeySpec schema = RecipeSchema(&copy);
  YAML::Emitter out;
  out << YAML::Comment("moetrain recipe (fully resolved; see docs/recipes.md)") << YAML::Newline;
  out << YAML::BeginMap;
  for (const KeySpec& section : schema.children) EmitKey(section, out);
  out << YAML::EndMap;
  return absl::StrCat(out.c_str(), "\n");
}

absl::Status ResolveVocabSize(int64_t tokenizer_vocab_size, Recipe* recipe) {
  if (tokenizer_vocab_size <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer vocabulary size must be > 0, got ", tokenizer_vocab_size));
  const int64_t tp = recipe->parallel.tp;
  if (recipe->vocab_size_auto) {
    if (tp > 1 && tokenizer_vocab_size % tp != 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "model.vocab_size: auto gives the tokenizer's ", tokenizer_vocab_size,
          " ids, which do not split over parallel.tp = ", tp,
          "; set model.vocab_size to a multiple of ", tp, " (>= ", tokenizer_vocab_size,
          ", the extra ids are padding)"));
    recipe->model.vocab_size = tokenizer_vocab_size;
    recipe->vocab_size_auto = false;
    return absl::OkStatus();
  }
  if (recipe->model.vocab_size < tokenizer_vocab_size)
    return absl::InvalidArgumentError(absl::StrCat(
        "model.vocab_size: ", recipe->model.vocab_size, " is smaller than the tokenizer's ",
        tokenizer_vocab_size, " ids (use vocab_size: auto)"));
  return absl::OkStatus();
}

}  // namespace moetrain::trainer

#include "trainer/finetune.h"

#include "absl/strings/str_cat.h"

namespace moetrain::trainer {

double RoleLrMultiplier(const Recipe& recipe, model::ParamRole role) {
  if (recipe.mode != TrainMode::kFinetune) return 1.0;
  const FinetuneConfig& f = recipe.finetune;
  if (f.freeze_non_expert && !model::IsExpertRole(role)) return 0.0;
  if (f.freeze_router && role == model::ParamRole::kRouter) return 0.0;
  const LrMultipliers& m = f.lr_multipliers;
  switch (role) {
    case model::ParamRole::kExperts:
      return m.experts;
    case model::ParamRole::kSharedExperts:
      return m.shared_experts;
    case model::ParamRole::kRouter:
      return m.router;
    case model::ParamRole::kAttention:
      return m.attention;
    case model::ParamRole::kEmbeddings:
      return m.embeddings;
    case model::ParamRole::kNorms:
      return m.norms;
    case model::ParamRole::kDenseMlp:
      return m.dense_mlp;
  }
  return 1.0;
}

std::function<double(const model::ParamSpec&)> LrMultiplierFromRecipe(const Recipe& recipe) {
  if (recipe.mode != TrainMode::kFinetune) return {};
  return [recipe](const model::ParamSpec& spec) {
    return RoleLrMultiplier(recipe, model::RoleOf(spec));
  };
}

bool RouterFrozen(const Recipe& recipe) {
  return RoleLrMultiplier(recipe, model::ParamRole::kRouter) == 0.0;
}

std::string InitFromDir(const Recipe& recipe, const std::string& cli_init_from) {
  if (!cli_init_from.empty()) return cli_init_from;
  return recipe.mode == TrainMode::kFinetune ? recipe.finetune.init_from : std::string();
}

std::string DescribeLrMultipliers(const Recipe& recipe) {
  std::string out;
  for (model::ParamRole role : model::kAllParamRoles) {
    const double m = RoleLrMultiplier(recipe, role);
    absl::StrAppend(&out, out.empty() ? "" : ", ", std::string(model::ParamRoleName(role)), " ", m,
                    m == 0 ? " (frozen)" : "");
  }
  return out;
}

}  // namespace moetrain::trainer

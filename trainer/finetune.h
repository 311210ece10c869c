// Fine-tuning options of a recipe turned into what the optimizer and the loop use
// (docs/finetune.md). In pretrain mode every tensor trains at the full rate.
#pragma once

#include <functional>
#include <string>

#include "model/param_role.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {

// The learning-rate multiplier of a parameter role: finetune.lr_multipliers.<role>, forced to 0 for
// the router when freeze_router and for every non-expert role when freeze_non_expert. 1 in
// pretrain mode.
double RoleLrMultiplier(const Recipe& recipe, model::ParamRole role);

// optim::ZeroOptions::lr_multiplier for the recipe: RoleLrMultiplier(RoleOf(spec)); empty (all 1)
// in pretrain mode.
std::function<double(const model::ParamSpec&)> LrMultiplierFromRecipe(const Recipe& recipe);

// The router is frozen (multiplier 0): the aux-loss-free bias must not move either.
bool RouterFrozen(const Recipe& recipe);

// The snapshot to take initial weights from: `cli_init_from` when set, else finetune.init_from in
// finetune mode, else "".
std::string InitFromDir(const Recipe& recipe, const std::string& cli_init_from);

// One log line: the multiplier of each role, e.g. "experts 1, router 0 (frozen), ...".
std::string DescribeLrMultipliers(const Recipe& recipe);

}  // namespace moetrain::trainer

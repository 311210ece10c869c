// The parallel layout of a run: the recipe's parallel section checked against the world size,
// before any collective. dp = world / tp; ep must divide dp; the global micro-batch must split
// evenly over dp. Errors name the recipe keys and the world size.
#pragma once

#include "parallel/rank_grid.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {

absl::StatusOr<parallel::RankGrid> ResolveLayout(const Recipe& recipe, int world_size);

}  // namespace moetrain::trainer

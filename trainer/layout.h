// The parallel layout of a run: the recipe's parallel section checked against the world size,
// before any collective. dp = world / tp; ep must divide dp; the global micro-batch must split
// evenly over dp; with tp > 1, tp must divide the attention heads, KV heads, vocab_size (unless
// auto: checked when the tokenizer is known, see ResolveVocabSize), the dense MLP and expert widths.
// Errors name the recipe keys and the world size.
#pragma once

#include "parallel/rank_grid.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {

absl::StatusOr<parallel::RankGrid> ResolveLayout(const Recipe& recipe, int world_size);

}  // namespace moetrain::trainer

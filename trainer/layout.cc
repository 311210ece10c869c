#include "trainer/layout.h"

#include "absl/strings/str_cat.h"

namespace moetrain::trainer {

absl::StatusOr<parallel::RankGrid> ResolveLayout(const Recipe& recipe, int world_size) {
  const int64_t tp = recipe.parallel.tp, ep = recipe.parallel.ep;
  if (world_size % tp != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "parallel.tp: ", tp, " does not divide the world size ", world_size));
  const int64_t dp = world_size / tp;
  if (dp % ep != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "parallel.ep: ", ep, " does not divide the data-parallel size dp = world ", world_size,
        " / tp ", tp, " = ", dp));
  if (recipe.batch.micro_batch % dp != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "batch.micro_batch: the global micro-batch ", recipe.batch.micro_batch,
        " does not split over dp = ", dp, " ranks (world ", world_size, ")"));
  if (recipe.model.num_local_experts % ep != 0)
    return absl::InvalidArgumentError(absl::StrCat("parallel.ep: ", ep,
                                                   " does not divide model.num_local_experts ",
                                                   recipe.model.num_local_experts));
  return parallel::RankGrid::Create(world_size, static_cast<int>(tp), static_cast<int>(ep));
}

}  // namespace moetrain::trainer

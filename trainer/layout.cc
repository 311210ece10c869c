#include "trainer/layout.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

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
  if (tp > 1) {  // Megatron-style tensor parallelism splits heads, widths and the vocabulary
    const model::ModelConfig& m = recipe.model;
    auto need = [tp](const char* key, int64_t value, const char* what) -> absl::Status {
      if (value % tp == 0) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat("parallel.tp: ", tp, " does not divide ", key,
                                                     " (", value, ")", what));
    };
    RETURN_IF_ERROR(need("model.num_attention_heads", m.num_attention_heads, ""));
    RETURN_IF_ERROR(need("model.num_key_value_heads", m.num_key_value_heads, ""));
    if (!recipe.vocab_size_auto)
      RETURN_IF_ERROR(need("model.vocab_size", m.vocab_size,
                           "; pad it: set model.vocab_size to a multiple of parallel.tp"));
    if (m.NumMoeLayers() < m.num_hidden_layers)
      RETURN_IF_ERROR(need("model.intermediate_size", m.intermediate_size, " (dense MLP width)"));
    if (m.NumMoeLayers() > 0) {
      RETURN_IF_ERROR(need(m.moe_intermediate_size > 0 ? "model.moe_intermediate_size"
                                                       : "model.intermediate_size",
                           m.ExpertWidth(), " (routed expert width)"));
      RETURN_IF_ERROR(need("the shared-expert width model.num_shared_experts x expert width",
                           m.SharedWidth(), ""));
    }
  }
  return parallel::RankGrid::Create(world_size, static_cast<int>(tp), static_cast<int>(ep));
}

}  // namespace moetrain::trainer

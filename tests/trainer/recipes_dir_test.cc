// Every recipe in recipes/ parses and validates (LoadRecipe checks types, ranges and consistency;
// data paths are only required to be non-empty, their files are opened at training time), and a
// recipe that names a parallel layout resolves against the world size its comments plan for.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "trainer/layout.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> RecipeFiles() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(fs::path(MOETRAIN_SOURCE_DIR) / "recipes"))
    if (e.path().extension() == ".yaml") files.push_back(e.path().string());
  return files;
}

TEST(RecipesDirTest, EveryRecipeValidates) {
  const std::vector<std::string> files = RecipeFiles();
  ASSERT_GE(files.size(), 3u) << "tiny, bench-small and the production example at least";
  for (const std::string& f : files) {
    absl::StatusOr<Recipe> r = LoadRecipe(f);
    EXPECT_TRUE(r.ok()) << f << ": " << r.status();
    // The fully resolved form parses back to the same recipe text.
    if (r.ok()) {
      absl::StatusOr<Recipe> again = ParseRecipe(RecipeToYaml(*r), f + " (resolved)");
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(RecipeToYaml(*again), RecipeToYaml(*r)) << f;
    }
  }
}

TEST(RecipesDirTest, ProductionExampleFits64Ranks) {
  absl::StatusOr<Recipe> r =
      LoadRecipe(std::string(MOETRAIN_SOURCE_DIR) + "/recipes/production-deepseek-v2-lite.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<parallel::RankGrid> grid = ResolveLayout(*r, 64);
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->world(), 64);
  EXPECT_EQ(grid->dp() * grid->tp(), 64);
  EXPECT_EQ(r->model.num_local_experts % grid->ep(), 0);
  EXPECT_EQ(r->batch.micro_batch % grid->dp(), 0);
  EXPECT_EQ(r->model.NumMoeLayers(), r->model.num_hidden_layers - 1);  // first layer dense
  // And it refuses a world it was not planned for.
  EXPECT_FALSE(ResolveLayout(*r, 12).ok());
}

}  // namespace
}  // namespace moetrain::trainer

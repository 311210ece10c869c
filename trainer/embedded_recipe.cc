#include "trainer/embedded_recipe.h"

// Generated from recipes/tiny.yaml by trainer/CMakeLists.txt; defines kTinyRecipeText.
#include "trainer/tiny_recipe_text.h"

namespace moetrain::trainer {

std::string_view EmbeddedTinyRecipe() {
  return std::string_view(kTinyRecipeText, sizeof(kTinyRecipeText) - 1);
}

std::string_view EmbeddedTinyRecipeName() { return "<embedded>/recipes/tiny.yaml"; }

}  // namespace moetrain::trainer

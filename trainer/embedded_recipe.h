// The recipes compiled into the binary.
//
// recipes/tiny.yaml is embedded at build time (trainer/CMakeLists.txt turns it into a raw string in
// a generated header; editing the file re-runs that step), so `moetrain train` works with no recipe
// file.
#pragma once

#include <string_view>

namespace moetrain::trainer {

// The text of recipes/tiny.yaml as it was at build time. Valid for the life of the program.
std::string_view EmbeddedTinyRecipe();

// The name to pass to ParseRecipe as display_name for EmbeddedTinyRecipe(), so errors read
// "<embedded>/recipes/tiny.yaml:LINE:COL: ...".
std::string_view EmbeddedTinyRecipeName();

}  // namespace moetrain::trainer

// Includes the SentencePiece headers in a translation unit that also uses Abseil.
//
// Why: sentencepiece_processor.h (0.1.97) declares `namespace absl { using std::string_view; }`,
// which collides with Debian's Abseil, whose absl::string_view is its own class
// (ABSL_OPTION_USE_STD_STRING_VIEW 0). We rename SentencePiece's `absl` to a private namespace
// while its headers are read. Its alias is still std::string_view, so the declarations (and their
// mangled names) match the ones libsentencepiece was built with: pass std::string_view.
// Include this header only from data/*.cc files, never from a header.
#pragma once

// Everything SentencePiece's headers include, first, so the rename cannot touch them.
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#define absl mt_sentencepiece_absl
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#undef absl

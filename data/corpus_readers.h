// Per-format document readers behind ForEachDocument (data/corpus.h). Internal to data/.
//
// Each reads one file, calls `fn` for every non-empty document (see corpus.h for what a document
// is in each format) and adds the number of documents passed on to *num_documents.
// Errors: those of LineReader plus the format's own, each prefixed "<path>:<line>: ".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "data/corpus.h"

namespace moetrain::data {

// True if `s` holds a character other than ASCII whitespace.
bool HasNonSpace(std::string_view s);

absl::Status ReadTextDocuments(const std::string& path, const std::string& separator,
                               const DocumentFn& fn, int64_t* num_documents);
absl::Status ReadJsonlDocuments(const std::string& path, const std::string& field,
                                const DocumentFn& fn, int64_t* num_documents);
absl::Status ReadCsvDocuments(const std::string& path, const std::string& column,
                              const DocumentFn& fn, int64_t* num_documents);

}  // namespace moetrain::data

// Corpus readers: turn text files (.txt, .jsonl, .csv) into a stream of documents.
//
// Formats (docs/data.md has examples):
//   txt    Documents are runs of lines ended by a separator line. With the default separator "%",
//          a line holding exactly "%" ends a document: the format of the Debian `fortunes` files
//          (/usr/share/games/fortunes). With an empty separator, documents are paragraphs: runs of
//          lines ended by a blank (whitespace-only) line. A document's text is its lines joined
//          with "\n" (no trailing newline).
//   jsonl  One JSON object per line; the document is the string field `jsonl_field` ("text").
//          Blank lines are skipped.
//   csv    RFC 4180: a header row, then one record per row; the document is column `csv_column`
//          ("text"). Quoted fields may hold commas, doubled quotes ("") and newlines. Every record
//          must have as many fields as the header. A quote inside an unquoted field is taken
//          literally (as Python's csv module does). Blank rows are skipped.
// Every file must be valid UTF-8. "\r\n" line ends read as "\n"; a leading UTF-8 byte-order mark
// is dropped. Documents holding only whitespace are skipped; any other text is passed on exactly
// (no normalisation, no trimming).
//
// Inputs may be files or directories. A directory stands for every regular file below it
// (recursively, following file symlinks), sorted by path, skipping hidden names (".*") and "*.dat"
// (the fortune index files); files reached twice (e.g. fortunes' "*.u8" symlinks) are read once.
//
// Errors name the file, and the line where one is involved:
//   NotFound            a missing input path
//   FailedPrecondition  an unreadable file, a directory without corpus files, an empty corpus
//                       (no non-empty document in any input)
//   InvalidArgument     invalid UTF-8 ("f.txt:3: invalid UTF-8 byte 0xff at byte offset 17
//                       (column 5)"), a malformed JSON line, a missing or non-string JSON field,
//                       a missing CSV column, a ragged CSV record, an unterminated quoted field
// Thread-safety: all functions are reentrant; callbacks run on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace moetrain::data {

enum class CorpusFormat {
  kAuto,  // from each file's extension: .jsonl/.ndjson -> kJsonl, .csv -> kCsv, else kText
  kText,
  kJsonl,
  kCsv,
};

// "auto", "txt" (or "text"), "jsonl", "csv". InvalidArgument for anything else.
absl::StatusOr<CorpusFormat> ParseCorpusFormat(std::string_view name);
// "auto", "txt", "jsonl", "csv".
const char* CorpusFormatName(CorpusFormat format);
// The format used for `path`: `format` unless it is kAuto, else inferred from the extension.
CorpusFormat ResolveCorpusFormat(const std::string& path, CorpusFormat format);

struct CorpusOptions {
  CorpusFormat format = CorpusFormat::kAuto;  // forced format for every file, or kAuto
  std::string txt_separator = "%";            // txt: separator line; "" = paragraph mode
  std::string jsonl_field = "text";           // jsonl: the string field holding the document
  std::string csv_column = "text";            // csv: the header name of the document column
};

// The files `inputs` stand for, in reading order (see the header comment for directories).
// Errors: NotFound (missing path), FailedPrecondition (neither a regular file nor a directory, or
// a directory holding no corpus file), InvalidArgument (no inputs).
absl::StatusOr<std::vector<std::string>> ExpandCorpusInputs(const std::vector<std::string>& inputs);

// Called once per non-empty document. `doc` is valid only during the call. A non-OK return stops
// the iteration and is returned unchanged by ForEachDocument.
using DocumentFn = std::function<absl::Status(std::string_view doc)>;

// Streams every non-empty document of `inputs` in order (files in ExpandCorpusInputs order,
// documents in file order); memory use is bounded by the largest document, not the corpus.
// Errors: as listed in the header comment; validation errors can arrive after some documents were
// already passed to `fn`. FailedPrecondition "empty corpus" if no document was found.
absl::Status ForEachDocument(const std::vector<std::string>& inputs, const CorpusOptions& options,
                             const DocumentFn& fn);

struct CorpusStats {
  int64_t num_files = 0;
  int64_t num_documents = 0;
  int64_t num_bytes = 0;  // sum of document sizes
};

// A full validating pass over the corpus that only counts (the pre-pass behind progress/ETA
// lines). Same errors as ForEachDocument.
absl::StatusOr<CorpusStats> CountDocuments(const std::vector<std::string>& inputs,
                                           const CorpusOptions& options);

}  // namespace moetrain::data

#include "data/corpus_readers.h"

#include <vector>

#include "absl/strings/str_join.h"
#include "data/line_reader.h"
#include "nlohmann/json.hpp"

namespace moetrain::data {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Passes `doc` to fn when it is non-empty and counts it.
absl::Status Emit(std::string_view doc, const DocumentFn& fn, int64_t* num_documents) {
  if (!HasNonSpace(doc)) return absl::OkStatus();
  ++*num_documents;
  return fn(doc);
}

const char* JsonTypeName(const nlohmann::json& j) { return j.type_name(); }

}  // namespace

bool HasNonSpace(std::string_view s) {
  for (char c : s) {
    if (!IsSpace(c)) return true;
  }
  return false;
}

absl::Status ReadTextDocuments(const std::string& path, const std::string& separator,
                               const DocumentFn& fn, int64_t* num_documents) {
  ASSIGN_OR_RETURN(LineReader reader, LineReader::Open(path));
  const bool paragraphs = separator.empty();
  std::string doc;
  bool has_lines = false;  // doc holds at least one line (it may be empty)
  std::string_view line;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader.Next(&line));
    if (!more) break;
    const bool ends_doc = paragraphs ? !HasNonSpace(line) : line == separator;
    if (ends_doc) {
      RETURN_IF_ERROR(Emit(doc, fn, num_documents));
      doc.clear();
      has_lines = false;
      continue;
    }
    if (has_lines) doc.push_back('\n');
    doc.append(line);
    has_lines = true;
  }
  return Emit(doc, fn, num_documents);
}

absl::Status ReadJsonlDocuments(const std::string& path, const std::string& field,
                                const DocumentFn& fn, int64_t* num_documents) {
  ASSIGN_OR_RETURN(LineReader reader, LineReader::Open(path));
  std::string_view line;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader.Next(&line));
    if (!more) break;
    if (!HasNonSpace(line)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line.begin(), line.end());
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(reader.Where(), "malformed JSON: ", e.what()));
    }
    if (!j.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(reader.Where(), "expected a JSON object per line, got a ", JsonTypeName(j)));
    }
    const auto it = j.find(field);
    if (it == j.end()) {
      std::vector<std::string> keys;
      for (const auto& kv : j.items()) keys.push_back(kv.key());
      return absl::InvalidArgumentError(absl::StrCat(reader.Where(), "no field \"", field,
                                                     "\" (keys: ", absl::StrJoin(keys, ", "), ")"));
    }
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(reader.Where(), "field \"", field, "\" is a ",
                                                     JsonTypeName(*it), ", expected a string"));
    }
    RETURN_IF_ERROR(Emit(it->get_ref<const std::string&>(), fn, num_documents));
  }
  return absl::OkStatus();
}

namespace {

// Incremental RFC 4180 record parser fed one physical line at a time.
class CsvRecordParser {
 public:
  // Consumes a line. Returns true when a record is complete (fields() holds it), false when the
  // record continues on the next line (an open quoted field). InvalidArgument on a stray
  // character after a closing quote.
  absl::StatusOr<bool> Feed(std::string_view line, const std::string& where) {
    if (!in_record_) {
      fields_.clear();
      field_.clear();
      quoted_ = false;
      after_quote_ = false;
      in_record_ = true;
    }
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (in_quotes_) {
        if (c != '"') {
          field_.push_back(c);
        } else if (i + 1 < line.size() && line[i + 1] == '"') {
          field_.push_back('"');
          ++i;
        } else {
          in_quotes_ = false;
          after_quote_ = true;
        }
      } else if (c == ',') {
        fields_.push_back(std::move(field_));
        field_.clear();
        quoted_ = false;
        after_quote_ = false;
      } else if (after_quote_) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "unexpected character '", std::string(1, c),
                         "' after the closing quote of field ", fields_.size() + 1));
      } else if (c == '"' && field_.empty() && !quoted_) {
        in_quotes_ = true;
        quoted_ = true;
      } else {
        field_.push_back(c);
      }
    }
    if (in_quotes_) {
      field_.push_back('\n');
      return false;
    }
    fields_.push_back(std::move(field_));
    field_.clear();
    in_record_ = false;
    return true;
  }

  bool in_quotes() const { return in_quotes_; }
  const std::vector<std::string>& fields() const { return fields_; }

 private:
  std::vector<std::string> fields_;
  std::string field_;
  bool in_record_ = false;
  bool in_quotes_ = false;
  bool quoted_ = false;       // the current field started with a quote
  bool after_quote_ = false;  // the current field's closing quote was seen
};

}  // namespace

absl::Status ReadCsvDocuments(const std::string& path, const std::string& column,
                              const DocumentFn& fn, int64_t* num_documents) {
  ASSIGN_OR_RETURN(LineReader reader, LineReader::Open(path));
  CsvRecordParser parser;
  std::vector<std::string> header;
  size_t col = 0;
  int64_t record_line = 0;  // line where the current record started
  std::string_view line;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader.Next(&line));
    if (!more) break;
    if (!parser.in_quotes()) {
      if (line.empty()) continue;  // blank row
      record_line = reader.line_number();
    }
    const std::string where = absl::StrCat(path, ":", record_line, ": ");
    ASSIGN_OR_RETURN(const bool complete,
                     parser.Feed(line, absl::StrCat(path, ":", reader.line_number(), ": ")));
    if (!complete) continue;
    const std::vector<std::string>& fields = parser.fields();
    if (header.empty()) {
      header = fields;
      size_t i = 0;
      while (i < header.size() && header[i] != column) ++i;
      if (i == header.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "no column \"", column,
                         "\" in the header (columns: ", absl::StrJoin(header, ", "), ")"));
      }
      col = i;
      continue;
    }
    if (fields.size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "record has ", fields.size(),
                                                     " fields, the header has ", header.size()));
    }
    RETURN_IF_ERROR(Emit(fields[col], fn, num_documents));
  }
  if (parser.in_quotes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":", record_line, ": unterminated quoted field (the file ends inside quotes)"));
  }
  if (header.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no header row (expected one naming column \"", column, "\")"));
  }
  return absl::OkStatus();
}

}  // namespace moetrain::data

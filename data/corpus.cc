#include "data/corpus.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "data/corpus_readers.h"

namespace moetrain::data {
namespace {
namespace fs = std::filesystem;

bool SkippedName(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.empty() || name[0] == '.' || absl::EndsWith(name, ".dat");
}

// Regular files below `dir`, skipping hidden entries (and hidden subtrees) and *.dat.
absl::Status ListDirectory(const std::string& dir, std::vector<std::string>* out) {
  std::error_code ec;
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": cannot list directory: ", ec.message()));
  }
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": cannot list directory: ", ec.message()));
    }
    const fs::path& p = it->path();
    if (SkippedName(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(p.string());
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": cannot list directory: ", ec.message()));
  }
  if (files.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, ": directory holds no corpus files (hidden files and *.dat are skipped)"));
  }
  std::sort(files.begin(), files.end());
  out->insert(out->end(), files.begin(), files.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CorpusFormat> ParseCorpusFormat(std::string_view name) {
  const std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "auto") return CorpusFormat::kAuto;
  if (n == "txt" || n == "text") return CorpusFormat::kText;
  if (n == "jsonl") return CorpusFormat::kJsonl;
  if (n == "csv") return CorpusFormat::kCsv;
  return absl::InvalidArgumentError(absl::StrCat("unknown corpus format \"", std::string(name),
                                                 "\" (expected auto, txt, jsonl or csv)"));
}

const char* CorpusFormatName(CorpusFormat format) {
  switch (format) {
    case CorpusFormat::kAuto:
      return "auto";
    case CorpusFormat::kText:
      return "txt";
    case CorpusFormat::kJsonl:
      return "jsonl";
    case CorpusFormat::kCsv:
      return "csv";
  }
  return "?";
}

CorpusFormat ResolveCorpusFormat(const std::string& path, CorpusFormat format) {
  if (format != CorpusFormat::kAuto) return format;
  const std::string ext = absl::AsciiStrToLower(fs::path(path).extension().string());
  if (ext == ".jsonl" || ext == ".ndjson") return CorpusFormat::kJsonl;
  if (ext == ".csv") return CorpusFormat::kCsv;
  return CorpusFormat::kText;
}

absl::StatusOr<std::vector<std::string>> ExpandCorpusInputs(
    const std::vector<std::string>& inputs) {
  if (inputs.empty()) return absl::InvalidArgumentError("no corpus inputs given");
  std::vector<std::string> listed;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(in, ec);
    if (!fs::exists(st)) {
      return absl::NotFoundError(absl::StrCat(in, ": no such file or directory"));
    }
    if (fs::is_directory(st)) {
      RETURN_IF_ERROR(ListDirectory(in, &listed));
    } else if (fs::is_regular_file(st)) {
      listed.push_back(in);
    } else {
      return absl::FailedPreconditionError(absl::StrCat(in, ": not a regular file or directory"));
    }
  }
  // Read each file once, in first-seen order.
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (const std::string& f : listed) {
    std::error_code ec;
    fs::path canon = fs::canonical(f, ec);
    const std::string key = ec ? f : canon.string();
    if (seen.insert(key).second) files.push_back(f);
  }
  return files;
}

absl::Status ForEachDocument(const std::vector<std::string>& inputs, const CorpusOptions& options,
                             const DocumentFn& fn) {
  ASSIGN_OR_RETURN(const std::vector<std::string> files, ExpandCorpusInputs(inputs));
  int64_t num_documents = 0;
  for (const std::string& file : files) {
    switch (ResolveCorpusFormat(file, options.format)) {
      case CorpusFormat::kAuto:  // unreachable: resolved above
      case CorpusFormat::kText:
        RETURN_IF_ERROR(ReadTextDocuments(file, options.txt_separator, fn, &num_documents));
        break;
      case CorpusFormat::kJsonl:
        RETURN_IF_ERROR(ReadJsonlDocuments(file, options.jsonl_field, fn, &num_documents));
        break;
      case CorpusFormat::kCsv:
        RETURN_IF_ERROR(ReadCsvDocuments(file, options.csv_column, fn, &num_documents));
        break;
    }
  }
  if (num_documents == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("empty corpus: no non-empty document in ", absl::StrJoin(inputs, ", "),
                     files.size() == 1 ? "" : absl::StrCat(" (", files.size(), " files)")));
  }
  return absl::OkStatus();
}

absl::StatusOr<CorpusStats> CountDocuments(const std::vector<std::string>& inputs,
                                           const CorpusOptions& options) {
  CorpusStats stats;
  ASSIGN_OR_RETURN(const std::vector<std::string> files, ExpandCorpusInputs(inputs));
  stats.num_files = static_cast<int64_t>(files.size());
  RETURN_IF_ERROR(ForEachDocument(inputs, options, [&](std::string_view doc) {
    ++stats.num_documents;
    stats.num_bytes += static_cast<int64_t>(doc.size());
    return absl::OkStatus();
  }));
  return stats;
}

}  // namespace moetrain::data

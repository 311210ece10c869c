// Helpers for the data/ tests: scratch directories, small files, Status matchers.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moetrain::data::testing {

// A fresh directory under ::testing::TempDir(), removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string templ = ::testing::TempDir() + "mt_data_XXXXXX";
    char* p = ::mkdtemp(templ.data());
    EXPECT_NE(p, nullptr) << "mkdtemp " << templ;
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& contents) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << contents;
  ASSERT_TRUE(out.good()) << "writing " << path;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sorted names of the entries directly inside `dir`.
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// `num_docs` documents of 1-3 lines of lowercase words (a ~30-character alphabet, so 256 byte
// pieces + 3 specials + the characters fit in a SentencePiece vocabulary of 300).
inline std::vector<std::string> GeneratedDocuments(int num_docs, uint64_t seed) {
  static const std::vector<std::string> kWords = {
      "the",    "quick", "brown", "fox",   "jumps", "over", "lazy",   "dog",   "and",     "a",
      "cat",    "sat",   "on",    "mat",   "with",  "hat",  "in",     "rain",  "moe",     "expert",
      "router", "token", "train", "model", "layer", "gate", "sparse", "dense", "mixture", "of"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> docs;
  for (int d = 0; d < num_docs; ++d) {
    std::string doc;
    const int lines = 1 + static_cast<int>(rng() % 3);
    for (int l = 0; l < lines; ++l) {
      if (l > 0) doc += '\n';
      const int words = 3 + static_cast<int>(rng() % 8);
      for (int w = 0; w < words; ++w) {
        if (w > 0) doc += ' ';
        doc += kWords[rng() % kWords.size()];
      }
      if (rng() % 4 == 0) doc += '.';
    }
    docs.push_back(doc);
  }
  return docs;
}

// Documents in the fortunes format: each followed by a "%" line.
inline std::string AsFortunes(const std::vector<std::string>& docs) {
  std::string out;
  for (const std::string& d : docs) out += d + "\n%\n";
  return out;
}

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

// StatusIs(code, substring matcher on the message).
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code && ::testing::Matches(message_matcher)(std::string(s.message()));
}

}  // namespace moetrain::data::testing

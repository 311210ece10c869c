// Rate-limited progress lines for long data jobs (tokenizer training, shard preparation).
//
//   Progress p("prepare", total_documents);
//   for (...) p.Update(done, tokens);     // prints at most once per interval
//   p.Finish(done, tokens);               // always prints the final line
//
// Lines go through MT_LOG(INFO), e.g.
//   "prepare: 1200/5000 documents (24.0%), 850 docs/s, 1.21M tokens/s, ETA 4.5s".
// Thread-safety: none; use from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moetrain::data {

class Progress {
 public:
  // total <= 0 means unknown (no percentage or ETA). interval_seconds <= 0 prints on every Update.
  Progress(std::string label, int64_t total, double interval_seconds = 5.0);

  // done: documents finished so far; tokens: tokens produced so far, or < 0 to omit the token rate.
  void Update(int64_t done, int64_t tokens = -1);
  void Finish(int64_t done, int64_t tokens = -1);

 private:
  void Print(int64_t done, int64_t tokens, bool final);
  using Clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_;
  double interval_s_;
  Clock::time_point start_;
  Clock::time_point last_print_;
};

// "1.21M", "850", "3.4k" (three significant digits).
std::string HumanCount(double v);
// "4.5s", "3m12s", "2h05m".
std::string HumanSeconds(double s);

}  // namespace moetrain::data

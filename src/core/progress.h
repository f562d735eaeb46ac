// A tqdm-style progress line on stderr, as diffusers and accelerate print it:
//   Steps:  10%|##        | 103/1000 [05:03<44:00, 2.94s/it, lr=0.0001, step_loss=0.227]
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sdtune {

class ProgressBar {
 public:
  // `initial` units were done before this bar started (a resumed run); rates count only the new ones.
  ProgressBar(std::string label, int64_t total, bool enabled = true, int64_t initial = 0);
  // Marks `done` units complete; `postfix` is appended inside the brackets (e.g. "lr=1e-4").
  void update(int64_t done, const std::string& postfix = "");
  // Ends the line.
  void finish();
  double elapsed_seconds() const;
  // Ends a progress line left open on stderr (by a bar that an error interrupted), so that the next
  // message starts a line of its own.
  static void end_open_line();

  // "mm:ss" or "h:mm:ss".
  static std::string format_duration(double seconds);
  // The line itself (without carriage return), for tests.
  std::string render(int64_t done, double elapsed, const std::string& postfix) const;

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  int64_t initial_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sdtune

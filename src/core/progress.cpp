#include "core/progress.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace sdtune {

namespace {
std::atomic<bool> line_open{false};
}  // namespace

void ProgressBar::end_open_line() {
  if (line_open.exchange(false)) std::fputc('\n', stderr);
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled, int64_t initial)
    : label_(std::move(label)), total_(total), enabled_(enabled), initial_(initial), start_(std::chrono::steady_clock::now()) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressBar::format_duration(double seconds) {
  const auto total = int64_t(std::max(0.0, seconds));
  char buffer[32];
  if (total >= 3600)
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", (long long)(total / 3600), (long long)(total / 60 % 60), (long long)(total % 60));
  else
    std::snprintf(buffer, sizeof buffer, "%02lld:%02lld", (long long)(total / 60), (long long)(total % 60));
  return buffer;
}

std::string ProgressBar::render(int64_t done, double elapsed, const std::string& postfix) const {
  constexpr int kWidth = 10;
  const double fraction = total_ > 0 ? double(done) / double(total_) : 1.0;
  const int filled = int(std::floor(fraction * kWidth));
  std::ostringstream line;
  line << label_ << ": " << (fraction * 100 < 10 ? " " : "") << int(fraction * 100) << "%|" << std::string(size_t(filled), '#')
       << std::string(size_t(kWidth - filled), ' ') << "| " << done << "/" << total_ << " [" << format_duration(elapsed);
  if (done > initial_) {
    const double per_unit = elapsed / double(done - initial_);
    line << "<" << format_duration(per_unit * double(total_ - done)) << ", ";
    char rate[32];
    if (per_unit >= 1.0)
      std::snprintf(rate, sizeof rate, "%.2fs/it", per_unit);
    else
      std::snprintf(rate, sizeof rate, "%.2fit/s", 1.0 / std::max(per_unit, 1e-9));
    line << rate;
  } else {
    line << "<?, ?it/s";
  }
  if (!postfix.empty()) line << ", " << postfix;
  line << "]";
  return line.str();
}

void ProgressBar::update(int64_t done, const std::string& postfix) {
  if (!enabled_) return;
  std::fprintf(stderr, "\r%s", render(done, elapsed_seconds(), postfix).c_str());
  std::fflush(stderr);
  line_open = true;
}

void ProgressBar::finish() {
  if (enabled_ && !finished_) std::fputc('\n', stderr);
  if (enabled_ && !finished_) line_open = false;
  finished_ = true;
}

}  // namespace sdtune

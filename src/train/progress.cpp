#include "train/progress.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace convnext::train {

Progress::Progress() : tty_(isatty(2) != 0), last_(std::chrono::steady_clock::now()) {}

void Progress::update(const std::string& line, bool force) {
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_).count();
  if (!force && dt < (tty_ ? 0.25 : 30.0)) return;
  last_ = now;
  if (tty_) std::fprintf(stderr, "\r\033[K%s", line.c_str());
  else std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  dirty_ = tty_;
}

void Progress::newline() {
  if (dirty_) std::fputc('\n', stderr);
  dirty_ = false;
}

std::string duration_str(double s) {
  char b[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else std::snprintf(b, sizeof b, "%.0fs", s);
  return b;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

void StepStats::add(bool finite, double loss, double norm, int64_t step_images, double seconds) {
  images += step_images;
  const double ips = static_cast<double>(step_images) / std::max(seconds, 1e-9);
  ema_images_per_s = ema_images_per_s == 0 ? ips : 0.9 * ema_images_per_s + 0.1 * ips;
  if (finite) {
    window.loss += loss;
    window.norm += norm;
    ++window.steps;
  }
  window.images += static_cast<double>(step_images);
  window.seconds += seconds;
}

}  // namespace convnext::train

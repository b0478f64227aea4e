// What `convnext train` shows while it runs: the progress line, durations, throughput and the
// averages that go into log.jsonl.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace convnext::train {

// Progress on stderr: rewritten in place on a terminal, a line every 30 s otherwise.
class Progress {
 public:
  Progress();
  void update(const std::string& line, bool force = false);
  void newline();  // ends a line left open on a terminal

 private:
  bool tty_, dirty_ = false;
  std::chrono::steady_clock::time_point last_;
};

// "42s", "3m07s", "1h05m"; "?" when not finite or negative.
std::string duration_str(double seconds);

double peak_rss_mb();

// The optimizer steps since the last log.jsonl line.
struct StepWindow {
  double loss = 0, norm = 0, images = 0, seconds = 0;  // sums; loss and norm of the finite steps only
  int64_t steps = 0;                                    // with a finite loss
};

// Throughput and counts of the whole run, and the current window.
struct StepStats {
  double ema_images_per_s = 0;  // smoothed over steps
  int64_t images = 0, skipped_nan = 0;
  StepWindow window;

  // One optimizer step of `images` in `seconds`; its loss and norm count only when `finite`.
  void add(bool finite, double loss, double norm, int64_t step_images, double seconds);
};

}  // namespace convnext::train

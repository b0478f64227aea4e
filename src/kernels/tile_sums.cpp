// TileColumnSums: a GEMM output's column sums gathered tile by tile (see kernels.h).
#include <algorithm>

#include "convnext/error.h"
#include "kernels/kernels.h"

namespace convnext::kernels {

void TileColumnSums::reset(int64_t M, int64_t N) {
  N_ = N;
  slots_ = (M + kSlotRows - 1) / kSlotRows;
  if (slots_ > capacity_) {
    first_row_ = std::make_unique<std::atomic<int64_t>[]>(static_cast<size_t>(slots_));
    capacity_ = slots_;
  }
  if (static_cast<int64_t>(sums_.size()) < slots_ * N) sums_.resize(static_cast<size_t>(slots_ * N));
  for (int64_t s = 0; s < slots_; ++s) first_row_[s].store(-1, std::memory_order_relaxed);
  clash_.store(false, std::memory_order_relaxed);
}

double* TileColumnSums::tile(int64_t m0, int64_t n0, int64_t n1) {
  const int64_t s = m0 / kSlotRows;
  int64_t owner = -1;
  // The first tile of the slot claims it; the slot's other column tiles start at the same row.
  if (!first_row_[s].compare_exchange_strong(owner, m0, std::memory_order_relaxed) && owner != m0)
    clash_.store(true, std::memory_order_relaxed);
  double* p = sums_.data() + s * N_;
  std::fill(p + n0, p + n1, 0.0);
  return p + n0;
}

void TileColumnSums::finish(float* out) const {
  if (clash_.load(std::memory_order_relaxed))
    throw Error("internal: two GEMM row tiles started within " + std::to_string(kSlotRows) + " rows of each other");
  // Slot by slot, each over its row of N sums (a walk down the columns would take a cache miss
  // per value); every column still adds its slots in row order.
  static thread_local std::vector<double> total;
  total.assign(static_cast<size_t>(N_), 0.0);
  for (int64_t k = 0; k < slots_; ++k) {
    if (first_row_[k].load(std::memory_order_relaxed) < 0) continue;
    const double* row = sums_.data() + k * N_;
    for (int64_t n = 0; n < N_; ++n) total[static_cast<size_t>(n)] += row[n];
  }
  for (int64_t n = 0; n < N_; ++n) out[n] += static_cast<float>(total[static_cast<size_t>(n)]);
}

}  // namespace convnext::kernels

// The forward pass allocates only its outputs: activations live in the model's workspace, sized
// at load and reused, so the number of heap allocations of a forward does not grow with depth.
// Counted by replacing the global operator new for this test binary (a counter in front of malloc).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "convnext/convnext.h"
#include "test_util.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's buffer uses them): otherwise they would come from the
// runtime's allocator and be freed by ours.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace convnext::test {
namespace {

// Heap allocations of one forward pass in the steady state: the fewest of three passes after
// warm-up. Per-thread scratch (the bf16 GEMM's converted rows) grows once on each thread that
// first needs more, and which thread takes which chunk varies from pass to pass, so a single pass
// may still include such a one-off growth; a per-layer allocation shows in every pass.
long allocations_per_forward(const ConvNextForImageClassification& m, const Tensor& px) {
  for (int i = 0; i < 2; ++i) m.forward(px);
  long fewest = -1;
  for (int i = 0; i < 3; ++i) {
    const long before = g_allocations.load();
    m.forward(px);
    const long n = g_allocations.load() - before;
    fewest = fewest < 0 ? n : std::min(fewest, n);
  }
  return fewest;
}

TEST(Memory, ForwardAllocatesOnlyItsOutputs) {
  // ConvNeXt-T (18 blocks) and ConvNeXt-S (36 blocks) at 64×64, batch 2, fp32 and bf16: the same
  // small count (the output tensors), independent of the number of layers.
  for (const Precision precision : {Precision::F32, Precision::BF16}) {
    const ConvNextForImageClassification tiny(ConvNextConfig::preset("tiny", 10), 0, true, precision);
    const ConvNextForImageClassification small(ConvNextConfig::preset("small", 10), 0, true, precision);
    Tensor px({2, 3, 64, 64});
    for (int64_t i = 0; i < px.numel(); ++i) px[i] = static_cast<float>(i % 17) * 0.1f - 0.8f;
    const long t = allocations_per_forward(tiny, px), s = allocations_per_forward(small, px);
    EXPECT_EQ(t, s) << "allocations grow with depth (" << dtype_short_name(precision) << ")";
    EXPECT_LE(t, 16) << "a forward pass should allocate its outputs only (" << dtype_short_name(precision) << ")";
  }
  // ConvNeXt V2 (GRN's statistics and scales in the workspace too): V2-T and the same widths with
  // 36 blocks, at 64×64 (the whole-map block) and 128×96 (tiles in the first stages).
  ConvNextConfig deep = ConvNextConfig::preset("v2-tiny", 10);
  deep.depths = {3, 3, 27, 3};
  const ConvNextForImageClassification v2(ConvNextConfig::preset("v2-tiny", 10), 0, true);
  const ConvNextForImageClassification v2_deep(deep, 0, true);
  for (const Shape& shape : {Shape{2, 3, 64, 64}, Shape{1, 3, 128, 96}}) {
    Tensor px(shape);
    for (int64_t i = 0; i < px.numel(); ++i) px[i] = static_cast<float>(i % 13) * 0.1f - 0.6f;
    const long t = allocations_per_forward(v2, px), d = allocations_per_forward(v2_deep, px);
    EXPECT_EQ(t, d) << "V2: allocations grow with depth";
    EXPECT_LE(t, 16) << "V2: a forward pass should allocate its outputs only";
  }
}

}  // namespace
}  // namespace convnext::test

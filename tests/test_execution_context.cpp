// The ExecutionContext a forward pass takes (include/convnext/context.h): every thread count and
// kernel family gives transformers' numbers, the dtype can change per call when the parameters
// are kept, the profile goes where the call says, and bad values are one-line Errors.
#include <gtest/gtest.h>

#include <thread>

#include "convnext/convnext.h"
#include "core/cpu.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

struct Tiny4 {
  Tensor pixels, logits;
  Tiny4() {
    auto e = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
    pixels = e->get_f32("pixel_values");
    logits = e->get_f32("logits");
  }
};

std::vector<KernelFamily> families() {
  std::vector<KernelFamily> f = {KernelFamily::Portable};
  if (cpu_has_avx512()) f.push_back(KernelFamily::Avx512);
  return f;
}

TEST(ExecutionContext, EveryFamilyAndThreadCountMatchesTransformers) {
  REQUIRE_FIXTURES();
  const Tiny4 t;
  const auto model = ConvNextForImageClassification::from_pretrained(fixture("tiny4"));
  for (const KernelFamily family : families())
    for (const int threads : {1, 2, 3, 7}) {
      ExecutionContext ctx;
      ctx.kernels = family;
      ctx.threads = threads;
      EXPECT_TRUE(close(model.forward(t.pixels, nullptr, false, ctx).logits, t.logits))
          << kernel_family_name(family) << " on " << threads << " threads";
    }
}

// ConvNeXt V2 runs its blocks in two passes over tiles (GRN needs each image's statistics first),
// tiled by threads and contention as V1 is, or over the whole map: every schedule, both kernel
// families and bf16's fp32 GRN give transformers' numbers.
TEST(ExecutionContext, V2EveryFamilyThreadCountAndScheduleMatchesTransformers) {
  REQUIRE_FIXTURE("v2_tiny4");
  auto e = io::SafetensorsFile::open(fixture("v2_tiny4/expected.safetensors"));
  const Tensor px = e->get_f32("pixel_values"), logits = e->get_f32("logits");
  const auto model = ConvNextForImageClassification::from_pretrained(fixture("v2_tiny4"));
  for (const bool contended : {false, true}) {
    parallel::set_contended(contended);
    for (const KernelFamily family : families())
      for (const int threads : {1, 2, 3, 7}) {
        ExecutionContext ctx;
        ctx.kernels = family;
        ctx.threads = threads;
        const auto out = model.forward(px, nullptr, true, ctx);
        EXPECT_TRUE(close(out.logits, logits)) << kernel_family_name(family) << " on " << threads << " threads"
                                               << (contended ? ", contended" : "");
        for (size_t i = 0; i < out.hidden_states.size(); ++i)
          EXPECT_TRUE(close(out.hidden_states[i], e->get_f32("hidden_states." + std::to_string(i)))) << i;
      }
  }
  parallel::set_contended(false);
}

TEST(ExecutionContext, ThreadCountsOutsideTheRangeAreOneLineErrors) {
  const ConvNextModel model(ConvNextConfig::preset("tiny", 0), 0, true);
  const Tensor px({1, 3, 32, 32});
  for (const int threads : {-1, 1025}) {
    ExecutionContext ctx;
    ctx.threads = threads;
    try {
      model.forward(px, false, ctx);
      ADD_FAILURE() << "threads " << threads << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("threads must be 0 (automatic) or 1"), std::string::npos) << e.what();
    }
  }
}

TEST(ExecutionContext, FamilyNames) {
  EXPECT_EQ(kernel_family_name(KernelFamily::Portable), "portable");
  EXPECT_EQ(kernel_family_name(KernelFamily::Auto), cpu_has_avx512() ? "avx512" : "portable");
  if (cpu_has_avx512()) EXPECT_EQ(kernel_family_name(KernelFamily::Avx512), "avx512");
  else EXPECT_THROW(kernel_family_name(KernelFamily::Avx512), Error);
}

TEST(ExecutionContext, DtypePerCallEqualsAModelLoadedInThatDtype) {
  REQUIRE_FIXTURES();
  const Tiny4 t;
  LoadOptions keep;
  keep.inference_only = false;
  const auto f32 = ConvNextForImageClassification::from_pretrained(fixture("tiny4"), keep);
  LoadOptions bf16_opts;
  bf16_opts.precision = DType::BF16;
  const auto bf16 = ConvNextForImageClassification::from_pretrained(fixture("tiny4"), bf16_opts);
  ExecutionContext ctx;
  ctx.dtype = DType::BF16;
  const Tensor per_call = f32.forward(t.pixels, nullptr, false, ctx).logits;
  const Tensor loaded = bf16.forward(t.pixels).logits;
  ASSERT_EQ(per_call.shape(), loaded.shape());
  for (int64_t i = 0; i < loaded.numel(); ++i) EXPECT_EQ(per_call[i], loaded[i]) << i;  // the same packed weights
  EXPECT_TRUE(close(per_call, t.logits, 3e-2));                                        // bf16's tolerance
  const Tensor fp32 = f32.forward(t.pixels).logits;
  bool differs = false;  // the call really ran bf16
  for (int64_t i = 0; i < fp32.numel(); ++i) differs = differs || fp32[i] != per_call[i];
  EXPECT_TRUE(differs);
  // The model's own dtype is untouched by the call, and a second bf16 call reuses the plan.
  EXPECT_EQ(f32.precision(), DType::F32);
  EXPECT_TRUE(close(f32.forward(t.pixels).logits, t.logits));
  EXPECT_EQ(f32.forward(t.pixels, nullptr, false, ctx).logits[0], per_call[0]);
}

// int8: per call the same as a model loaded in int8, and the portable kernels give the VNNI
// kernels' numbers (the same integers; only float rounding of the fp32 parts may differ).
TEST(ExecutionContext, Int8PerCallAndInEveryFamily) {
  REQUIRE_FIXTURES();
  const Tiny4 t;
  LoadOptions keep;
  keep.inference_only = false;
  const auto f32 = ConvNextForImageClassification::from_pretrained(fixture("tiny4"), keep);
  LoadOptions i8;
  i8.precision = DType::I8;
  const auto int8 = ConvNextForImageClassification::from_pretrained(fixture("tiny4"), i8);
  EXPECT_EQ(int8.precision(), DType::I8);
  ExecutionContext ctx;
  ctx.dtype = DType::I8;
  const Tensor per_call = f32.forward(t.pixels, nullptr, false, ctx).logits;
  const Tensor loaded = int8.forward(t.pixels).logits;
  for (int64_t i = 0; i < loaded.numel(); ++i) EXPECT_EQ(per_call[i], loaded[i]) << i;
  EXPECT_TRUE(close(per_call, t.logits, 3e-2));
  const Tensor fp32 = f32.forward(t.pixels).logits;
  bool differs = false;  // the call really ran int8
  for (int64_t i = 0; i < fp32.numel(); ++i) differs = differs || fp32[i] != per_call[i];
  EXPECT_TRUE(differs);
  for (const KernelFamily family : families())
    for (const int threads : {1, 3}) {
      ExecutionContext c;
      c.kernels = family;
      c.threads = threads;
      EXPECT_TRUE(close(int8.forward(t.pixels, nullptr, false, c).logits, loaded, 1e-5))
          << kernel_family_name(family) << " on " << threads << " threads";
    }
}

TEST(ExecutionContext, AnotherDtypeNeedsTheParameters) {
  REQUIRE_FIXTURES();
  const auto model = ConvNextForImageClassification::from_pretrained(fixture("tiny4"));  // inference_only
  ExecutionContext ctx;
  ctx.dtype = DType::BF16;
  try {
    model.forward(Tensor({1, 3, 32, 32}), nullptr, false, ctx);
    ADD_FAILURE() << "a released model was packed again";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inference_only"), std::string::npos) << e.what();
  }
  ctx.dtype = DType::F16;
  LoadOptions keep;
  keep.inference_only = false;
  const auto kept = ConvNextForImageClassification::from_pretrained(fixture("tiny4"), keep);
  EXPECT_THROW(kept.forward(Tensor({1, 3, 32, 32}), nullptr, false, ctx), Error);  // f16 is a storage format
}

TEST(ExecutionContext, TheProfileGoesWhereTheCallSays) {
  const ConvNextForImageClassification model(ConvNextConfig::preset("tiny", 10), 0, true);
  Tensor px({1, 3, 64, 64});
  ForwardProfile profile;
  ExecutionContext ctx;
  ctx.profile = &profile;
  model.forward(px, nullptr, false, ctx);
  const std::vector<std::string> want = {"embeddings",        "stage1.blocks", "stage2.downsample", "stage2.blocks",
                                         "stage3.downsample", "stage3.blocks", "stage4.downsample", "stage4.blocks",
                                         "pooling"};
  EXPECT_EQ(profile.parts, want);
  EXPECT_EQ(profile.ms.size(), want.size());
  // A call without a profile leaves it as it was: nothing is kept in the model between calls.
  profile.parts.assign(1, "mine");
  model.forward(px);
  EXPECT_EQ(profile.parts, std::vector<std::string>{"mine"});
}

TEST(ExecutionContext, ConcurrentCallsWithDifferentContextsOnOneModel) {
  REQUIRE_FIXTURES();
  const Tiny4 t;
  const auto model = ConvNextForImageClassification::from_pretrained(fixture("tiny4"));
  std::vector<Tensor> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      ExecutionContext ctx;
      ctx.threads = 1 + i % 2;
      ctx.kernels = i < 2 ? KernelFamily::Auto : KernelFamily::Portable;
      for (int r = 0; r < 3; ++r) got[static_cast<size_t>(i)] = model.forward(t.pixels, nullptr, false, ctx).logits;
    });
  for (auto& th : threads) th.join();
  for (const Tensor& g : got) EXPECT_TRUE(close(g, t.logits));
}

}  // namespace
}  // namespace convnext::test

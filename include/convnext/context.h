// How a forward pass runs, passed with each call instead of being read from global state:
//
//   convnext::ForwardProfile profile;
//   convnext::ExecutionContext ctx{.threads = 1, .profile = &profile};
//   auto out = model.forward(pixel_values, nullptr, false, ctx);   // one thread, timed by part
//
// A default-constructed context is what forward() uses without one: the process's thread count
// (set_num_threads, $CONVNEXT_NUM_THREADS, else the CPUs this process may use), the best kernels
// this CPU runs, the precision the model was loaded with, no profile.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "convnext/dtype.h"
#include "convnext/export.h"

namespace convnext {

// Which family of compute kernels runs: Auto (AVX-512 where the CPU has it, else portable C++;
// $CONVNEXT_KERNELS=portable forces portable), or one named. Avx512 on a CPU without AVX-512 is
// an Error. Both give the same numbers within the fixtures' tolerance.
enum class KernelFamily { Auto, Avx512, Portable };

// Wall time of each part of one forward pass: "embeddings", then per stage "stageN.downsample"
// (stages 2…) and "stageN.blocks", then "pooling".
struct ForwardProfile {
  std::vector<std::string> parts;
  std::vector<double> ms;
};

struct ExecutionContext {
  // Threads of this call: 0 = the process default (num_threads()), else 1 … 1024 (an Error
  // otherwise). Loops hand out chunks to whichever thread is free, so asking for more threads
  // than cores costs little, and fewer leaves cores to other work.
  int threads = 0;
  KernelFamily kernels = KernelFamily::Auto;
  // The arithmetic of the GEMMs: unset = the model's LoadOptions::precision. Another one needs
  // the model's parameters (LoadOptions::inference_only = false, or a model built in memory):
  // its weights are packed for that dtype at the first call and kept for the next ones.
  std::optional<DType> dtype;
  ForwardProfile* profile = nullptr;  // when set, receives this call's times by part
};

// Threads used by a forward pass whose context leaves them at 0. n <= 0: automatic (one per CPU
// this process may use).
CONVNEXT_API void set_num_threads(int n);
CONVNEXT_API int num_threads();

// "avx512" or "portable": the family `family` resolves to on this CPU (Auto: the one chosen).
CONVNEXT_API std::string kernel_family_name(KernelFamily family = KernelFamily::Auto);

}  // namespace convnext

// libFuzzer target: a safetensors file (header JSON, offsets) loaded as a checkpoint tensor set.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "convnext/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/convnext_fuzz_" + std::to_string(::getpid()) + ".safetensors";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto st = convnext::io::SafetensorsFile::open(path);
    for (const auto& t : st->tensors()) {
      try {
        auto v = st->get_f32(t.name);
        volatile float sink = v.numel() ? v[v.numel() - 1] : 0.0f;
        (void)sink;
      } catch (const convnext::Error&) {
      }
    }
  } catch (const convnext::Error&) {
  }
  return 0;
}

// libFuzzer target: pytorch_model.bin (zip reader + restricted unpickler + tensor views).
#include <unistd.h>

#include <cstdio>
#include <string>

#include "convnext/error.h"
#include "io/torch_bin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/convnext_fuzz_" + std::to_string(::getpid()) + ".bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto bin = convnext::io::TorchBinFile::open(path);
    for (const auto& rec : bin->tensors()) {
      const std::string& name = rec.name;
      try {
        auto t = bin->get_f32(name);
        volatile float sink = t.numel() ? t[t.numel() - 1] : 0.0f;
        (void)sink;
      } catch (const convnext::Error&) {
      }
    }
  } catch (const convnext::Error&) {
  }
  return 0;
}

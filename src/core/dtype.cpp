// The one parser of dtype names (include/convnext/dtype.h): one row per format, every spelling.
#include "convnext/dtype.h"

#include "convnext/error.h"

namespace convnext {

namespace {
struct Row {
  DType dtype;
  const char* short_name;
  const char* torch_name;
  const char* safetensors_name;
  const char* other_spellings[3];
};
constexpr Row kRows[] = {
    {DType::F32, "f32", "float32", "F32", {"fp32", "float", "torch.float32"}},
    {DType::F16, "f16", "float16", "F16", {"fp16", "half", "torch.float16"}},
    {DType::BF16, "bf16", "bfloat16", "BF16", {"torch.bfloat16", nullptr, nullptr}},
    {DType::I8, "int8", "int8", "I8", {"i8", "torch.int8", nullptr}},
};

const Row& row(DType d) {
  for (const Row& r : kRows)
    if (r.dtype == d) return r;
  return kRows[0];
}
}  // namespace

DType parse_dtype(const std::string& name) {
  for (const Row& r : kRows) {
    if (name == r.short_name || name == r.torch_name || name == r.safetensors_name) return r.dtype;
    for (const char* s : r.other_spellings)
      if (s && name == s) return r.dtype;
  }
  throw Error("unknown dtype '" + name + "': expected f32 (float32), f16 (float16), bf16 (bfloat16) or int8");
}

const char* dtype_short_name(DType d) { return row(d).short_name; }
const char* dtype_torch_name(DType d) { return row(d).torch_name; }
const char* dtype_safetensors_name(DType d) { return row(d).safetensors_name; }

}  // namespace convnext

// The one parser of dtype names (include/convnext/dtype.h).
#include "convnext/dtype.h"

#include "convnext/error.h"

namespace convnext {

DType parse_dtype(const std::string& name) {
  for (const char* s : {"f32", "fp32", "float32", "float", "F32", "torch.float32"})
    if (name == s) return DType::F32;
  for (const char* s : {"f16", "fp16", "float16", "half", "F16", "torch.float16"})
    if (name == s) return DType::F16;
  for (const char* s : {"bf16", "bfloat16", "BF16", "torch.bfloat16"})
    if (name == s) return DType::BF16;
  throw Error("unknown dtype '" + name + "': expected f32 (float32), f16 (float16) or bf16 (bfloat16)");
}

const char* dtype_short_name(DType d) {
  switch (d) {
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F32: break;
  }
  return "f32";
}

const char* dtype_torch_name(DType d) {
  switch (d) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::F32: break;
  }
  return "float32";
}

const char* dtype_safetensors_name(DType d) {
  switch (d) {
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F32: break;
  }
  return "F32";
}

}  // namespace convnext

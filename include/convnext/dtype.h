// Floating-point formats, with one parser for every spelling a user meets: the command line's
// --dtype, config.json's "dtype"/"torch_dtype", torch's names and safetensors' dtypes.
//   "f32" "fp32" "float32" "float" "F32" "torch.float32"    → DType::F32
//   "f16" "fp16" "float16" "half"  "F16" "torch.float16"    → DType::F16
//   "bf16" "bfloat16" "BF16" "torch.bfloat16"               → DType::BF16
//   "int8" "i8" "I8" "torch.int8"                           → DType::I8
// A model's arithmetic (LoadOptions::precision) is F32, BF16 or I8 (the pointwise GEMMs in int8,
// weights per output channel, activations per row, the rest fp32); F16 is a storage format (save,
// convert, checkpoints) and I8 is arithmetic only (checkpoints stay floating point).
#pragma once
#include <string>

#include "convnext/export.h"

namespace convnext {

enum class DType { F32, F16, BF16, I8 };
using Precision = DType;  // the arithmetic of a model's GEMMs: F32, BF16 or I8

// Any spelling above; an Error listing them otherwise.
CONVNEXT_API DType parse_dtype(const std::string& name);
CONVNEXT_API const char* dtype_short_name(DType d);        // "f32", "f16", "bf16", "int8" (--dtype)
CONVNEXT_API const char* dtype_torch_name(DType d);        // "float32", "float16", "bfloat16", "int8" (config.json)
CONVNEXT_API const char* dtype_safetensors_name(DType d);  // "F32", "F16", "BF16", "I8"

}  // namespace convnext

// A restricted unpickler for the data.pkl of a torch.save()d state dict, in the spirit of
// torch.load(weights_only=True): it never executes anything. Only the opcodes a state dict
// uses are known; only a fixed set of globals may appear (collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the torch.*Storage types) and REDUCE
// is only applied to those callables, by our own code. Anything else is refused with an Error
// "<file>: <what was refused>".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "convnext/tensor.h"

namespace convnext::io {

// One tensor of the state dict: where its bytes are and how to read them.
struct TorchTensorRecord {
  std::string name;
  std::string dtype;        // safetensors spelling: "F32", "F16", "BF16", "F64", "I64", ...
  std::string storage_key;  // the zip entry is <archive>/data/<storage_key>
  uint64_t storage_numel = 0;
  uint64_t offset = 0;      // in elements
  Shape shape;
  std::vector<int64_t> stride;  // in elements
};

// Parses `data` (the pickle of a dict / OrderedDict of tensors, or of a training checkpoint
// dict whose "model" / "state_dict" / "model_ema" / "state_dict_ema" entry is that state dict,
// its other entries being plain data: ints, floats, strings, lists, tuples, dicts, tensors).
// `file` names it in errors.
std::vector<TorchTensorRecord> unpickle_state_dict(const uint8_t* data, size_t size, const std::string& file);

}  // namespace convnext::io

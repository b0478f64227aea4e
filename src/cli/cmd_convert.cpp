// convnext convert: any checkpoint this library reads → a transformers save_pretrained directory.
#include <cstdio>
#include <filesystem>

#include "args.h"
#include "commands.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext convert --from PATH --to DIR [--dtype f32|f16|bf16]

Reads a checkpoint in any form this tool loads (a save_pretrained directory with safetensors or
pytorch_model.bin, sharded or not; a hub id in the local Hugging Face cache; a timm,
facebookresearch or torchvision state dict, with or without config.json; ConvNeXt V1 or V2: timm's
convnextv2_* and facebookresearch ConvNeXt-V2 become ConvNextV2 directories) and writes DIR as
transformers' save_pretrained would: config.json, model.safetensors (float32, float16 or
bfloat16) and preprocessor_config.json: the source's, else the preprocessing of the published
ConvNeXt checkpoints at config.image_size (224, crop_pct 0.875, bicubic, ImageNet mean/std), as
`init` and `train` write it. Prints what was mapped or inferred.
)";
// Whether the checkpoint (a directory, a hub id, or a bare weights file) has its own
// preprocessor_config.json; a converted model without one gets what `init` and `train` write.
bool has_processor_config(const std::string& from) {
  const std::string path = resolve_model_path(from);
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) && std::filesystem::exists(std::filesystem::path(path) / "preprocessor_config.json", ec);
}
}  // namespace

int cmd_convert(int argc, char** argv, int first) {
  Args a(argc, argv, first, {}, {"from", "to", "dtype"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string from = a.required("from"), to = a.required("to");
  const std::string dtype = dtype_torch_name(a.dtype({DType::F32, DType::F16, DType::BF16}));
  LoadOptions keep;
  keep.inference_only = false;  // the original weights are what gets written
  const ConvNextConfig config = config_of_checkpoint(from);
  std::vector<std::string> notes;
  switch (config.architecture()) {
    case Architecture::ForImageClassification: {
      auto m = ConvNextForImageClassification::from_pretrained(from, keep);
      notes = m.load_warnings();
      m.save_pretrained(to, dtype);
      break;
    }
    case Architecture::Model: {
      auto m = ConvNextModel::from_pretrained(from, keep);
      notes = m.load_warnings();
      m.save_pretrained(to, dtype);
      break;
    }
    case Architecture::Backbone: {
      auto m = ConvNextBackbone::from_pretrained(from, keep);
      notes = m.load_warnings();
      m.save_pretrained(to, dtype);
      break;
    }
  }
  const bool own = has_processor_config(from);
  const auto proc = own ? ConvNextImageProcessor::from_pretrained(from) : ConvNextImageProcessor::for_new_model(config);
  proc.save_pretrained(to);
  for (const std::string& n : notes) std::fprintf(stderr, "convnext convert: %s\n", n.c_str());
  std::printf("wrote %s: config.json, model.safetensors (%s), preprocessor_config.json (%s) (%s)\n", to.c_str(),
              dtype.c_str(), own ? "the source's" : "ConvNeXt's ImageNet preprocessing", architecture_name(config.architecture(), config.is_v2()));
  return 0;
}

}  // namespace convnext::cli

// ConvNextImageProcessor::for_new_model: the preprocessing a model made by this library ships
// with, decided in one place so that `init`, `convert` and `train` write the same
// preprocessor_config.json for the same model.
#include "convnext/image_processor.h"

#include <filesystem>

namespace convnext {

namespace fs = std::filesystem;

ConvNextImageProcessor ConvNextImageProcessor::for_new_model(const ConvNextConfig& config, const std::string& config_path) {
  if (!config_path.empty()) {
    std::error_code ec;
    fs::path dir = fs::is_directory(config_path, ec) ? fs::path(config_path) : fs::path(config_path).parent_path();
    if (dir.empty()) dir = ".";
    if (fs::exists(dir / "preprocessor_config.json", ec)) return ConvNextImageProcessor::from_pretrained(dir.string());
  }
  return ConvNextImageProcessor(ImageProcessorConfig::for_model(config.image_size, config.num_channels));
}

}  // namespace convnext

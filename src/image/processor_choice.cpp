#include "image/processor_choice.h"

#include <filesystem>

namespace convnext::image {

namespace fs = std::filesystem;

ConvNextImageProcessor processor_for_new_model(const ConvNextConfig& config, const std::string& config_path) {
  if (!config_path.empty()) {
    std::error_code ec;
    fs::path dir = fs::is_directory(config_path, ec) ? fs::path(config_path) : fs::path(config_path).parent_path();
    if (dir.empty()) dir = ".";
    if (fs::exists(dir / "preprocessor_config.json", ec)) return ConvNextImageProcessor::from_pretrained(dir.string());
  }
  return ConvNextImageProcessor(ImageProcessorConfig::for_model(config.image_size, config.num_channels));
}

}  // namespace convnext::image

// The preprocessing a model made by this library ships with, decided in one place so that
// `init`, `convert` and `train` write the same preprocessor_config.json for the same model.
#pragma once
#include <string>

#include "convnext/config.h"
#include "convnext/image_processor.h"

namespace convnext::image {

// A fresh model of `config` (read from `config_path`, or empty for a preset): the
// preprocessor_config.json beside its config file when there is one (a recipe's own, as
// recipes/fashion-mnist has), else ImageProcessorConfig::for_model.
ConvNextImageProcessor processor_for_new_model(const ConvNextConfig& config, const std::string& config_path = "");

}  // namespace convnext::image

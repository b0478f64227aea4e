// The page `convnext serve` shows at GET /: pick or drop an image, see the top-5 labels as bars.
// Self-contained (inline CSS and script, nothing fetched from elsewhere).
#pragma once
#include <string>
#include <vector>

namespace convnext::serve {

std::string web_page(const std::vector<std::string>& model_names);

}  // namespace convnext::serve

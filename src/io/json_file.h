// Reading small text and JSON files (configs, shard indexes) with one-line errors naming the file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace convnext::io {

// The whole file; Error "<path>: cannot open" when it cannot be read.
std::string read_text_file(const std::string& path);
// The file parsed as JSON; Error "<path>: not valid JSON (...)" on any parse error.
nlohmann::json read_json_file(const std::string& path);

}  // namespace convnext::io

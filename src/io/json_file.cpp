#include "io/json_file.h"

#include <fstream>
#include <sstream>

#include "convnext/error.h"

namespace convnext::io {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return ss.str();
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse errors and number overflows alike
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
}

}  // namespace convnext::io

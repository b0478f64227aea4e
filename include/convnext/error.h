// Errors: one exception type whose message is a single line a user can act on
// ("<file>: tensor 'x' has shape [3,4], expected [3,5]").
#pragma once
#include <stdexcept>
#include <string>

#include "convnext/export.h"

namespace convnext {

class CONVNEXT_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace convnext

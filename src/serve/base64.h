// Base64 (RFC 4648, standard alphabet, padded), as KServe's BYTES tensors and the Hugging Face
// endpoint carry encoded images in JSON.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace convnext::serve {

std::string base64_encode(std::string_view bytes);
// Decodes standard or URL-safe base64; whitespace is skipped, padding optional. nullopt when the
// text is not base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace convnext::serve

// The Open Inference Protocol (KServe V2, as Triton speaks it) over JSON, with the binary tensor
// data extension: parsing an infer request and encoding its response. Pure functions of bytes, so
// the protocol is tested without a socket.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace convnext::serve {

// A request the server must answer with 400 and this one line.
class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct InferInput {
  std::string name, datatype;
  std::vector<int64_t> shape;
  std::vector<float> fp32;          // FP32 data (JSON, flat or nested, or binary)
  std::vector<std::string> bytes;   // BYTES elements: binary as sent, or the JSON strings as given
  bool binary = false;              // the data came in the binary section
};

struct RequestedOutput {
  std::string name;
  int64_t classification = 0;  // top K as "score:index:label", 0 = the tensor itself
  bool binary = false;         // answer in the binary section
};

struct InferRequest {
  nlohmann::json id;  // null when absent
  std::vector<InferInput> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output, as JSON
  bool binary_outputs = false;           // request-level "binary_data_output"
};

// `body` is the whole HTTP body; `header_length` the Inference-Header-Content-Length, when sent
// (the JSON is then body[0, header_length) and the binary data follows, input by input).
InferRequest parse_infer_request(std::string_view body, std::optional<size_t> header_length);

struct OutputTensor {
  std::string name, datatype;  // "FP32" or "BYTES"
  std::vector<int64_t> shape;
  std::vector<float> fp32;
  std::vector<std::string> bytes;
  bool binary = false;
};

struct EncodedResponse {
  std::string body;
  std::optional<size_t> header_length;  // set when a binary section follows the JSON
};

EncodedResponse encode_infer_response(const std::string& model_name, const nlohmann::json& id,
                                      const std::vector<OutputTensor>& outputs);

}  // namespace convnext::serve

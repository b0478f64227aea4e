#include "kserve.h"

#include <cstring>

#include "base64.h"

namespace convnext::serve {

namespace {

using nlohmann::json;

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw BadRequest("shape dimensions must be >= 0");
    if (d > 0 && n > (int64_t{1} << 40) / d) throw BadRequest("shape is too large");
    n *= d;
  }
  return n;
}

// Flat or nested JSON arrays of numbers → floats, depth-first.
void flatten_numbers(const json& j, std::vector<float>& out, int depth = 0) {
  if (depth > 8) throw BadRequest("data is nested too deeply");
  if (j.is_array()) {
    for (const json& e : j) flatten_numbers(e, out, depth + 1);
  } else if (j.is_number()) {
    out.push_back(j.get<float>());
  } else {
    throw BadRequest("FP32 data must hold numbers only");
  }
}

void flatten_strings(const json& j, std::vector<std::string>& out, int depth = 0) {
  if (depth > 8) throw BadRequest("data is nested too deeply");
  if (j.is_array()) {
    for (const json& e : j) flatten_strings(e, out, depth + 1);
  } else if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else {
    throw BadRequest("BYTES data must hold strings only");
  }
}

// Triton's binary BYTES tensor: each element a 4-byte little-endian length, then its bytes.
std::vector<std::string> split_binary_bytes(std::string_view data) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < data.size()) {
    if (data.size() - at < 4) throw BadRequest("binary BYTES data is truncated (an element's length)");
    uint32_t len;
    std::memcpy(&len, data.data() + at, 4);
    at += 4;
    if (len > data.size() - at) throw BadRequest("binary BYTES data is truncated (an element's bytes)");
    out.emplace_back(data.substr(at, len));
    at += len;
  }
  return out;
}

std::vector<int64_t> parse_shape(const json& in, const std::string& name) {
  if (!in.contains("shape") || !in["shape"].is_array()) throw BadRequest("input '" + name + "' has no shape");
  std::vector<int64_t> shape;
  for (const json& d : in["shape"]) {
    if (!d.is_number_integer()) throw BadRequest("input '" + name + "': shape must be a list of integers");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// One input's data, from JSON or from the binary section at `binary_at` (advanced).
InferInput parse_input(const json& in, std::string_view binary, size_t& binary_at) {
  if (!in.is_object()) throw BadRequest("each input must be an object");
  InferInput x;
  if (!in.contains("name") || !in["name"].is_string()) throw BadRequest("an input has no name");
  x.name = in["name"].get<std::string>();
  if (!in.contains("datatype") || !in["datatype"].is_string()) throw BadRequest("input '" + x.name + "' has no datatype");
  x.datatype = in["datatype"].get<std::string>();
  x.shape = parse_shape(in, x.name);
  const int64_t count = element_count(x.shape);
  const json params = in.value("parameters", json::object());
  if (params.is_object() && params.contains("binary_data_size")) {
    if (!params["binary_data_size"].is_number_unsigned()) throw BadRequest("binary_data_size must be a non-negative integer");
    const auto size = params["binary_data_size"].get<uint64_t>();
    if (size > binary.size() - binary_at) throw BadRequest("input '" + x.name + "': binary_data_size runs past the body");
    const std::string_view data = binary.substr(binary_at, size);
    binary_at += size;
    x.binary = true;
    if (x.datatype == "FP32") {
      if (size != static_cast<uint64_t>(count) * 4)
        throw BadRequest("input '" + x.name + "': " + std::to_string(size) + " bytes of FP32 data for " +
                         std::to_string(count) + " elements");
      x.fp32.resize(static_cast<size_t>(count));
      std::memcpy(x.fp32.data(), data.data(), size);
    } else {
      x.bytes = split_binary_bytes(data);
    }
  } else {
    if (!in.contains("data")) throw BadRequest("input '" + x.name + "' has no data");
    if (x.datatype == "FP32") flatten_numbers(in["data"], x.fp32);
    else if (x.datatype == "BYTES") flatten_strings(in["data"], x.bytes);
    else throw BadRequest("input '" + x.name + "': datatype " + x.datatype + " is not supported (FP32 or BYTES)");
  }
  const int64_t got = x.datatype == "FP32" ? static_cast<int64_t>(x.fp32.size()) : static_cast<int64_t>(x.bytes.size());
  if (got != count)
    throw BadRequest("input '" + x.name + "': " + std::to_string(got) + " elements of data for shape of " +
                     std::to_string(count));
  return x;
}

RequestedOutput parse_output(const json& o, bool binary_default) {
  if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) throw BadRequest("each output needs a name");
  RequestedOutput r;
  r.name = o["name"].get<std::string>();
  r.binary = binary_default;
  const json params = o.value("parameters", json::object());
  if (!params.is_object()) throw BadRequest("output parameters must be an object");
  if (params.contains("classification")) {
    if (!params["classification"].is_number_integer() || params["classification"].get<int64_t>() < 1)
      throw BadRequest("classification must be a positive integer");
    r.classification = params["classification"].get<int64_t>();
  }
  if (params.contains("binary_data")) {
    if (!params["binary_data"].is_boolean()) throw BadRequest("binary_data must be true or false");
    r.binary = params["binary_data"].get<bool>();
  }
  return r;
}

}  // namespace

InferRequest parse_infer_request(std::string_view body, std::optional<size_t> header_length) {
  const size_t json_len = header_length.value_or(body.size());
  if (json_len > body.size())
    throw BadRequest("Inference-Header-Content-Length " + std::to_string(json_len) + " runs past the body (" +
                     std::to_string(body.size()) + " bytes)");
  json j;
  try {
    j = json::parse(body.substr(0, json_len));
  } catch (const json::exception& e) {
    throw BadRequest(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) throw BadRequest("the request must be a JSON object");
  InferRequest r;
  if (j.contains("id")) {
    if (!j["id"].is_string()) throw BadRequest("id must be a string");
    r.id = j["id"];
  }
  const json params = j.value("parameters", json::object());
  if (params.is_object() && params.contains("binary_data_output")) {
    if (!params["binary_data_output"].is_boolean()) throw BadRequest("binary_data_output must be true or false");
    r.binary_outputs = params["binary_data_output"].get<bool>();
  }
  if (!j.contains("inputs") || !j["inputs"].is_array() || j["inputs"].empty())
    throw BadRequest("the request needs a non-empty list of inputs");
  const std::string_view binary = body.substr(json_len);
  size_t at = 0;
  for (const json& in : j["inputs"]) r.inputs.push_back(parse_input(in, binary, at));
  if (at != binary.size())
    throw BadRequest(std::to_string(binary.size() - at) + " bytes of binary data are not claimed by any input");
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) throw BadRequest("outputs must be a list");
    for (const json& o : j["outputs"]) r.outputs.push_back(parse_output(o, r.binary_outputs));
  }
  return r;
}

EncodedResponse encode_infer_response(const std::string& model_name, const json& id,
                                      const std::vector<OutputTensor>& outputs) {
  json j = {{"model_name", model_name}, {"model_version", "1"}};
  if (!id.is_null()) j["id"] = id;
  j["outputs"] = json::array();
  std::string binary;
  for (const OutputTensor& t : outputs) {
    json o = {{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}};
    if (t.binary) {
      const size_t before = binary.size();
      if (t.datatype == "FP32") {
        binary.append(reinterpret_cast<const char*>(t.fp32.data()), t.fp32.size() * sizeof(float));
      } else {
        for (const std::string& s : t.bytes) {
          const auto len = static_cast<uint32_t>(s.size());
          binary.append(reinterpret_cast<const char*>(&len), 4);
          binary.append(s);
        }
      }
      o["parameters"] = {{"binary_data_size", binary.size() - before}};
    } else if (t.datatype == "FP32") {
      o["data"] = t.fp32;
    } else {
      o["data"] = t.bytes;
    }
    j["outputs"].push_back(std::move(o));
  }
  EncodedResponse r;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!binary.empty() || std::any_of(outputs.begin(), outputs.end(), [](const OutputTensor& t) { return t.binary; })) {
    r.header_length = r.body.size();
    r.body += binary;
  }
  return r;
}

}  // namespace convnext::serve

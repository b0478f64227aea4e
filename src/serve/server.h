// `convnext serve`: an inference server for ConvNextForImageClassification models that speaks
// the Open Inference Protocol (KServe V2, as Triton does: JSON, binary tensors, classification)
// and Hugging Face's image-classification endpoint, batches concurrent requests dynamically,
// exports Prometheus metrics and serves a web page. A client of the public API only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convnext/dtype.h"

namespace convnext::serve {

struct ModelSource {
  std::string name;  // the URL name: /v2/models/NAME
  std::string path;  // directory, weights file or hub id
};

struct ServeOptions {
  std::vector<ModelSource> models;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 picks a free port
  int64_t max_batch = 16;
  double max_queue_delay_ms = 5;
  int64_t max_queue = 256;  // requests waiting per model; more get 503
  int threads = 0;          // model threads; 0 = automatic
  DType dtype = DType::F32;
  int64_t max_body_mb = 32;
  int64_t max_pixels = 89478485;  // per decoded image (Pillow's decompression-bomb limit)
  int64_t request_timeout_ms = 30000;
};

// The name a model is served under when none is given: the directory's base name, or the last
// part of a hub id ("models/convnext-fashion-mnist/" → "convnext-fashion-mnist").
std::string default_model_name(const std::string& path);

// Loads the models, listens, prints "listening on http://HOST:PORT" (flushed) when ready, and
// serves until SIGTERM or SIGINT; then stops accepting, finishes what it accepted and returns 0.
int run_server(const ServeOptions& options);

}  // namespace convnext::serve

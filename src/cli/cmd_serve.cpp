// convnext serve: the inference server (src/serve/), started from the command line.
#include <cstdio>
#include <string>

#include "args.h"
#include "commands.h"
#include "convnext/error.h"
#ifdef CONVNEXT_HAVE_SERVE
#include "../serve/server.h"
#endif

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext serve --model DIR_OR_HUB_ID [--model NAME=DIR_OR_HUB_ID ...]
                      [--host 127.0.0.1] [--port 8080] [--max-batch 16] [--max-queue-delay-ms 5]
                      [--max-queue 256] [--threads N] [--dtype f32|bf16|int8] [--max-body-mb 32]
                      [--max-pixels N] [--request-timeout-ms 30000]

Serves ConvNextForImageClassification models over HTTP/1.1. A model given without NAME= is served
under its directory's base name (a hub id: its last part). --port 0 picks a free port. When ready
it prints one line, "listening on http://HOST:PORT". SIGTERM or SIGINT: stop accepting, answer the
requests already accepted, exit 0.

Endpoints
  GET  /v2/health/live, /v2/health/ready          200 when live / ready
  GET  /v2                                         server metadata (name, version, extensions)
  GET  /v2/models/NAME[/ready]                     model metadata / readiness
  POST /v2/models/NAME/infer                       Open Inference Protocol (KServe V2, as Triton):
         input pixel_values (FP32 [N, C, S, S], preprocessed) or image (BYTES [N]: encoded image
         files, base64 in JSON); outputs logits and pooler_output; "parameters": {"classification": K}
         on an output gives "score:index:label" strings; binary tensor data with the
         Inference-Header-Content-Length header ("binary_data_size" on inputs, "binary_data": true
         on outputs or "binary_data_output": true on the request)
  POST /models/NAME (and POST / with one model)    Hugging Face image-classification endpoint: the
         image as the body, or {"inputs": "<base64>", "parameters": {"top_k": 5,
         "function_to_apply": "softmax"|"sigmoid"|"none"}} -> [{"label", "score"}, ...]
  GET  /metrics                                    Prometheus text (convnext_inference_*)
  GET  /                                           a web page: drop an image, see the top 5

Batching: concurrent requests for a model run together, up to --max-batch images per forward
pass, waiting at most --max-queue-delay-ms for a batch to fill. That wait is skipped while it is
in vain: once a request waited it out with no other coming, a request that finds the model idle
and nothing queued runs at once, until requests overlap again. Images are decoded and
preprocessed (with the model's preprocessor_config.json, as `classify` does) on the connection's
thread, beside the model. --threads is the model's thread count (0: automatic).

Limits (each answered with {"error": "..."}): a body over --max-body-mb is 413, refused from its
Content-Length before it is read (a POST without Content-Length, or a chunked one, is 411); an
image over --max-pixels (default 89478485, Pillow's decompression-bomb limit) is 400, and so is
an image so thin that resizing its shortest edge would exceed that many pixels; more than
--max-queue requests waiting for one model get 503 with Retry-After; a request not answered
within --request-timeout-ms is 504 (and gives up its place in the queue).
)";

#ifdef CONVNEXT_HAVE_SERVE
serve::ModelSource model_source(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq != std::string::npos && spec.find('/') > eq) return {spec.substr(0, eq), spec.substr(eq + 1)};
  return {serve::default_model_name(spec), spec};
}
#endif
}  // namespace

int cmd_serve(int argc, char** argv, int first) {
  Args a(argc, argv, first, {},
         {"model", "host", "port", "max-batch", "max-queue-delay-ms", "max-queue", "threads", "dtype", "max-body-mb",
          "max-pixels", "request-timeout-ms"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!a.positional().empty()) throw Error("unexpected argument '" + a.positional()[0] + "' (see --help)");
#ifdef CONVNEXT_HAVE_SERVE
  serve::ServeOptions o;
  for (const std::string& spec : a.get_all("model")) o.models.push_back(model_source(spec));
  if (o.models.empty()) throw Error("--model is required (see --help)");
  o.host = a.get("host", "127.0.0.1");
  o.port = static_cast<int>(a.get_int_in("port", 8080, 0, 65535));
  o.max_batch = a.get_int_in("max-batch", 16, 1, 1024);
  o.max_queue_delay_ms = a.get_double("max-queue-delay-ms", 5);
  if (!(o.max_queue_delay_ms >= 0 && o.max_queue_delay_ms <= 60000))
    throw Error("--max-queue-delay-ms must be between 0 and 60000");
  o.max_queue = a.get_int_in("max-queue", 256, 1, 100000);
  o.threads = a.threads();
  o.dtype = a.dtype();
  o.max_body_mb = a.get_int_in("max-body-mb", 32, 1, 4096);
  o.max_pixels = a.get_int_in("max-pixels", 89478485, 1, int64_t{1} << 40);
  o.request_timeout_ms = a.get_int_in("request-timeout-ms", 30000, 1, 3600000);
  return serve::run_server(o);
#else
  throw Error("convnext serve needs cpp-httplib: install libcpp-httplib-dev (scripts/setup.sh does) and rebuild");
#endif
}

}  // namespace convnext::cli

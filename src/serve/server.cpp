// The HTTP side of `convnext serve`: routes, request checks and answers (see server.h).
// cpp-httplib (Debian's libcpp-httplib-dev) parses HTTP; each connection's request runs on one of
// its pool's threads, which decodes and preprocesses the request's images there and then waits
// for the model's Batcher, so the model thread only ever runs forward passes.
#include "server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "convnext/convnext.h"
#include "base64.h"
#include "batcher.h"
#include "kserve.h"
#include "metrics.h"
#include "web_page.h"

namespace convnext::serve {

using nlohmann::json;

std::string default_model_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
  if (std::filesystem::is_regular_file(path)) name = std::filesystem::path(p).parent_path().filename().string();
  return name;
}

namespace {

// A failed request: its HTTP status and one line.
struct HttpError {
  int status;
  std::string message;
};

struct ServedModel {
  std::string name;
  ConvNextForImageClassification model;
  ConvNextImageProcessor processor;
  int64_t channels = 3, size = 224;
  ModelMetrics* metrics = nullptr;
  std::unique_ptr<Batcher> batcher;
};

int64_t us_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

void set_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json({{"error", message}}).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  if (status == 503) res.set_header("Retry-After", "1");
}

bool valid_name(const std::string& n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

class Server {
 public:
  explicit Server(const ServeOptions& o) : o_(o) {}
  int run();

 private:
  void load_models();
  void routes();
  ServedModel& model(const std::string& name);
  Tensor decode_images(const ServedModel& m, const std::vector<std::string>& encoded) const;
  Tensor request_pixels(const InferRequest& r, const ServedModel& m) const;
  BatchResult infer(ServedModel& m, Tensor pixels);
  void v2_infer(const httplib::Request& req, httplib::Response& res, ServedModel& m);
  void hf_classify(const httplib::Request& req, httplib::Response& res, ServedModel& m);
  json model_metadata(const ServedModel& m) const;
  // Runs `body`, turning an HttpError or any exception into its JSON answer, and counts the
  // request in the model's metrics.
  template <class F>
  void counted(httplib::Response& res, ServedModel* m, F&& body);

  ServeOptions o_;
  Metrics metrics_;
  std::vector<std::unique_ptr<ServedModel>> models_;
  httplib::Server http_;
  std::atomic<bool> draining_{false};
};

void Server::load_models() {
  for (const ModelSource& src : o_.models) {
    if (!valid_name(src.name))
      throw Error("model name '" + src.name + "' must use letters, digits, '-', '_' or '.' (give NAME=PATH)");
    for (const auto& m : models_)
      if (m->name == src.name) throw Error("two models are named '" + src.name + "' (give NAME=PATH)");
    LoadOptions lo;
    lo.precision = o_.dtype;
    auto clf = ImageClassifier::from_pretrained(src.path, lo);
    auto m = std::make_unique<ServedModel>(ServedModel{src.name, clf.model(), clf.processor(), 3, 224, nullptr, nullptr});
    for (const auto& w : m->model.load_warnings()) std::fprintf(stderr, "convnext serve: %s: warning: %s\n", src.name.c_str(), w.c_str());
    m->channels = m->processor.channels_for(m->model.config().num_channels);
    m->size = m->model.config().image_size;
    m->metrics = &metrics_.of(src.name);
    BatcherOptions bo;
    bo.max_batch = o_.max_batch;
    bo.max_delay = std::chrono::microseconds(static_cast<int64_t>(o_.max_queue_delay_ms * 1000));
    bo.max_queue = o_.max_queue;
    bo.context.threads = o_.threads;
    m->batcher = std::make_unique<Batcher>(m->model, bo, *m->metrics);
    models_.push_back(std::move(m));
  }
}

ServedModel& Server::model(const std::string& name) {
  for (auto& m : models_)
    if (m->name == name) return *m;
  throw HttpError{404, "unknown model '" + name + "'"};
}

// The processor resizes the shortest edge to shortest_edge / crop_pct and the long one in
// proportion before its centre crop (shortest_edge < 384), so a thin image of few pixels
// resizes to a huge one (1 x 3000000 → 32 x 96000000). Such an image is refused as a
// decompression bomb is, by --max-pixels, though never below 16 times the resized square.
void check_resized_size(const ImageProcessorConfig& c, const ImageU8& img, int64_t max_pixels, const std::string& name) {
  if (!c.do_resize || c.shortest_edge >= 384 || !(c.crop_pct > 0)) return;
  const double side = std::floor(static_cast<double>(c.shortest_edge) / c.crop_pct);
  const double shorter = static_cast<double>(std::min(img.width, img.height));
  const double longer = static_cast<double>(std::max(img.width, img.height));
  const double pixels = side * std::floor(side * longer / shorter);
  const double limit = std::max(static_cast<double>(max_pixels), 16 * side * side);
  if (pixels > limit) {
    const auto n = [](double v) { return std::to_string(static_cast<long long>(v)); };
    throw HttpError{400, name + ": image of " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                             " resizes (shortest edge to " + n(side) + ") to " + n(pixels) + " pixels, over the limit of " +
                             n(limit) + " (an image this thin is a decompression bomb); raise it with --max-pixels"};
  }
}

// Encoded images → [n, C, S, S], each as `classify` preprocesses a file.
Tensor Server::decode_images(const ServedModel& m, const std::vector<std::string>& encoded) const {
  if (encoded.empty()) throw HttpError{400, "no image given"};
  DecodeSettings ds;
  ds.max_pixels = o_.max_pixels;
  std::vector<Tensor> items;
  for (size_t i = 0; i < encoded.size(); ++i) {
    try {
      const std::string name = "image " + std::to_string(i);
      ImageU8 img = ConvNextImageProcessor::decode_image(encoded[i].data(), encoded[i].size(), name, m.channels, ds);
      check_resized_size(m.processor.config(), img, o_.max_pixels, name);
      items.push_back(m.processor.preprocess(std::move(img)));
    } catch (const Error& e) {
      throw HttpError{400, e.what()};
    }
  }
  for (const Tensor& t : items)
    if (t.shape() != items.front().shape()) throw HttpError{400, "the images preprocess to different sizes"};
  return stack(items);
}

// Queues pixels for the model and waits for their rows of the batch's outputs.
BatchResult Server::infer(ServedModel& m, Tensor pixels) {
  if (draining_) throw HttpError{503, "the server is shutting down"};
  const auto deadline = Clock::now() + std::chrono::milliseconds(o_.request_timeout_ms);
  std::future<BatchResult> f;
  try {
    f = m.batcher->submit(std::move(pixels), deadline);
  } catch (const QueueFull&) {
    throw HttpError{503, draining_ ? "the server is shutting down" : "the queue of model '" + m.name + "' is full"};
  }
  const std::string timed_out = "the request timed out after " + std::to_string(o_.request_timeout_ms) + " ms";
  if (f.wait_until(deadline + std::chrono::milliseconds(50)) != std::future_status::ready) throw HttpError{504, timed_out};
  BatchResult r = f.get();
  if (!r.error.empty()) {
    if (r.error.find("timed out") != std::string::npos) throw HttpError{504, timed_out};
    throw HttpError{500, r.error};
  }
  m.metrics->queue_duration_us.fetch_add(r.queue_us);
  m.metrics->compute_infer_duration_us.fetch_add(r.compute_us);
  return r;
}

template <class F>
void Server::counted(httplib::Response& res, ServedModel* m, F&& body) {
  const auto t0 = Clock::now();
  bool ok = false;
  try {
    body();
    ok = true;
  } catch (const HttpError& e) {
    set_error(res, e.status, e.message);
  } catch (const BadRequest& e) {
    set_error(res, 400, e.what());
  } catch (const Error& e) {
    set_error(res, 400, e.what());
  } catch (const std::exception& e) {
    set_error(res, 500, e.what());
  }
  if (!m) return;
  (ok ? m->metrics->request_success : m->metrics->request_failure).fetch_add(1);
  m->metrics->request_duration_us.fetch_add(us_since(t0));
}

// The pixel_values of a V2 request: its one input, `pixel_values` (FP32 [N, C, S, S]) or `image`
// (BYTES [N]: encoded image files, base64 in JSON, raw in the binary section).
Tensor Server::request_pixels(const InferRequest& r, const ServedModel& m) const {
  if (r.inputs.size() != 1) throw BadRequest("send one input: pixel_values (FP32) or image (BYTES)");
  const InferInput& in = r.inputs.front();
  if (in.name == "pixel_values") {
    if (in.datatype != "FP32") throw BadRequest("pixel_values must be FP32, not " + in.datatype);
    const std::vector<int64_t> want = {m.channels, m.size, m.size};
    if (in.shape.size() != 4 || in.shape[0] < 1 || !std::equal(want.begin(), want.end(), in.shape.begin() + 1))
      throw BadRequest("pixel_values must have shape [N, " + std::to_string(m.channels) + ", " + std::to_string(m.size) +
                       ", " + std::to_string(m.size) + "] with N >= 1");
    return Tensor(in.shape, in.fp32);
  }
  if (in.name == "image") {
    if (in.datatype != "BYTES") throw BadRequest("image must be BYTES, not " + in.datatype);
    if (in.shape.empty() || in.shape[0] < 1 || in.shape.size() > 2 || (in.shape.size() == 2 && in.shape[1] != 1))
      throw BadRequest("image must have shape [N] (or [N, 1]) with N >= 1");
    std::vector<std::string> files = in.bytes;
    if (!in.binary)
      for (size_t i = 0; i < files.size(); ++i) {
        auto raw = base64_decode(files[i]);
        if (!raw) throw BadRequest("image " + std::to_string(i) + " is not base64");
        files[i] = std::move(*raw);
      }
    return decode_images(m, files);
  }
  throw BadRequest("unknown input '" + in.name + "' (pixel_values or image)");
}

// The top K of each row as Triton's classification extension gives them: "score:index:label".
std::vector<std::string> classification_strings(const Tensor& t, int64_t k, const ConvNextConfig& cfg, bool labelled) {
  const int64_t N = t.dim(0), L = t.dim(1);
  k = std::min(k, L);
  std::vector<std::string> out;
  for (int64_t n = 0; n < N; ++n) {
    std::vector<int64_t> idx(static_cast<size_t>(L));
    for (int64_t j = 0; j < L; ++j) idx[static_cast<size_t>(j)] = j;
    const float* row = t.data() + n * L;
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = idx[static_cast<size_t>(j)];
      std::string s = std::to_string(row[i]) + ":" + std::to_string(i);
      if (labelled) {
        auto it = cfg.id2label.find(i);
        if (it != cfg.id2label.end()) s += ":" + it->second;
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

void Server::v2_infer(const httplib::Request& req, httplib::Response& res, ServedModel& m) {
  std::optional<size_t> header_length;
  if (req.has_header("Inference-Header-Content-Length")) {
    const std::string v = req.get_header_value("Inference-Header-Content-Length");
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') throw BadRequest("Inference-Header-Content-Length is not a number");
    header_length = static_cast<size_t>(n);
  }
  const InferRequest r = parse_infer_request(req.body, header_length);
  Tensor px = request_pixels(r, m);
  const int64_t N = px.dim(0);
  const BatchResult out = infer(m, std::move(px));
  std::vector<RequestedOutput> wanted = r.outputs;
  if (wanted.empty()) wanted = {{"logits", 0, r.binary_outputs}, {"pooler_output", 0, r.binary_outputs}};
  std::vector<OutputTensor> tensors;
  for (const RequestedOutput& w : wanted) {
    const Tensor* t = w.name == "logits" ? &out.logits : w.name == "pooler_output" ? &out.pooler_output : nullptr;
    if (!t) throw BadRequest("unknown output '" + w.name + "' (logits or pooler_output)");
    OutputTensor o;
    o.name = w.name;
    o.binary = w.binary;
    if (w.classification > 0) {
      o.datatype = "BYTES";
      o.bytes = classification_strings(*t, w.classification, m.model.config(), w.name == "logits");
      o.shape = {N, static_cast<int64_t>(o.bytes.size()) / N};
    } else {
      o.datatype = "FP32";
      o.shape = t->shape();
      o.fp32.assign(t->data(), t->data() + t->numel());
    }
    tensors.push_back(std::move(o));
  }
  const EncodedResponse enc = encode_infer_response(m.name, r.id, tensors);
  if (enc.header_length) {
    res.set_header("Inference-Header-Content-Length", std::to_string(*enc.header_length));
    res.set_content(enc.body, "application/octet-stream");
  } else {
    res.set_content(enc.body, "application/json");
  }
  m.metrics->inference_count.fetch_add(N);
}

// Hugging Face's image-classification endpoint: a raw image body, or {"inputs": base64,
// "parameters": {"top_k", "function_to_apply"}} → [{"label", "score"}, ...], best first.
void Server::hf_classify(const httplib::Request& req, httplib::Response& res, ServedModel& m) {
  std::string image = req.body;
  int64_t top_k = 5;
  ScoreFunction fn = ScoreFunction::Auto;
  if (req.get_header_value("Content-Type").rfind("application/json", 0) == 0) {
    json j;
    try {
      j = json::parse(req.body);
    } catch (const json::exception& e) {
      throw BadRequest(std::string("malformed JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("inputs") || !j["inputs"].is_string())
      throw BadRequest("send {\"inputs\": \"<base64 image>\"} or the image itself");
    auto raw = base64_decode(j["inputs"].get<std::string>());
    if (!raw) throw BadRequest("inputs is not base64");
    image = std::move(*raw);
    const json p = j.value("parameters", json::object());
    if (!p.is_object()) throw BadRequest("parameters must be an object");
    if (p.contains("top_k")) {
      if (!p["top_k"].is_number_integer() || p["top_k"].get<int64_t>() < 1) throw BadRequest("top_k must be a positive integer");
      top_k = p["top_k"].get<int64_t>();
    }
    if (p.contains("function_to_apply")) {
      if (!p["function_to_apply"].is_string()) throw BadRequest("function_to_apply must be softmax, sigmoid or none");
      fn = parse_score_function(p["function_to_apply"].get<std::string>());
    }
  }
  const BatchResult out = infer(m, decode_images(m, {image}));
  const auto preds = top_predictions(out.logits, m.model.config(), std::min<int64_t>(top_k, out.logits.dim(1)), fn);
  json a = json::array();
  for (const Prediction& p : preds.front()) a.push_back({{"label", p.label}, {"score", p.score}});
  res.set_content(a.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  m.metrics->inference_count.fetch_add(1);
}

json Server::model_metadata(const ServedModel& m) const {
  const ConvNextConfig& c = m.model.config();
  const int64_t labels = c.num_labels() > 0 ? c.num_labels() : c.hidden_sizes.back();
  return {{"name", m.name},
          {"versions", {"1"}},
          {"platform", "convnext"},
          {"inputs",
           {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", {-1, m.channels, m.size, m.size}}},
            {{"name", "image"}, {"datatype", "BYTES"}, {"shape", {-1}}}}},
          {"outputs",
           {{{"name", "logits"}, {"datatype", "FP32"}, {"shape", {-1, labels}}},
            {{"name", "pooler_output"}, {"datatype", "FP32"}, {"shape", {-1, c.hidden_sizes.back()}}}}}};
}

// The checks on a request's body made from its headers alone, before it is read: no chunked
// transfer encoding (411), a Content-Length that is a number (400) not over the limit (413).
// A request of a method with a body (cpp-httplib reads one for POST, PUT, PATCH, DELETE) and
// no Content-Length is 411 too: cpp-httplib would read its body until the client closes, with
// no limit. Sets the answer and returns true when the request is refused.
bool refuse_body(const httplib::Request& req, httplib::Response& res, size_t max_body) {
  auto refuse = [&](int status, const std::string& why) {
    set_error(res, status, why);
    res.set_header("Connection", "close");
    return true;
  };
  if (req.has_header("Transfer-Encoding"))
    return refuse(411, "send the body with a Content-Length (chunked transfer encoding is not accepted)");
  if (!req.has_header("Content-Length")) {
    static const char* with_body[] = {"POST", "PUT", "PATCH", "DELETE", "PRI"};
    if (std::none_of(std::begin(with_body), std::end(with_body), [&](const char* m) { return req.method == m; })) return false;
    return refuse(411, req.method + " needs a Content-Length (0 for no body)");
  }
  if (req.get_header_value_count("Content-Length") > 1) return refuse(400, "more than one Content-Length");
  const std::string len = req.get_header_value("Content-Length");
  if (len.empty() || !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return refuse(400, "Content-Length '" + len + "' is not a number of bytes");
  if (len.size() > 18 || std::stoull(len) > max_body)
    return refuse(413, "the body (Content-Length " + len + ") is over --max-body-mb " + std::to_string(max_body >> 20));
  return false;
}

// One route: `methods` it answers, anything else on it is 405.
using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
void route(httplib::Server& http, const std::string& pattern, const std::string& method, Handler h) {
  auto dispatch = [method, h](const httplib::Request& req, httplib::Response& res) {
    if (req.method != method) {
      set_error(res, 405, req.method + " is not allowed on " + req.path + " (use " + method + ")");
      res.set_header("Allow", method);
      return;
    }
    h(req, res);
  };
  http.Get(pattern, dispatch);
  http.Post(pattern, dispatch);
  http.Put(pattern, dispatch);
  http.Delete(pattern, dispatch);
  http.Patch(pattern, dispatch);
}

void Server::routes() {
  const std::string M = "/v2/models/([^/]+)(?:/versions/[^/]+)?";
  auto ok_if = [](httplib::Response& res, bool ok, const char* why) {
    if (ok) res.set_content("", "text/plain");
    else set_error(res, 503, why);
  };
  route(http_, "/v2/health/live", "GET", [&](const auto&, auto& res) { ok_if(res, true, ""); });
  route(http_, "/v2/health/ready", "GET", [&](const auto&, auto& res) { ok_if(res, !draining_, "shutting down"); });
  route(http_, "/v2", "GET", [&](const auto&, auto& res) {
    res.set_content(json({{"name", "convnext"}, {"version", version()}, {"extensions", {"classification", "binary_tensor_data"}}}).dump(),
                    "application/json");
  });
  route(http_, M, "GET", [&](const auto& req, auto& res) {
    counted(res, nullptr, [&] { res.set_content(model_metadata(model(req.matches[1].str())).dump(), "application/json"); });
  });
  route(http_, M + "/ready", "GET", [&](const auto& req, auto& res) {
    counted(res, nullptr, [&] {
      model(req.matches[1].str());
      ok_if(res, !draining_, "shutting down");
    });
  });
  route(http_, M + "/infer", "POST", [&](const auto& req, auto& res) {
    ServedModel* m = nullptr;
    counted(res, nullptr, [&] { m = &model(req.matches[1].str()); });
    if (m) counted(res, m, [&] { v2_infer(req, res, *m); });
  });
  route(http_, "/models/([^/]+)", "POST", [&](const auto& req, auto& res) {
    ServedModel* m = nullptr;
    counted(res, nullptr, [&] { m = &model(req.matches[1].str()); });
    if (m) counted(res, m, [&] { hf_classify(req, res, *m); });
  });
  http_.Get("/", [&](const auto&, auto& res) {
    std::vector<std::string> names;
    for (const auto& m : models_) names.push_back(m->name);
    res.set_content(web_page(names), "text/html; charset=utf-8");
  });
  http_.Post("/", [&](const auto& req, auto& res) {
    if (models_.size() != 1) return set_error(res, 404, "several models are served: POST /models/NAME");
    counted(res, models_.front().get(), [&] { hf_classify(req, res, *models_.front()); });
  });
  const httplib::Server::Handler not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    set_error(res, 405, req.method + " is not allowed on / (GET the page, POST an image)");
  };
  http_.Put("/", not_allowed);
  http_.Delete("/", not_allowed);
  http_.Patch("/", not_allowed);
  route(http_, "/metrics", "GET", [&](const auto&, auto& res) {
    res.set_content(metrics_.prometheus_text(), "text/plain; version=0.0.4");
  });
  // Limits checked before the body is read: an oversized declared length is refused without
  // reading it (and the connection closed), a body without a length is refused. A client that
  // sends "Expect: 100-continue" gets the refusal instead of "100 Continue".
  const size_t max_body = static_cast<size_t>(o_.max_body_mb) << 20;
  http_.set_pre_routing_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    return refuse_body(req, res, max_body) ? httplib::Server::HandlerResponse::Handled
                                           : httplib::Server::HandlerResponse::Unhandled;
  });
  http_.set_expect_100_continue_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    return refuse_body(req, res, max_body) ? res.status : 100;
  });
  http_.set_payload_max_length(max_body);
  http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) set_error(res, 404, "no such path: " + req.path);
    else set_error(res, res.status, "HTTP " + std::to_string(res.status));
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      set_error(res, 500, e.what());
    } catch (...) {
      set_error(res, 500, "unknown error");
    }
  });
}

int Server::run() {
  // SIGTERM and SIGINT go to the thread that waits for them below, not to the workers.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  load_models();
  routes();
  // Each waiting request holds a pool thread, so the pool has room for a full queue.
  const size_t pool = static_cast<size_t>(std::clamp<int64_t>(o_.max_queue * static_cast<int64_t>(models_.size()) + 8, 16, 1024));
  http_.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  // cpp-httplib writes a response's headers and body in two sends: with Nagle's algorithm on,
  // the body waits for the client's (delayed) ACK of the headers, up to 40 ms on Linux.
  http_.set_tcp_nodelay(true);
  // cpp-httplib's listening socket has SO_REUSEPORT, with which a second server binds the same
  // port without an error (and the kernel splits the connections between the two), and a
  // backlog of 5, which drops connections that arrive together (with SYN cookies, the kernel
  // resets some of them: clients saw "connection reset" at 64 concurrent requests). So:
  // SO_REUSEADDR alone, and the backlog raised once the socket listens.
  int listen_fd = -1;
  http_.set_socket_options([&listen_fd](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = sock;
  });
  int port = o_.port;
  if (port == 0) port = http_.bind_to_any_port(o_.host);
  else if (!http_.bind_to_port(o_.host, port)) port = -1;
  if (port < 0) throw Error("cannot listen on " + o_.host + ":" + std::to_string(o_.port) + " (in use?)");
  if (listen_fd >= 0 && ::listen(listen_fd, SOMAXCONN) != 0)
    std::fprintf(stderr, "convnext serve: warning: cannot raise the listen backlog: %s\n", std::strerror(errno));
  std::thread listener([&] { http_.listen_after_bind(); });
  std::printf("listening on http://%s:%d\n", o_.host.c_str(), port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "convnext serve: %s: finishing the requests already accepted\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  draining_ = true;
  for (auto& m : models_) m->batcher->stop_waiting();  // nothing more will come to fill a batch
  http_.stop();      // no new connections; the pool finishes the requests it has
  listener.join();
  for (auto& m : models_) m->batcher->drain();
  std::fprintf(stderr, "convnext serve: stopped\n");
  return 0;
}

}  // namespace

int run_server(const ServeOptions& options) {
  if (options.models.empty()) throw Error("--model is required (see --help)");
  Server s(options);
  return s.run();
}

}  // namespace convnext::serve

// `convnext serve` over real HTTP: the binary on a free port, a client from another thread. The
// numbers are checked against the public API run in this process (a lone forward), the
// classification against `classify`'s pipeline.
#ifdef CONVNEXT_HAVE_SERVE
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "convnext/convnext.h"
#include "serve_util.h"
#include "test_util.h"

namespace convnext::test {
namespace {

using nlohmann::json;

std::string repo(const std::string& rel) { return repo_path(rel); }
const std::string kModel = "convnext-fashion-mnist";



json image_input(const std::vector<std::string>& files) {
  std::vector<std::string> data;
  for (const auto& f : files) data.push_back(b64(read_file(f)));
  return {{"name", "image"}, {"datatype", "BYTES"}, {"shape", {static_cast<int64_t>(files.size())}}, {"data", data}};
}

Tensor output_tensor(const json& resp, const std::string& name) {
  for (const json& o : resp["outputs"])
    if (o["name"] == name && o["datatype"] == "FP32") return Tensor(o["shape"].get<Shape>(), o["data"].get<std::vector<float>>());
  return Tensor();
}

::testing::AssertionResult same_logits(const Tensor& got, const Tensor& want) { return close(got, want, 1e-5); }

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--model", repo("models/" + kModel), "--max-batch", "8", "--max-queue-delay-ms", "20"});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(), 0);
    delete server_;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << "the server did not start"; }
  static ServerProcess* server_;
};
ServerProcess* Serve::server_ = nullptr;

TEST_F(Serve, HealthAndMetadata) {
  auto c = server_->client();
  EXPECT_EQ(c->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);
  const auto meta = json::parse(c->Get("/v2")->body);
  EXPECT_EQ(meta["name"], "convnext");
  EXPECT_EQ(meta["version"], version());
  EXPECT_EQ(meta["extensions"], json({"classification", "binary_tensor_data"}));
  auto r = c->Get("/v2/models/" + kModel);
  ASSERT_EQ(r->status, 200);
  const auto m = json::parse(r->body);
  EXPECT_EQ(m["name"], kModel);
  EXPECT_EQ(m["platform"], "convnext");
  EXPECT_EQ(m["inputs"][0]["name"], "pixel_values");
  EXPECT_EQ(m["inputs"][0]["shape"], json({-1, 1, 32, 32}));
  EXPECT_EQ(m["inputs"][1]["name"], "image");
  EXPECT_EQ(m["inputs"][1]["datatype"], "BYTES");
  EXPECT_EQ(m["outputs"][0]["shape"], json({-1, 10}));
  EXPECT_EQ(m["outputs"][1]["name"], "pooler_output");
  EXPECT_EQ(m["outputs"][1]["shape"], json({-1, 192}));
  EXPECT_EQ(c->Get("/v2/models/" + kModel + "/ready")->status, 200);
}

TEST_F(Serve, ErrorsAreJsonWithTheirStatus) {
  auto c = server_->client();
  auto r = c->Get("/v2/models/nope");
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("nope"), std::string::npos);
  EXPECT_EQ(c->Get("/no/such/path")->status, 404);
  r = c->Get("/v2/models/" + kModel + "/infer");
  EXPECT_EQ(r->status, 405);
  EXPECT_TRUE(json::parse(r->body).contains("error"));
  EXPECT_EQ(c->Post("/v2/health/live", "", "text/plain")->status, 405);
  r = c->Post("/v2/models/" + kModel + "/infer", "{not json", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("malformed JSON"), std::string::npos);
  // A wrong shape, a wrong dtype, an unknown input or output.
  Tensor wrong({1, 3, 32, 32});
  r = c->Post("/v2/models/" + kModel + "/infer", json({{"inputs", {pixel_input(wrong)}}}).dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("[N, 1, 32, 32]"), std::string::npos) << r->body;
  json bad = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "INT8"}, {"shape", {1}}, {"data", {1}}}}}};
  EXPECT_EQ(c->Post("/v2/models/" + kModel + "/infer", bad.dump(), "application/json")->status, 400);
  bad = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", {1, 1, 32, 32}}, {"data", {1, 2}}}}}};
  r = c->Post("/v2/models/" + kModel + "/infer", bad.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("elements"), std::string::npos) << r->body;
  const Tensor px = ref().pixels_of({ref().images[0]});
  json req = {{"inputs", {pixel_input(px)}}, {"outputs", {{{"name", "probabilities"}}}}};
  EXPECT_EQ(c->Post("/v2/models/" + kModel + "/infer", req.dump(), "application/json")->status, 400);
  // An image that is not one.
  req = {{"inputs", {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {b64("not an image")}}}}}};
  r = c->Post("/v2/models/" + kModel + "/infer", req.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("image 0"), std::string::npos) << r->body;
}

TEST_F(Serve, PixelValuesGiveTheLogitsOfALoneForward) {
  auto c = server_->client();
  const Tensor px = ref().pixels_of({ref().images[0], ref().images[1], ref().images[2]});
  const json req = {{"id", "req-7"}, {"inputs", {pixel_input(px)}}};
  auto r = c->Post("/v2/models/" + kModel + "/infer", req.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  const json resp = json::parse(r->body);
  EXPECT_EQ(resp["model_name"], kModel);
  EXPECT_EQ(resp["id"], "req-7");
  EXPECT_TRUE(same_logits(output_tensor(resp, "logits"), ref().logits(px)));
  EXPECT_TRUE(close(output_tensor(resp, "pooler_output"), ref().clf.model().forward(px).pooler_output, 1e-5));
  // Nested data is read as flat.
  json nested = pixel_input(px);
  json rows = json::array();
  const auto flat = nested["data"].get<std::vector<float>>();
  for (int64_t n = 0; n < 3; ++n) rows.push_back(std::vector<float>(flat.begin() + n * 1024, flat.begin() + (n + 1) * 1024));
  nested["data"] = rows;
  r = c->Post("/v2/models/" + kModel + "/infer", json({{"inputs", {nested}}}).dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(same_logits(output_tensor(json::parse(r->body), "logits"), ref().logits(px)));
}

// A ConvNeXt V2 model (the v2_tiny4 fixture, served at its config's 224×224): the logits of a
// lone forward of the same model in this process (which the fixture tests hold to transformers').
TEST(ServeV2, PixelValuesGiveTheLogitsOfALoneForward) {
  REQUIRE_FIXTURE("v2_tiny4");
  ServerProcess server({"--model", "v2=" + fixture("v2_tiny4")});
  ASSERT_TRUE(server.ok()) << "the server did not start";
  Tensor px({2, 3, 224, 224});
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  for (int64_t i = 0; i < px.numel(); ++i) px[i] = d(rng);
  const auto model = ConvNextForImageClassification::from_pretrained(fixture("v2_tiny4"));
  auto c = server.client();
  auto r = c->Post("/v2/models/v2/infer", json({{"inputs", {pixel_input(px)}}}).dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(same_logits(output_tensor(json::parse(r->body), "logits"), model.forward(px).logits));
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(Serve, ImagesAreClassifiedAsClassifyDoes) {
  auto c = server_->client();
  const std::vector<std::string> files(ref().images.begin(), ref().images.begin() + 4);
  const json req = {{"inputs", {image_input(files)}},
                    {"outputs", {{{"name", "logits"}, {"parameters", {{"classification", 3}}}}, {{"name", "logits"}}}}};
  auto r = c->Post("/v2/models/" + kModel + "/infer", req.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  const json resp = json::parse(r->body);
  const json& cls = resp["outputs"][0];
  EXPECT_EQ(cls["datatype"], "BYTES");
  EXPECT_EQ(cls["shape"], json({4, 3}));
  const auto want = ref().clf.classify_files(files, ClassifyOptions{});
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string top = cls["data"][i * 3].get<std::string>();  // "score:index:label"
    const size_t a = top.find(':'), b = top.find(':', a + 1);
    EXPECT_EQ(top.substr(b + 1), want[i].predictions[0].label) << files[i];
    EXPECT_EQ(std::stoll(top.substr(a + 1, b - a - 1)), want[i].predictions[0].index);
  }
  EXPECT_TRUE(same_logits(output_tensor(resp, "logits"), ref().logits(ref().pixels_of(files))));
}

TEST_F(Serve, BinaryTensorDataBothWays) {
  auto c = server_->client();
  const Tensor px = ref().pixels_of({ref().images[3], ref().images[4]});
  const json header = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", px.shape()},
                                    {"parameters", {{"binary_data_size", px.numel() * 4}}}}}},
                       {"outputs", {{{"name", "logits"}, {"parameters", {{"binary_data", true}}}}}}};
  const std::string h = header.dump();
  std::string body = h;
  body.append(reinterpret_cast<const char*>(px.data()), static_cast<size_t>(px.numel()) * 4);
  httplib::Headers hs = {{"Inference-Header-Content-Length", std::to_string(h.size())}};
  auto r = c->Post("/v2/models/" + kModel + "/infer", hs, body, "application/octet-stream");
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->has_header("Inference-Header-Content-Length"));
  const size_t jl = std::stoul(r->get_header_value("Inference-Header-Content-Length"));
  const json resp = json::parse(r->body.substr(0, jl));
  ASSERT_EQ(resp["outputs"][0]["parameters"]["binary_data_size"].get<size_t>(), 2u * 10 * 4);
  ASSERT_EQ(r->body.size(), jl + 80);
  Tensor logits({2, 10});
  std::memcpy(logits.data(), r->body.data() + jl, 80);
  EXPECT_TRUE(same_logits(logits, ref().logits(px)));
  // Binary BYTES input: a 4-byte length before each encoded image.
  const std::string png = read_file(ref().images[5]);
  const json ih = {{"inputs", {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}},
                                {"parameters", {{"binary_data_size", png.size() + 4}}}}}}};
  const std::string ihs = ih.dump();
  const auto len = static_cast<uint32_t>(png.size());
  std::string body2 = ihs + std::string(reinterpret_cast<const char*>(&len), 4) + png;
  r = c->Post("/v2/models/" + kModel + "/infer", {{"Inference-Header-Content-Length", std::to_string(ihs.size())}}, body2,
              "application/octet-stream");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(same_logits(output_tensor(json::parse(r->body), "logits"), ref().logits(ref().pixels_of({ref().images[5]}))));
  // Truncated binary data, and a header length past the body.
  r = c->Post("/v2/models/" + kModel + "/infer", hs, body.substr(0, body.size() - 7), "application/octet-stream");
  EXPECT_EQ(r->status, 400);
  r = c->Post("/v2/models/" + kModel + "/infer", {{"Inference-Header-Content-Length", "999999"}}, h, "application/octet-stream");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("past the body"), std::string::npos) << r->body;
}

TEST_F(Serve, HuggingFaceEndpoint) {
  auto c = server_->client();
  const std::string& file = ref().images[6];
  const auto want = ref().clf.classify_files({file}, ClassifyOptions{})[0].predictions;
  for (const std::string& path : {"/models/" + kModel, std::string("/")}) {
    auto r = c->Post(path, read_file(file), "image/png");
    ASSERT_EQ(r->status, 200) << path << ": " << r->body;
    const json a = json::parse(r->body);
    ASSERT_EQ(a.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(a[i]["label"], want[i].label);
      EXPECT_NEAR(a[i]["score"].get<double>(), want[i].score, 1e-5);
    }
  }
  const json req = {{"inputs", b64(read_file(file))}, {"parameters", {{"top_k", 2}, {"function_to_apply", "none"}}}};
  auto r = c->Post("/models/" + kModel, req.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  const json a = json::parse(r->body);
  ASSERT_EQ(a.size(), 2u);
  const Tensor logits = ref().logits(ref().pixels_of({file}));
  EXPECT_NEAR(a[0]["score"].get<double>(), logits[want[0].index], 1e-4);  // "none": the logit itself
  EXPECT_EQ(c->Post("/models/" + kModel, json({{"inputs", 3}}).dump(), "application/json")->status, 400);
}

TEST_F(Serve, ConcurrentRequestsAreBatchedAndExact) {
  auto c = server_->client();
  const std::string before = c->Get("/metrics")->body;
  constexpr int kRequests = 64;
  std::vector<int> status(kRequests, 0), images(kRequests, 0);
  std::vector<std::string> mismatch(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i)
    threads.emplace_back([&, i] {
      const int n = 1 + i % 4;
      std::vector<std::string> files;
      for (int k = 0; k < n; ++k) files.push_back(ref().images[static_cast<size_t>((i + k) % 10)]);
      const Tensor px = ref().pixels_of(files);
      const json req = {{"inputs", {i % 2 ? image_input(files) : pixel_input(px)}}};
      auto cl = server_->client();
      auto r = cl->Post("/v2/models/" + kModel + "/infer", req.dump(), "application/json");
      status[static_cast<size_t>(i)] = r ? r->status : -1;
      if (!r) mismatch[static_cast<size_t>(i)] = "no answer: " + httplib::to_string(r.error());
      images[static_cast<size_t>(i)] = n;
      if (r && r->status == 200) {
        auto ok = same_logits(output_tensor(json::parse(r->body), "logits"), ref().logits(px));
        if (!ok) mismatch[static_cast<size_t>(i)] = ok.message();
      }
    });
  for (auto& t : threads) t.join();
  int sent_images = 0;
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(status[static_cast<size_t>(i)], 200) << "request " << i;
    EXPECT_EQ(mismatch[static_cast<size_t>(i)], "") << "request " << i;
    sent_images += images[static_cast<size_t>(i)];
  }
  const std::string after = c->Get("/metrics")->body;
  auto delta = [&](const char* name) { return metric(after, name, kModel) - metric(before, name, kModel); };
  EXPECT_EQ(delta("convnext_inference_request_success"), kRequests);
  EXPECT_EQ(delta("convnext_inference_count"), sent_images);
  EXPECT_LT(delta("convnext_inference_exec_count"), kRequests) << "no two requests shared a batch";
  EXPECT_GE(metric(after, "convnext_inference_queue_length", kModel), 0);
  EXPECT_NE(after.find("convnext_inference_batch_size_bucket{model=\"" + kModel + "\",le=\"8\"}"), std::string::npos);
}

TEST_F(Serve, TheWebPageIsSelfContained) {
  auto c = server_->client();
  auto r = c->Get("/");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find("<option value=\"" + kModel + "\">"), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos);   // nothing fetched from elsewhere
  EXPECT_EQ(r->body.find("https://"), std::string::npos);
  EXPECT_EQ(r->body.find("src=\"//"), std::string::npos);
}

}  // namespace
}  // namespace convnext::test
#endif

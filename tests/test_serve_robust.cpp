// `convnext serve` against bad clients: each test talks to a real server process (over HTTP, or
// over a raw socket where a client library would not send such bytes), checks the status and
// that the answer is one line of JSON with an "error", and then that the server still answers a
// correct request with the right logits and is ready. Limits: body size (413 from the declared
// length, the body unread), decompression bombs (400 naming the pixel limit), queue length (503
// with Retry-After), request time (504), chunked bodies (411); random bytes never get a 5xx nor
// bring the server down; SIGTERM drains and exits 0.
#ifdef CONVNEXT_HAVE_SERVE
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "convnext/convnext.h"
#include "serve_util.h"
#include "test_util.h"

namespace convnext::test {
namespace {

using nlohmann::json;
using Ms = std::chrono::milliseconds;

std::string repo(const std::string& rel) { return repo_path(rel); }
const std::string kModel = "convnext-fashion-mnist";
const std::string kInfer = "/v2/models/" + kModel + "/infer";



double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- what a correct answer is ----------------------------------------------------------------

std::string pixel_request(const Tensor& px) { return json({{"inputs", {pixel_input(px)}}}).dump(); }
json image_request(const std::string& encoded) {
  return {{"inputs", {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {b64(encoded)}}}}}};
}

Tensor output_logits(const std::string& body) {
  const json resp = json::parse(body);
  for (const json& o : resp["outputs"])
    if (o["name"] == "logits" && o["datatype"] == "FP32") return Tensor(o["shape"].get<Shape>(), o["data"].get<std::vector<float>>());
  return Tensor();
}

// The answer is `status` with one line of JSON {"error": "..."} that contains `needle`.
::testing::AssertionResult is_error(const httplib::Result& r, int status, const std::string& needle = "") {
  if (!r) return ::testing::AssertionFailure() << "no answer: " << httplib::to_string(r.error());
  if (r->status != status) return ::testing::AssertionFailure() << "status " << r->status << " (want " << status << "): " << r->body;
  if (r->body.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "not one line: " << r->body;
  json j;
  try {
    j = json::parse(r->body);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not JSON (" << e.what() << "): " << r->body;
  }
  if (!j.is_object() || j.size() != 1 || !j.contains("error") || !j["error"].is_string() || j["error"].get<std::string>().empty())
    return ::testing::AssertionFailure() << "not {\"error\": \"...\"}: " << r->body;
  if (j["error"].get<std::string>().find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << "the error does not mention '" << needle << "': " << r->body;
  return ::testing::AssertionSuccess();
}

// The server is up, ready, and answers a correct request with the logits of a lone forward.
void expect_still_serves(ServerProcess& server) {
  ASSERT_TRUE(server.alive()) << "the server died";
  auto c = server.client();
  auto ready = c->Get("/v2/health/ready");
  ASSERT_TRUE(ready) << httplib::to_string(ready.error());
  EXPECT_EQ(ready->status, 200);
  const Tensor px = ref().pixels_of({ref().images[0], ref().images[7]});
  auto r = c->Post(kInfer, pixel_request(px), "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(close(output_logits(r->body), ref().logits(px), 1e-5));
}

// ---- raw sockets, for what an HTTP client library would not send ------------------------------

int connect_local(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close first; what it answered is still read
    at += static_cast<size_t>(n);
  }
}

struct RawAnswer {
  bool connected = false;
  std::string text;                 // everything read
  std::vector<int> statuses;        // of every response in `text`
  std::string head, body;           // of the first response
  double seconds = 0;               // from connecting to the end of the first response
};

// Sends `bytes` on a new connection and reads the first response (status line, headers,
// Content-Length bytes of body), then whatever else comes within `grace`; at most `limit` in
// all. (The connection is not half-closed after sending: cpp-httplib does not answer a client
// it has seen shut its side, so such a test would see silence, not the server's answer.)
RawAnswer raw_exchange(int port, const std::string& bytes, Ms grace = Ms(0), Ms limit = Ms(5000)) {
  RawAnswer r;
  const auto t0 = std::chrono::steady_clock::now();
  const int fd = connect_local(port);
  if (fd < 0) return r;
  r.connected = true;
  send_all(fd, bytes);
  bool first_done = false;
  auto stop_at = t0 + limit;
  for (;;) {
    const size_t end = r.text.find("\r\n\r\n");
    if (!first_done && end != std::string::npos) {
      std::smatch m;
      const std::string head = r.text.substr(0, end);
      size_t length = 0;
      if (std::regex_search(head, m, std::regex("\r\n[Cc]ontent-[Ll]ength: *([0-9]+)"))) length = std::stoul(m[1].str());
      if (r.text.size() >= end + 4 + length) {
        first_done = true;
        r.seconds = seconds_since(t0);
        r.head = head;
        r.body = r.text.substr(end + 4, length);
        stop_at = std::min(stop_at, std::chrono::steady_clock::now() + grace);
      }
    }
    const auto left = std::chrono::duration_cast<Ms>(stop_at - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    r.text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!first_done) r.seconds = seconds_since(t0);
  const std::regex status_line("(^|\n)HTTP/1\\.[01] ([0-9]{3}) ");
  for (auto it = std::sregex_iterator(r.text.begin(), r.text.end(), status_line); it != std::sregex_iterator(); ++it)
    r.statuses.push_back(std::stoi((*it)[2].str()));
  return r;
}

// A RawAnswer's first response as an httplib-like check: status and one line of JSON error.
::testing::AssertionResult raw_is_error(const RawAnswer& a, int status, const std::string& needle = "") {
  if (!a.connected) return ::testing::AssertionFailure() << "could not connect";
  if (a.statuses.empty() || a.head.empty()) return ::testing::AssertionFailure() << "no complete answer: " << a.text;
  if (a.statuses.front() != status) return ::testing::AssertionFailure() << "status " << a.statuses.front() << ": " << a.text;
  json j;
  try {
    j = json::parse(a.body);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not JSON: " << a.body;
  }
  if (a.body.find('\n') != std::string::npos || !j.is_object() || !j.contains("error") || !j["error"].is_string())
    return ::testing::AssertionFailure() << "not one line of {\"error\": ...}: " << a.body;
  if (j["error"].get<std::string>().find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << "the error does not mention '" << needle << "': " << a.body;
  return ::testing::AssertionSuccess();
}

std::string post_head(const std::string& path, const std::string& extra_headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

// ---- PNG files built here: decompression bombs ------------------------------------------------

void put32(std::string& s, uint32_t v) {
  for (int k = 24; k >= 0; k -= 8) s.push_back(static_cast<char>((v >> k) & 0xff));
}
std::string png_chunk(const char* type, const std::string& data) {
  std::string c;
  put32(c, static_cast<uint32_t>(data.size()));
  const std::string td = std::string(type, 4) + data;
  c += td;
  put32(c, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()))));
  return c;
}
// zlib of `rows` copies of `row` (a scanline: filter byte, then pixels), streamed.
std::string zlib_rows(const std::string& row, uint64_t rows) {
  z_stream z{};
  deflateInit(&z, 6);
  const uint64_t per = std::max<uint64_t>(1, (uint64_t{1} << 20) / row.size());
  std::string block;
  for (uint64_t i = 0; i < per; ++i) block += row;
  std::string out;
  std::vector<unsigned char> buf(1 << 16);
  uint64_t left = rows;
  do {
    const uint64_t n = std::min(left, per);
    left -= n;
    z.next_in = reinterpret_cast<Bytef*>(block.data());
    z.avail_in = static_cast<uInt>(n * row.size());
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = buf.data();
      z.avail_out = static_cast<uInt>(buf.size());
      deflate(&z, flush);
      out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  } while (left > 0);
  deflateEnd(&z);
  return out;
}
// A PNG, 8 bits per sample, colour type 0 (grey) or 2 (RGB), with the given IDAT stream.
std::string png(uint32_t w, uint32_t h, uint8_t colour, const std::string& idat) {
  std::string ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr += {8, static_cast<char>(colour), 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}
// A complete, valid grey PNG of w x h, every pixel `v`.
std::string flat_grey_png(uint32_t w, uint32_t h, uint8_t v) {
  std::string row(1 + static_cast<size_t>(w), static_cast<char>(v));
  row[0] = 0;  // filter: none
  return png(w, h, 0, zlib_rows(row, h));
}

// ---- the tests --------------------------------------------------------------------------------

// One server for the tests that leave it as they found it: a 1 MiB body limit.
class ServeRobust : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--model", repo("models/" + kModel), "--max-body-mb", "1", "--max-batch", "8",
                                 "--max-queue-delay-ms", "5"});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(), 0);
    delete server_;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << "the server did not start"; }
  void TearDown() override { expect_still_serves(*server_); }
  static ServerProcess* server_;
};
ServerProcess* ServeRobust::server_ = nullptr;

TEST_F(ServeRobust, MalformedRequestsAre400) {
  auto c = server_->client();
  EXPECT_TRUE(is_error(c->Post(kInfer, "{\"inputs\": [", "application/json"), 400, "malformed JSON"));
  EXPECT_TRUE(is_error(c->Post(kInfer, "", "application/json"), 400, "malformed JSON"));
  EXPECT_TRUE(is_error(c->Post(kInfer, "[1, 2]", "application/json"), 400, "JSON object"));
  EXPECT_TRUE(is_error(c->Post(kInfer, "{\"inputs\": []}", "application/json"), 400, "inputs"));
  // Deep nesting must not overflow a stack.
  EXPECT_TRUE(is_error(c->Post(kInfer, std::string(500000, '['), "application/json"), 400, "malformed JSON"));
  // A wrong shape, wrong datatypes.
  EXPECT_TRUE(is_error(c->Post(kInfer, pixel_request(Tensor({1, 3, 32, 32})), "application/json"), 400, "[N, 1, 32, 32]"));
  EXPECT_TRUE(is_error(c->Post(kInfer, pixel_request(Tensor({1, 1, 32})), "application/json"), 400, "shape"));
  json req = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "INT8"}, {"shape", {1, 1, 32, 32}}, {"data", std::vector<int>(1024, 1)}}}}};
  EXPECT_TRUE(is_error(c->Post(kInfer, req.dump(), "application/json"), 400, "INT8"));
  req = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"abc"}}}}}};
  EXPECT_TRUE(is_error(c->Post(kInfer, req.dump(), "application/json"), 400, "FP32"));
  req = {{"inputs", {{{"name", "image"}, {"datatype", "FP32"}, {"shape", {1}}, {"data", {1.0}}}}}};
  EXPECT_TRUE(is_error(c->Post(kInfer, req.dump(), "application/json"), 400, "BYTES"));
  req = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", {1, 1, 32, 32}}, {"data", {"a"}}}}}};
  EXPECT_TRUE(is_error(c->Post(kInfer, req.dump(), "application/json"), 400, "numbers"));
  req = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", {-1, 1, 32, 32}}, {"data", {1.0}}}}}};
  EXPECT_TRUE(is_error(c->Post(kInfer, req.dump(), "application/json"), 400, ">= 0"));
  req = {{"inputs", {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", {int64_t{1} << 40, 1 << 20}}, {"data", {1.0}}}}}};
  EXPECT_TRUE(is_error(c->Post(kInfer, req.dump(), "application/json"), 400, "too large"));
  // Truncated binary data: binary_data_size larger than what follows the JSON.
  const Tensor px = ref().pixels_of({ref().images[1]});
  const std::string header = json({{"inputs", {{{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", px.shape()},
                                                {"parameters", {{"binary_data_size", px.numel() * 4}}}}}}}).dump();
  const std::string data(reinterpret_cast<const char*>(px.data()), static_cast<size_t>(px.numel()) * 4);
  const httplib::Headers ih = {{"Inference-Header-Content-Length", std::to_string(header.size())}};
  EXPECT_TRUE(is_error(c->Post(kInfer, ih, header + data.substr(0, 1000), "application/octet-stream"), 400, "past the body"));
  EXPECT_TRUE(is_error(c->Post(kInfer, ih, header, "application/octet-stream"), 400, "past the body"));
  EXPECT_TRUE(is_error(c->Post(kInfer, ih, header + data + "xyz", "application/octet-stream"), 400, "not claimed"));
  EXPECT_TRUE(is_error(c->Post(kInfer, {{"Inference-Header-Content-Length", "12abc"}}, header + data, "application/octet-stream"),
                       400, "Inference-Header-Content-Length"));
  EXPECT_TRUE(is_error(c->Post(kInfer, {{"Inference-Header-Content-Length", "99999999999999999999999"}}, header + data,
                               "application/octet-stream"),
                       400));
  // The same bytes whole are a correct request.
  auto r = c->Post(kInfer, ih, header + data, "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // A Content-Length that is not a number.
  EXPECT_TRUE(raw_is_error(raw_exchange(server_->port(), post_head(kInfer, "Content-Length: 12abc\r\n") + "{}"), 400,
                           "Content-Length"));
  EXPECT_TRUE(raw_is_error(raw_exchange(server_->port(), post_head(kInfer, "Content-Length: -1\r\n") + "{}"), 400,
                           "Content-Length"));
  // The Hugging Face endpoint.
  EXPECT_TRUE(is_error(c->Post("/models/" + kModel, "{\"inputs\": ", "application/json"), 400, "malformed JSON"));
  EXPECT_TRUE(is_error(c->Post("/models/" + kModel, json({{"inputs", "%%%"}}).dump(), "application/json"), 400, "base64"));
  EXPECT_TRUE(is_error(c->Post("/models/" + kModel, "GIF89a not really", "image/gif"), 400));
  EXPECT_TRUE(is_error(c->Post("/models/" + kModel, "", "image/png"), 400));
  EXPECT_TRUE(is_error(c->Post("/models/nope", "", "image/png"), 404, "nope"));
}

TEST_F(ServeRobust, AHugeDeclaredLengthIs413AtOnceWithoutReadingTheBody) {
  // 10 GB declared, nothing sent after the headers: the answer must not wait for the body.
  for (const std::string& path : {kInfer, "/models/" + kModel, std::string("/")}) {
    const RawAnswer a =
        raw_exchange(server_->port(), post_head(path, "Content-Type: application/json\r\nContent-Length: 10000000000\r\n"));
    EXPECT_TRUE(raw_is_error(a, 413, "max-body-mb")) << path;
    EXPECT_LT(a.seconds, 0.5) << path;
  }
  // With Expect: 100-continue the 413 comes instead of "100 Continue".
  RawAnswer a = raw_exchange(server_->port(),
                             post_head(kInfer, "Content-Length: 10000000000\r\nExpect: 100-continue\r\n"));
  EXPECT_TRUE(raw_is_error(a, 413, "max-body-mb"));
  EXPECT_LT(a.seconds, 0.5);
  // Some of the body sent already makes no difference.
  a = raw_exchange(server_->port(), post_head(kInfer, "Content-Length: 10000000000\r\n") + std::string(100000, 'x'));
  EXPECT_TRUE(raw_is_error(a, 413));
  EXPECT_LT(a.seconds, 0.5);
  // Just over --max-body-mb 1 (1 MiB): 413; exactly 1 MiB is read (and is not JSON).
  a = raw_exchange(server_->port(), post_head(kInfer, "Content-Length: 1048577\r\n"));
  EXPECT_TRUE(raw_is_error(a, 413, "1048577"));
  EXPECT_LT(a.seconds, 0.5);
  auto c = server_->client();
  EXPECT_TRUE(is_error(c->Post(kInfer, std::string(1 << 20, ' '), "application/json"), 400, "malformed JSON"));
  // A GET with a declared body over the limit is refused too.
  a = raw_exchange(server_->port(), "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n");
  EXPECT_TRUE(raw_is_error(a, 413));
}

TEST_F(ServeRobust, ChunkedBodiesAre411) {
  const std::string body = pixel_request(ref().pixels_of({ref().images[2]}));
  std::ostringstream chunked;
  chunked << std::hex << body.size() << "\r\n" << body << "\r\n0\r\n\r\n";
  for (const std::string& path : {kInfer, "/models/" + kModel}) {
    const RawAnswer a = raw_exchange(server_->port(), post_head(path, "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n") +
                                                          chunked.str());
    EXPECT_TRUE(raw_is_error(a, 411, "Content-Length")) << path;
    EXPECT_LT(a.seconds, 0.5);
  }
}

TEST_F(ServeRobust, DecompressionBombsAre400NamingThePixelLimit) {
  auto c = server_->client();
  // The header declares 100000 x 100000 RGB; a few bytes of pixel data follow.
  const std::string declared = png(100000, 100000, 2, zlib_rows(std::string(300001, '\0'), 1));
  // A complete, valid grey PNG of 10000 x 10000 = 1e8 pixels (over Pillow's 89478485), ~100 KB.
  const std::string valid = flat_grey_png(10000, 10000, 0);
  ASSERT_LT(valid.size(), 300000u);
  for (const std::string* bomb : {&declared, &valid}) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(is_error(c->Post(kInfer, image_request(*bomb).dump(), "application/json"), 400, "exceeds the limit of 89478485"));
    // Binary BYTES input.
    const std::string h = json({{"inputs", {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}},
                                             {"parameters", {{"binary_data_size", bomb->size() + 4}}}}}}}).dump();
    const auto len = static_cast<uint32_t>(bomb->size());
    EXPECT_TRUE(is_error(c->Post(kInfer, {{"Inference-Header-Content-Length", std::to_string(h.size())}},
                                 h + std::string(reinterpret_cast<const char*>(&len), 4) + *bomb, "application/octet-stream"),
                         400, "exceeds the limit of 89478485"));
    // The Hugging Face endpoint: the image as the body, and as JSON.
    EXPECT_TRUE(is_error(c->Post("/models/" + kModel, *bomb, "image/png"), 400, "exceeds the limit of 89478485"));
    EXPECT_TRUE(is_error(c->Post("/", json({{"inputs", b64(*bomb)}}).dump(), "application/json"), 400, "exceeds the limit"));
    EXPECT_LT(seconds_since(t0), 2.0) << "the bomb was decoded";
  }
  // Few pixels, but an extreme aspect ratio: 1 x 3000000 resizes (shortest edge to 32) to 32 x
  // 96000000, far more than the limit. Refused before resizing.
  for (const std::string& thin : {flat_grey_png(1, 3000000, 100), flat_grey_png(3000000, 1, 100)}) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(is_error(c->Post(kInfer, image_request(thin).dump(), "application/json"), 400, "limit of 89478485"));
    EXPECT_TRUE(is_error(c->Post("/models/" + kModel, thin, "image/png"), 400, "limit of 89478485"));
    EXPECT_LT(seconds_since(t0), 2.0) << "the thin image was resized";
  }
  // An image of a normal shape built the same way is fine (the PNG writer above is right).
  auto r = c->Post("/models/" + kModel, flat_grey_png(60, 40, 200), "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST(ServeRobustLimits, MaxPixelsRejectsAnOrdinaryImage) {
  ServerProcess server({"--model", repo("models/" + kModel), "--max-pixels", "500"});
  ASSERT_TRUE(server.ok());
  auto c = server.client();
  const std::string file = read_file(ref().images[0]);  // 28 x 28 = 784 pixels
  EXPECT_TRUE(is_error(c->Post(kInfer, image_request(file).dump(), "application/json"), 400, "exceeds the limit of 500"));
  EXPECT_TRUE(is_error(c->Post("/models/" + kModel, file, "image/png"), 400, "exceeds the limit of 500"));
  // 20 x 20 = 400 pixels is under it; it resizes to 32 x 32 = 1024 pixels, which is what the
  // model needs, not a bomb.
  auto r = c->Post("/models/" + kModel, flat_grey_png(20, 20, 30), "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // pixel_values are not images: no pixel limit.
  const Tensor px = ref().pixels_of({ref().images[3]});
  r = c->Post(kInfer, pixel_request(px), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(close(output_logits(r->body), ref().logits(px), 1e-5));
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServeRobust, RandomBytesGetA4xxAndTheServerStaysUp) {
  std::mt19937_64 rng(20240613);
  auto random_bytes = [&](size_t max_len) {
    std::string s(std::uniform_int_distribution<size_t>(0, max_len)(rng), '\0');
    const bool printable = rng() % 3 == 0;  // some look like text, with spaces and newlines
    for (char& ch : s) ch = static_cast<char>(printable ? " \r\n{}[]\":,0123456789abcdefxyzABC"[rng() % 32] : rng() & 0xff);
    return s;
  };
  std::vector<std::string> bad;
  // 200 random byte strings instead of an HTTP request; then 50 after a valid request line.
  for (int i = 0; i < 250; ++i) {
    // Ended by a blank line, so the server has a whole "request" to refuse without waiting.
    const std::string junk = random_bytes(4000) + "\r\n\r\n";
    const std::string sent = i < 200 ? junk : "POST " + kInfer + " HTTP/1.1\r\n" + junk;
    const RawAnswer a = raw_exchange(server_->port(), sent, /*grace=*/Ms(10), Ms(3000));
    if (a.statuses.empty()) bad.push_back("raw " + std::to_string(i) + ": no answer");
    if (!a.connected) bad.push_back("raw " + std::to_string(i) + ": could not connect");
    for (int s : a.statuses)
      if (s < 400 || s >= 500) bad.push_back("raw " + std::to_string(i) + ": status " + std::to_string(s));
    if (!a.statuses.empty() && a.statuses.front() == 400 && !raw_is_error(a, 400))
      bad.push_back("raw " + std::to_string(i) + ": " + raw_is_error(a, 400).message());
  }
  // 200 random bodies for each endpoint that reads one, with varying content types, and the
  // binary extension's header length now and then; then 200 corrupted PNG files.
  auto c = server_->client();
  const char* types[] = {"application/json", "application/octet-stream", "image/png", "image/jpeg", "text/plain"};
  const std::string good_png = read_file(ref().images[4]);
  for (int i = 0; i < 600; ++i) {
    std::string body;
    if (i < 400) {
      body = random_bytes(20000);
    } else {
      body = good_png;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < flips; ++k) body[rng() % body.size()] = static_cast<char>(rng() & 0xff);
      if (rng() % 4 == 0) body.resize(rng() % body.size());
    }
    const std::string type = types[rng() % 5];
    const bool v2 = i % 2 == 0;
    std::string what = v2 ? "infer " : "hf ";
    httplib::Result r = [&] {
      if (!v2) return c->Post("/models/" + kModel, body, type.c_str());
      httplib::Headers h;
      if (rng() % 3 == 0) h.emplace("Inference-Header-Content-Length", std::to_string(rng() % (body.size() + 10)));
      const std::string sent = i < 400 ? body : image_request(body).dump();
      return c->Post(kInfer, h, sent, i < 400 ? type.c_str() : "application/json");
    }();
    what += std::to_string(i) + " (" + type + ")";
    if (!r) bad.push_back(what + ": no answer: " + httplib::to_string(r.error()));
    else if (r->status != 200 && !is_error(r, 400)) bad.push_back(what + ": " + is_error(r, 400).message());
    else if (r->status == 200 && i < 400) bad.push_back(what + ": random bytes accepted?");
  }
  EXPECT_TRUE(bad.empty()) << bad.size() << " bad answers, the first: " << (bad.empty() ? "" : bad.front());
  EXPECT_TRUE(server_->alive());
}

// Requests that wait in the queue for `delay` (a batch of 16 that never fills).
std::vector<std::string> queued_args(const std::vector<std::string>& more) {
  std::vector<std::string> a = {"--model", repo("models/" + kModel), "--max-batch", "16"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Waits until `n` requests are queued for the model (/metrics says so).
bool wait_queued(ServerProcess& server, double n, Ms limit = Ms(5000)) {
  const auto t0 = std::chrono::steady_clock::now();
  auto c = server.client();
  while (seconds_since(t0) * 1000 < static_cast<double>(limit.count())) {
    auto r = c->Get("/metrics");
    if (r && metric(r->body, "convnext_inference_queue_length", kModel) == n) return true;
    std::this_thread::sleep_for(Ms(10));
  }
  return false;
}

TEST(ServeRobustLimits, AFullQueueIs503WithRetryAfter) {
  ServerProcess server(queued_args({"--max-queue", "1", "--max-queue-delay-ms", "2000"}));
  ASSERT_TRUE(server.ok());
  const Tensor px = ref().pixels_of({ref().images[5]});
  std::optional<httplib::Result> first;
  std::thread waiting([&] { first.emplace(server.client()->Post(kInfer, pixel_request(px), "application/json")); });
  ASSERT_TRUE(wait_queued(server, 1));
  auto c = server.client();
  auto r = c->Post(kInfer, pixel_request(px), "application/json");
  EXPECT_TRUE(is_error(r, 503, "full"));
  if (r) {
    EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  }
  r = c->Post("/models/" + kModel, read_file(ref().images[5]), "image/png");
  EXPECT_TRUE(is_error(r, 503, "full"));
  if (r) {
    EXPECT_TRUE(r->has_header("Retry-After"));
  }
  waiting.join();
  ASSERT_TRUE(*first) << httplib::to_string(first->error());
  ASSERT_EQ((*first)->status, 200) << (*first)->body;
  EXPECT_TRUE(close(output_logits((*first)->body), ref().logits(px), 1e-5));
  // The refusals are counted as failures; the queue is empty again.
  const std::string m = c->Get("/metrics")->body;
  EXPECT_EQ(metric(m, "convnext_inference_request_failure", kModel), 2);
  EXPECT_EQ(metric(m, "convnext_inference_request_success", kModel), 1);
  EXPECT_EQ(metric(m, "convnext_inference_queue_length", kModel), 0);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeRobustLimits, ARequestThatWaitsTooLongIs504) {
  ServerProcess server(queued_args({"--request-timeout-ms", "200", "--max-queue-delay-ms", "3000", "--max-queue", "2"}));
  ASSERT_TRUE(server.ok());
  auto c = server.client();
  const Tensor px = ref().pixels_of({ref().images[6]});
  for (int i = 0; i < 3; ++i) {  // more than --max-queue: timed-out requests do not keep their places
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c->Post(kInfer, pixel_request(px), "application/json");
    EXPECT_TRUE(is_error(r, 504, "timed out after 200 ms"));
    EXPECT_GT(seconds_since(t0), 0.15);
    EXPECT_LT(seconds_since(t0), 1.5);
  }
  // A request that fills a batch does not wait: answered.
  const Tensor full = ref().pixels_of(std::vector<std::string>(16, ref().images[6]));
  auto r = c->Post(kInfer, pixel_request(full), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(close(output_logits(r->body), ref().logits(full), 1e-5));
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeRobustLimits, SigtermFinishesTheAcceptedRequestsAndExitsZero) {
  ServerProcess server(queued_args({"--max-queue-delay-ms", "1500"}));
  ASSERT_TRUE(server.ok());
  constexpr int kRequests = 6;
  std::vector<std::optional<httplib::Result>> results(kRequests);
  std::vector<Tensor> sent(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    sent[static_cast<size_t>(i)] = ref().pixels_of({ref().images[static_cast<size_t>(i)]});
    threads.emplace_back([&, i] {
      results[static_cast<size_t>(i)].emplace(server.client()->Post(kInfer, pixel_request(sent[static_cast<size_t>(i)]), "application/json"));
    });
  }
  ASSERT_TRUE(wait_queued(server, kRequests));
  // A connection accepted before the signal whose request comes after it: 503 with Retry-After.
  const int late = connect_local(server.port());
  ASSERT_GE(late, 0);
  std::this_thread::sleep_for(Ms(100));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  // New connections are refused at once, while the queued requests still wait.
  bool refused = false;
  while (!refused && seconds_since(t0) < 1.0) {
    const int fd = connect_local(server.port());
    if (fd < 0) refused = true;
    else ::close(fd);
    if (!refused) std::this_thread::sleep_for(Ms(10));
  }
  EXPECT_TRUE(refused) << "still accepting connections " << seconds_since(t0) << " s after SIGTERM";
  const std::string body = pixel_request(sent[0]);
  send_all(late, post_head(kInfer, "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n") + body);
  std::string answer;
  char buf[4096];
  pollfd p{late, POLLIN, 0};
  while (poll(&p, 1, 5000) > 0) {
    const ssize_t n = recv(late, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer.find("\r\n\r\n") != std::string::npos && answer.find("}", answer.find("\r\n\r\n")) != std::string::npos) break;
  }
  ::close(late);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("{\"error\":"), std::string::npos) << answer;

  EXPECT_EQ(server.wait_exit(std::chrono::seconds(30)), 0);
  const double exit_s = seconds_since(t0);
  EXPECT_LT(exit_s, 30.0);
  for (auto& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    const httplib::Result& r = *results[static_cast<size_t>(i)];
    ASSERT_TRUE(r) << "request " << i << ": " << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 200) << "request " << i << ": " << r->body;
    EXPECT_TRUE(close(output_logits(r->body), ref().logits(sent[static_cast<size_t>(i)]), 1e-5)) << "request " << i;
  }
  EXPECT_LT(connect_local(server.port()), 0) << "the port still accepts";
  std::printf("SIGTERM to exit: %.2f s\n", exit_s);
}

// Many clients connecting at once are all answered: cpp-httplib listens with a backlog of 5,
// and a loaded machine then dropped or reset connections (the kernel's SYN cookies).
TEST_F(ServeRobust, ABurstOfConnectionsIsAnswered) {
  // The backlog as the kernel reports it (ss prints it as Send-Q of a listening socket).
  const std::string cmd = "ss -Hltn 'sport = :" + std::to_string(server_->port()) + "' 2>/dev/null";
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char line[512] = {0};
    const bool got = std::fgets(line, sizeof line, p) != nullptr;
    pclose(p);
    std::istringstream in(line);
    std::string state;
    long recv_q = -1, backlog = -1;
    if (got && (in >> state >> recv_q >> backlog) && state == "LISTEN") {
      EXPECT_GE(backlog, 128) << line;
    } else {
      std::printf("(no ss: the listen backlog is not checked)\n");
    }
  }
  constexpr int kClients = 256;
  std::vector<int> status(kClients, 0);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      const RawAnswer a = raw_exchange(server_->port(), "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n", Ms(0), Ms(20000));
      status[static_cast<size_t>(i)] = a.statuses.empty() ? -1 : a.statuses.front();
    });
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::count(status.begin(), status.end(), 200), kClients);
}

// A second server on a port in use fails to start (cpp-httplib's SO_REUSEPORT let it share it).
TEST_F(ServeRobust, APortInUseIsAnError) {
  const std::string cmd = "timeout 20 " + std::string(CONVNEXT_CLI) + " serve --model " + repo("models/" + kModel) +
                          " --port " + std::to_string(server_->port()) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int st = pclose(p);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << out;
  EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + std::to_string(server_->port())), std::string::npos) << out;
  EXPECT_EQ(out.find("listening on"), std::string::npos) << out;
}

// The wait for a batch to fill is made while it can pay: a lone request on a fresh server waits
// --max-queue-delay-ms; once such a wait saw no one come, lone requests run at once; requests
// that overlap are batched again, and the next lone request waits again.
TEST(ServeBatching, AWaitInVainIsNotRepeated) {
  ServerProcess server(queued_args({"--max-queue-delay-ms", "1000"}));
  ASSERT_TRUE(server.ok());
  auto c = server.client();
  const Tensor px = ref().pixels_of({ref().images[8]});
  auto timed = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c->Post(kInfer, pixel_request(px), "application/json");
    EXPECT_TRUE(r && r->status == 200);
    return seconds_since(t0);
  };
  EXPECT_GT(timed(), 0.9) << "a lone request on a fresh server waits for company";
  EXPECT_LT(timed(), 0.5) << "the wait was in vain: the next lone request runs at once";
  EXPECT_LT(timed(), 0.5);
  const std::string before = c->Get("/metrics")->body;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      auto r = server.client()->Post(kInfer, pixel_request(px), "application/json");
      if (r && r->status == 200 && close(output_logits(r->body), ref().logits(px), 1e-5)) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
  const std::string after = c->Get("/metrics")->body;
  EXPECT_LT(metric(after, "convnext_inference_exec_count", kModel) - metric(before, "convnext_inference_exec_count", kModel), 8)
      << "overlapping requests were not batched";
  EXPECT_GT(timed(), 0.9) << "after overlapping requests, a lone one waits again";
  EXPECT_LT(timed(), 0.5);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeRobustLimits, SigintExitsZero) {
  ServerProcess server({"--model", repo("models/" + kModel)});
  ASSERT_TRUE(server.ok());
  expect_still_serves(server);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(server.stop(SIGINT), 0);
  EXPECT_LT(seconds_since(t0), 30.0);
  EXPECT_LT(connect_local(server.port()), 0);
}

}  // namespace
}  // namespace convnext::test
#endif

// Starting `convnext serve` from tests: the real binary on a free port, talked to over HTTP.
#pragma once
#ifdef CONVNEXT_HAVE_SERVE
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "convnext/convnext.h"

namespace convnext::test {

class ServerProcess {
 public:
  // Starts `convnext serve ARGS --port 0` and waits for its "listening on http://HOST:PORT" line.
  explicit ServerProcess(const std::vector<std::string>& args) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<std::string> all = {CONVNEXT_CLI, "serve", "--port", "0"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = fdopen(out[0], "r");
    char line[512];
    if (out_ && std::fgets(line, sizeof line, out_)) {
      const std::string s = line;
      const std::string tag = "listening on http://";
      if (s.rfind(tag, 0) == 0) {
        const std::string hostport = s.substr(tag.size());
        const size_t colon = hostport.rfind(':');
        host_ = hostport.substr(0, colon);
        port_ = std::stoi(hostport.substr(colon + 1));
      }
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && !stopped_) stop();
    if (out_) std::fclose(out_);
  }
  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>(host_, port_);
    c->set_read_timeout(60, 0);
    c->set_write_timeout(60, 0);
    return c;
  }
  // Sends `sig` and waits for the exit; returns the exit status (-1: killed by a signal or a
  // timeout of 40 s, after which the process is killed).
  int stop(int sig = SIGTERM) {
    kill(pid_, sig);
    return wait_exit();
  }
  // Waits for the process to exit (after a signal sent elsewhere); the same status as stop().
  int wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(40)) {
    stopped_ = true;
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    return -1;
  }
  // The process is still running (when it has exited, it is reaped and marked stopped).
  bool alive() {
    if (pid_ <= 0 || stopped_) return false;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == 0) return true;
    stopped_ = true;
    return false;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string host_;
  int port_ = 0;
  bool stopped_ = false;
};

inline std::string repo_path(const std::string& rel) { return std::string(CONVNEXT_SOURCE_DIR) + "/" + rel; }

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Base64 of bytes, written here independently of src/serve/base64.cpp (which the server uses), so
// the tests do not check the server's encoder against itself.
inline std::string b64(const std::string& s) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    const uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    for (int k = 18; k >= 0; k -= 6) o.push_back(a[(v >> k) & 63]);
  }
  if (i < s.size()) {
    const bool two = i + 1 < s.size();
    const uint32_t v = (uint8_t(s[i]) << 16) | (two ? uint8_t(s[i + 1]) << 8 : 0);
    o += {a[(v >> 18) & 63], a[(v >> 12) & 63], two ? a[(v >> 6) & 63] : '=', '='};
  }
  return o;
}

// The shipped Fashion-MNIST classifier, run in the test's own process: what every answer of a
// server started on it must equal (a lone forward; classify's preprocessing).
struct Reference {
  ImageClassifier clf = ImageClassifier::from_pretrained(repo_path("models/convnext-fashion-mnist"));
  std::vector<std::string> images = list_image_files({repo_path("examples/images")});
  Tensor pixels_of(const std::vector<std::string>& files) const {
    return clf.processor().preprocess_files(files, {}, clf.processor().channels_for(clf.config().num_channels));
  }
  Tensor logits(const Tensor& px) const { return clf.model().forward(px).logits; }
};
inline const Reference& ref() {
  static const Reference r;
  return r;
}

// A KServe V2 input of FP32 pixel_values, the data flat.
inline nlohmann::json pixel_input(const Tensor& px) {
  return {{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", px.shape()},
          {"data", std::vector<float>(px.data(), px.data() + px.numel())}};
}

// A metric's value for a model in /metrics text (-1 when absent).
inline double metric(const std::string& text, const std::string& name, const std::string& model) {
  std::istringstream in(text);
  std::string line;
  const std::string key = name + "{model=\"" + model + "\"} ";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size()));
  return -1;
}

}  // namespace convnext::test
#endif

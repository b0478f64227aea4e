#include "io/hub_download.h"

#include "io/json_file.h"

#if CONVNEXT_HAVE_CURL
#include <curl/curl.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "convnext/error.h"
#include "convnext/version.h"
#include "io/hub_cache.h"

namespace convnext::io {

namespace fs = std::filesystem;

// ---- SHA-256 -----------------------------------------------------------------------------------

namespace {
constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
}  // namespace

Sha256::Sha256()
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::block(const unsigned char* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) | p[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
}

void Sha256::update(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += n;
  if (buf_len_) {
    const size_t take = std::min(n, 64 - buf_len_);
    std::memcpy(buf_ + buf_len_, p, take);
    buf_len_ += take, p += take, n -= take;
    if (buf_len_ < 64) return;
    block(buf_);
    buf_len_ = 0;
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  std::memcpy(buf_, p, n);
  buf_len_ = n;
}

std::string Sha256::hex_digest() {
  const uint64_t bits = total_ * 8;
  const unsigned char pad = 0x80, zero = 0;
  update(&pad, 1);
  while (buf_len_ != 56) update(&zero, 1);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
  update(len, 8);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h_)
    for (int s = 28; s >= 0; s -= 4) out += hex[(v >> s) & 15];
  return out;
}

std::string sha256_hex(const void* data, size_t n) {
  Sha256 s;
  s.update(data, n);
  return s.hex_digest();
}

std::string sha256_hex_of_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  Sha256 s;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    s.update(buf.data(), static_cast<size_t>(f.gcount()));
  }
  return s.hex_digest();
}

#if CONVNEXT_HAVE_CURL
// ---- HTTP ----------------------------------------------------------------------------------------

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "";
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string resolve_token(const HubDownloadOptions& o) {
  if (!o.token.empty()) return o.token;
  if (std::string t = env("HF_TOKEN"); !t.empty()) return t;
  if (std::string t = env("HUGGING_FACE_HUB_TOKEN"); !t.empty()) return t;
  fs::path file;
  if (std::string p = env("HF_TOKEN_PATH"); !p.empty()) file = p;
  else if (std::string h = env("HF_HOME"); !h.empty()) file = fs::path(h) / "token";
  else file = fs::path(env("HOME").empty() ? "/root" : env("HOME")) / ".cache" / "huggingface" / "token";
  std::string t;
  if (std::ifstream f(file); f) std::getline(f, t);
  return trim(t);
}

// "scheme://host[:port]" of an absolute URL, and the bare host.
bool split_origin(const std::string& url, std::string* scheme, std::string* origin, std::string* host) {
  const size_t p = url.find("://");
  if (p == std::string::npos) return false;
  *scheme = lower(url.substr(0, p));
  const size_t end = url.find_first_of("/?#", p + 3);
  *origin = url.substr(0, end);
  std::string hp = url.substr(p + 3, end == std::string::npos ? std::string::npos : end - p - 3);
  if (const size_t at = hp.rfind('@'); at != std::string::npos) hp = hp.substr(at + 1);
  if (!hp.empty() && hp[0] == '[') *host = hp.substr(0, hp.find(']') + 1);
  else *host = hp.substr(0, hp.find(':'));
  *host = lower(*host);
  return !host->empty();
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// Only https, or plain http to this machine (a local mirror, the tests' fake hub).
void check_url(const std::string& url) {
  std::string scheme, origin, host;
  if (!split_origin(url, &scheme, &origin, &host)) throw Error("not an absolute URL: " + url);
  if (scheme == "https") return;
  if (scheme == "http" && is_loopback(host)) return;
  throw Error("refusing " + url + ": only https (or plain http to 127.0.0.1 / localhost) is used");
}

std::string join_url(const std::string& base, const std::string& location) {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) return location;
  std::string scheme, origin, host;
  split_origin(base, &scheme, &origin, &host);
  if (!location.empty() && location[0] == '/') return origin + location;
  const std::string path = base.substr(0, base.find_first_of("?#", origin.size()));
  return path.substr(0, path.rfind('/') + 1) + location;
}

std::string escape_path(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || std::strchr("-._~/", c)) out += static_cast<char>(c);
    else out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

// A name that is safe as one path component (commit hashes and ETags come from the server).
bool safe_component(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

// A repository file name: relative, no "..", no empty components.
bool safe_filename(const std::string& f) {
  if (f.empty() || f[0] == '/' || f.find('\\') != std::string::npos) return false;
  size_t start = 0;
  while (true) {
    const size_t slash = f.find('/', start);
    const std::string part = f.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::string strip_etag(std::string e) {
  e = trim(e);
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

bool is_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Headers {
  long status = 0;
  std::map<std::string, std::string> h;  // lower-case names, of the last response
  std::string get(const std::string& k) const {
    auto it = h.find(k);
    return it == h.end() ? "" : it->second;
  }
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* hd = static_cast<Headers*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect): start over
    hd->h.clear();
    const size_t sp = line.find(' ');
    hd->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
  } else if (const size_t colon = line.find(':'); colon != std::string::npos) {
    hd->h[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * n;
}

struct Curl {
  CURL* c;
  curl_slist* headers = nullptr;
  Curl() : c((curl_global(), curl_easy_init())) {
    if (!c) throw Error("libcurl: cannot create a handle");
  }
  ~Curl() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
  }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;

  void setup(const std::string& url, const std::string& token, bool loopback_http) {
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, loopback_http ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, loopback_http ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a stalled transfer (no byte for 60 s) fails and is retried
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, (std::string("convnext/") + version() + "; libcurl").c_str());  // copied
    headers = curl_slist_append(headers, "Accept-Encoding: identity");
    if (!token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  }
};

bool loopback_http_url(const std::string& url) {
  std::string scheme, origin, host;
  return split_origin(url, &scheme, &origin, &host) && scheme == "http" && is_loopback(host);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

struct Sink {
  CURL* c = nullptr;
  std::string path;
  uint64_t offset = 0;  // bytes already on disk (asked for with Range)
  Headers* hd = nullptr;
  FILE* f = nullptr;
  bool decided = false, writing = false, bad_range = false;
  std::string error_body;
  // progress
  bool progress = false;
  std::string name;
  uint64_t expected = 0;
  std::chrono::steady_clock::time_point start, last;
  bool drawn = false, drawn_done = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t bytes = size * n;
  if (!s->decided) {
    s->decided = true;
    long code = 0;
    curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &code);
    if (code == 206) {
      // "bytes START-END/TOTAL": it must continue where the partial file ends.
      const std::string cr = s->hd->get("content-range");
      const size_t sp = cr.find(' ');
      const uint64_t startb = sp == std::string::npos ? ~0ull : std::strtoull(cr.c_str() + sp + 1, nullptr, 10);
      if (startb != s->offset) {
        s->bad_range = true;
        return 0;  // abort; the caller starts over from byte 0
      }
      s->f = std::fopen(s->path.c_str(), "ab");
    } else if (code == 200) {
      s->offset = 0;  // the server sent the whole file (no Range support): start over
      s->f = std::fopen(s->path.c_str(), "wb");
    } else {
      s->error_body.append(data, std::min<size_t>(bytes, 500));
      return bytes;
    }
    if (!s->f) return 0;
    s->writing = true;
  }
  if (!s->writing) {
    if (s->error_body.size() < 500) s->error_body.append(data, std::min<size_t>(bytes, 500));
    return bytes;
  }
  return std::fwrite(data, 1, bytes, s->f);
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* s = static_cast<Sink*>(user);
  if (!s->progress) return 0;
  const auto now = std::chrono::steady_clock::now();
  const bool done = s->expected && s->offset + static_cast<uint64_t>(dlnow) >= s->expected;
  if (done ? s->drawn_done : now - s->last < std::chrono::milliseconds(100)) return 0;
  s->drawn_done = done;
  s->last = now;
  const uint64_t have = s->offset + static_cast<uint64_t>(dlnow);
  const uint64_t total = s->expected ? s->expected : s->offset + static_cast<uint64_t>(dltotal);
  const double secs = std::chrono::duration<double>(now - s->start).count();
  const double speed = secs > 0 ? static_cast<double>(dlnow) / secs : 0;
  const int pct = total ? static_cast<int>(100.0 * static_cast<double>(have) / static_cast<double>(total)) : 0;
  const int width = 24, fill = total ? std::min(width, static_cast<int>(width * static_cast<double>(have) / total)) : 0;
  std::string bar(fill, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%-28.28s [%s] %3d%% %10s / %-10s %10s/s  ", s->name.c_str(), bar.c_str(), pct,
               human_bytes(static_cast<double>(have)).c_str(), human_bytes(static_cast<double>(total)).c_str(),
               human_bytes(speed).c_str());
  std::fflush(stderr);
  s->drawn = true;
  return 0;
}

struct Meta {
  std::string commit, etag, download_url;
  uint64_t size = 0;
  bool size_known = false;
};

// The hub's reply to 401/403/404 and other failures, as one line.
[[noreturn]] void http_failure(const std::string& repo_id, const std::string& filename, const std::string& revision,
                               const std::string& url, long status, const Headers& hd, bool have_token) {
  const std::string code = hd.get("x-error-code");
  const std::string where = repo_id + ": " + filename + " (" + url + "): ";
  if (status == 401)
    throw Error(where + "401 Unauthorized: the repository is private or gated, or does not exist; " +
                (have_token ? "the token (HF_TOKEN) was refused" : "set HF_TOKEN to a token with access"));
  if (status == 403)
    throw Error(where + "403 Forbidden: the token has no access to this repository (for a gated model, accept its "
                        "conditions on the hub)");
  if (status == 404) {
    if (code == "RepoNotFound") throw Error(where + "404: repository " + repo_id + " not found");
    if (code == "RevisionNotFound") throw Error(where + "404: revision '" + revision + "' not found");
    throw Error(where + "404: not found at revision '" + revision + "'");
  }
  throw Error(where + "HTTP " + std::to_string(status) + (code.empty() ? "" : " (" + code + ")"));
}

// HEAD the resolve URL (following only the hub's own relative redirects, e.g. a renamed repository)
// to learn the commit, the blob name, the size and where the bytes are. Returns false for an
// optional file that is missing (404).
bool head_metadata(const std::string& repo_id, const std::string& filename, const std::string& revision,
                   const std::string& endpoint, const std::string& token, int attempts, bool optional, Meta* m) {
  std::string url = endpoint + "/" + repo_id + "/resolve/" + escape_path(revision) + "/" + escape_path(filename);
  for (int hop = 0; hop < 6; ++hop) {
    check_url(url);
    Headers hd;
    CURLcode rc = CURLE_OK;
    char err[CURL_ERROR_SIZE] = "";
    for (int a = 0; a < attempts; ++a) {
      Curl c;
      c.setup(url, token, loopback_http_url(url));
      curl_easy_setopt(c.c, CURLOPT_NOBODY, 1L);
      curl_easy_setopt(c.c, CURLOPT_FOLLOWLOCATION, 0L);
      curl_easy_setopt(c.c, CURLOPT_TIMEOUT, 60L);
      curl_easy_setopt(c.c, CURLOPT_HEADERFUNCTION, on_header);
      curl_easy_setopt(c.c, CURLOPT_HEADERDATA, &hd);
      curl_easy_setopt(c.c, CURLOPT_ERRORBUFFER, err);
      hd = Headers{};
      rc = curl_easy_perform(c.c);
      if (rc == CURLE_OK) {
        curl_easy_getinfo(c.c, CURLINFO_RESPONSE_CODE, &hd.status);
        if (hd.status < 500 || a + 1 == attempts) break;  // a 5xx is retried too
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(a, 4)));
    }
    if (rc != CURLE_OK)
      throw Error(repo_id + ": " + filename + ": cannot reach " + url + ": " + (*err ? err : curl_easy_strerror(rc)));
    const long st = hd.status;
    if (st == 404 && optional) return false;
    if (st >= 300 && st < 400) {
      const std::string loc = hd.get("location");
      if (loc.empty()) throw Error(repo_id + ": " + filename + ": HTTP " + std::to_string(st) + " without a Location");
      if (hd.get("x-repo-commit").empty()) {  // not the file itself: a renamed repository etc.
        url = join_url(url, loc);
        continue;
      }
      m->download_url = join_url(url, loc);
    } else if (st == 200) {
      m->download_url = url;
    } else {
      http_failure(repo_id, filename, revision, url, st, hd, !token.empty());
    }
    m->commit = hd.get("x-repo-commit");
    m->etag = strip_etag(!hd.get("x-linked-etag").empty() ? hd.get("x-linked-etag") : hd.get("etag"));
    const std::string size = !hd.get("x-linked-size").empty() ? hd.get("x-linked-size") : hd.get("content-length");
    m->size_known = !size.empty();
    m->size = m->size_known ? std::strtoull(size.c_str(), nullptr, 10) : 0;
    if (m->commit.empty() || m->etag.empty())
      throw Error(repo_id + ": " + filename + ": the server (" + url +
                  ") sent no X-Repo-Commit / ETag header; is HF_ENDPOINT a Hugging Face hub?");
    if (!safe_component(m->commit) || !safe_component(m->etag))
      throw Error(repo_id + ": " + filename + ": the server sent an unusable commit or ETag");
    check_url(m->download_url);
    return true;
  }
  throw Error(repo_id + ": " + filename + ": too many redirects from " + endpoint);
}

uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto s = fs::file_size(p, ec);
  return ec ? 0 : s;
}

// GET the bytes into `incomplete`, resuming after dropped connections. Returns when the file has
// the expected size (when known) or the server ended the body normally.
void fetch_blob(const std::string& repo_id, const std::string& filename, const Meta& m, const std::string& endpoint,
                const std::string& token, const fs::path& incomplete, const HubDownloadOptions& o) {
  // The token goes only to the hub itself, not to the CDN it redirects to (signed URLs).
  std::string s1, o1, h1, s2, o2, h2;
  split_origin(endpoint, &s1, &o1, &h1);
  split_origin(m.download_url, &s2, &o2, &h2);
  const std::string tok = lower(o1) == lower(o2) ? token : "";
  const bool progress = o.progress && ::isatty(2);
  std::string last_error;
  for (int attempt = 0; attempt < std::max(1, o.max_attempts); ++attempt) {
    uint64_t have = file_size_or_zero(incomplete);
    if (m.size_known && have > m.size) {
      fs::remove(incomplete);
      have = 0;
    }
    if (m.size_known && have == m.size && (have > 0 || fs::exists(incomplete))) return;
    Curl c;
    c.setup(m.download_url, tok, loopback_http_url(m.download_url));
    Headers hd;
    Sink sink;
    sink.c = c.c;
    sink.path = incomplete.string();
    sink.offset = have;
    sink.hd = &hd;
    sink.progress = progress;
    sink.name = filename;
    sink.expected = m.size_known ? m.size : 0;
    sink.start = std::chrono::steady_clock::now();
    sink.last = sink.start - std::chrono::seconds(1);
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c.c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c.c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c.c, CURLOPT_HEADERDATA, &hd);
    curl_easy_setopt(c.c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c.c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c.c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c.c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c.c, CURLOPT_XFERINFODATA, &sink);
    curl_easy_setopt(c.c, CURLOPT_ERRORBUFFER, err);
    const std::string range = std::to_string(have) + "-";
    if (have > 0) curl_easy_setopt(c.c, CURLOPT_RANGE, range.c_str());
    const CURLcode rc = curl_easy_perform(c.c);
    if (sink.f) std::fclose(sink.f);
    if (sink.drawn) std::fputc('\n', stderr);
    long status = 0;
    curl_easy_getinfo(c.c, CURLINFO_RESPONSE_CODE, &status);
    if (sink.bad_range) {  // the server resumed somewhere else: start over
      fs::remove(incomplete);
      last_error = "the server answered the Range request with the wrong bytes";
      continue;
    }
    if (rc == CURLE_OK && status == 416) {  // nothing left to send for that range: start over
      fs::remove(incomplete);
      last_error = "HTTP 416 for the range " + range;
      continue;
    }
    if (rc == CURLE_OK && status != 200 && status != 206) {
      if (status >= 500) {
        last_error = "HTTP " + std::to_string(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(attempt, 4)));
        continue;
      }
      http_failure(repo_id, filename, o.revision, m.download_url, status, hd, !tok.empty());
    }
    if (rc == CURLE_OK) {
      const uint64_t now = file_size_or_zero(incomplete);
      if (!m.size_known || now == m.size) {
        if (!fs::exists(incomplete)) std::ofstream(incomplete, std::ios::binary);  // an empty file
        return;
      }
      last_error = "got " + std::to_string(now) + " of " + std::to_string(m.size) + " bytes";
      continue;
    }
    if (rc == CURLE_WRITE_ERROR && !sink.bad_range)
      throw Error(repo_id + ": " + filename + ": cannot write " + incomplete.string());
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_TOO_MANY_REDIRECTS || rc == CURLE_URL_MALFORMAT)
      throw Error(repo_id + ": " + filename + ": " + (*err ? err : curl_easy_strerror(rc)) + " (" + m.download_url + ")");
    // A dropped connection, a timeout, a reset: try again from where the file ends.
    last_error = *err ? err : curl_easy_strerror(rc);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(attempt, 4)));
  }
  throw Error(repo_id + ": " + filename + ": download failed after " + std::to_string(std::max(1, o.max_attempts)) +
              " attempts: " + last_error + " (the partial file " + incomplete.string() + " is kept for the next try)");
}

void write_ref(const fs::path& repo, const std::string& revision, const std::string& commit) {
  if (revision == commit) return;
  const fs::path ref = repo / "refs" / revision;
  fs::create_directories(ref.parent_path());
  std::string current;
  if (std::ifstream f(ref); f) std::getline(f, current);
  if (trim(current) == commit) return;
  const fs::path tmp = ref.string() + ".tmp" + std::to_string(::getpid());
  std::ofstream(tmp) << commit;
  fs::rename(tmp, ref);
}

std::string endpoint_of(const HubDownloadOptions& o) {
  std::string e = !o.endpoint.empty() ? o.endpoint : env("HF_ENDPOINT");
  if (e.empty()) e = "https://huggingface.co";
  while (!e.empty() && e.back() == '/') e.pop_back();
  check_url(e + "/");
  return e;
}

bool valid_repo_id(const std::string& id) {
  const size_t slash = id.find('/');
  if (slash == std::string::npos) return safe_component(id);  // legacy ids without an org ("gpt2")
  return id.find('/', slash + 1) == std::string::npos && safe_component(id.substr(0, slash)) &&
         safe_component(id.substr(slash + 1));
}

}  // namespace

bool hub_download_file(const std::string& repo_id, const std::string& filename, const HubDownloadOptions& o,
                       bool optional, HubFile* out, std::string* commit_out) {
  if (!valid_repo_id(repo_id)) throw Error("'" + repo_id + "' is not a hub repository id (org/name)");
  if (!safe_filename(filename)) throw Error(repo_id + ": refusing the file name '" + filename + "'");
  if (o.revision.empty() || o.revision.find("..") != std::string::npos || o.revision[0] == '/')
    throw Error(repo_id + ": bad revision '" + o.revision + "'");
  const std::string endpoint = endpoint_of(o);
  const std::string token = resolve_token(o);
  Meta m;
  if (!head_metadata(repo_id, filename, o.revision, endpoint, token, std::max(1, o.max_attempts), optional, &m))
    return false;

  std::string id_dir = "models--" + repo_id;  // models--org--name
  if (const size_t slash = id_dir.find('/'); slash != std::string::npos) id_dir.replace(slash, 1, "--");
  const fs::path repo = fs::path(o.cache_dir.empty() ? hub_cache_dir() : o.cache_dir) / id_dir;
  const fs::path blob = repo / "blobs" / m.etag;
  const fs::path pointer = repo / "snapshots" / m.commit / filename;
  fs::create_directories(repo / "blobs");

  bool downloaded = false;
  std::error_code ec;
  if (!fs::exists(blob, ec)) {
    const fs::path incomplete = blob.string() + ".incomplete";
    fetch_blob(repo_id, filename, m, endpoint, token, incomplete, o);
    const uint64_t got = file_size_or_zero(incomplete);
    if (m.size_known && got != m.size) {
      fs::remove(incomplete, ec);
      throw Error(repo_id + ": " + filename + ": got " + std::to_string(got) + " bytes, the hub says " +
                  std::to_string(m.size));
    }
    if (is_sha256(m.etag)) {  // LFS files: the ETag is the sha256 of the content
      const std::string sum = sha256_hex_of_file(incomplete.string());
      if (lower(sum) != lower(m.etag)) {
        fs::remove(incomplete, ec);
        throw Error(repo_id + ": " + filename + ": checksum mismatch: sha256 of the download is " + sum +
                    ", the hub's ETag is " + m.etag + " (download removed)");
      }
    }
    fs::rename(incomplete, blob);
    downloaded = true;
  }

  // snapshots/<commit>/<filename> -> ../../blobs/<etag> (one more ../ per folder in filename)
  fs::create_directories(pointer.parent_path());
  std::string target = "../../";
  for (char c : filename)
    if (c == '/') target += "../";
  target += "blobs/" + m.etag;
  if (fs::is_symlink(pointer, ec) || fs::exists(pointer, ec)) {
    if (!(fs::is_symlink(pointer, ec) && fs::read_symlink(pointer, ec) == fs::path(target))) fs::remove(pointer, ec);
  }
  if (!fs::is_symlink(pointer, ec)) {
    fs::create_symlink(target, pointer, ec);
    if (ec) fs::copy_file(blob, pointer, fs::copy_options::overwrite_existing);  // no symlinks here: a copy
  }
  write_ref(repo, o.revision, m.commit);

  if (out) {
    out->filename = filename;
    out->path = pointer.string();
    out->blob = m.etag;
    out->size = m.size_known ? m.size : file_size_or_zero(blob);
    out->downloaded = downloaded;
  }
  if (commit_out) *commit_out = m.commit;
  return true;
}

#else  // built without libcurl (-DCONVNEXT_WITH_CURL=OFF, or libcurl not found)

bool hub_download_file(const std::string&, const std::string&, const HubDownloadOptions&, bool, HubFile*, std::string*) {
  throw Error("downloading from the Hugging Face hub needs libcurl support: rebuild with libcurl4-openssl-dev installed "
              "and -DCONVNEXT_WITH_CURL=ON");
}

#endif  // CONVNEXT_HAVE_CURL

HubDownloadResult hub_download_model(const std::string& repo_id, const HubDownloadOptions& options) {
  HubDownloadResult r;
  HubFile f;
  if (!hub_download_file(repo_id, "config.json", options, false, &f, &r.commit)) throw Error("unreachable");
  r.files.push_back(f);
  r.snapshot_dir = fs::path(f.path).parent_path().string();
  // Every other file from the same commit, so that a push in between cannot mix versions.
  HubDownloadOptions at = options;
  at.revision = r.commit;
  auto get = [&](const std::string& name, bool optional) {
    HubFile hf;
    if (!hub_download_file(repo_id, name, at, optional, &hf)) return false;
    r.files.push_back(hf);
    return true;
  };
  get("preprocessor_config.json", true);
  auto shards = [&](const std::string& index_name) {
    const std::string index_path = r.files.back().path;
    const nlohmann::json j = read_json_file(index_path);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index_path + ": no \"weight_map\" object");
    std::set<std::string> names;
    for (const auto& [k, v] : j["weight_map"].items())
      if (v.is_string()) names.insert(v.get<std::string>());
    if (names.empty()) throw Error(index_path + ": \"weight_map\" names no shard files");
    for (const std::string& s : names) get(s, false);
    (void)index_name;
  };
  if (get("model.safetensors", true)) return r;
  if (get("model.safetensors.index.json", true)) {
    shards("model.safetensors.index.json");
    return r;
  }
  if (get("pytorch_model.bin", true)) return r;
  if (get("pytorch_model.bin.index.json", true)) {
    shards("pytorch_model.bin.index.json");
    return r;
  }
  throw Error(repo_id + "@" + options.revision +
              ": no weights: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
              "pytorch_model.bin.index.json is in the repository");
}

}  // namespace convnext::io

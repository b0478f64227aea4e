#include "io/hub_http.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "convnext/error.h"
#include "convnext/version.h"
#include "io/hub_url.h"

namespace convnext::io::hub {

std::string Headers::get(const std::string& k) const {
  auto it = h.find(k);
  return it == h.end() ? "" : it->second;
}

namespace {

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

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

std::string human_bytes(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

// Where a GET's body goes: the partial file, opened once the status says how (appended to after
// a 206 that starts at `offset`, rewritten after a 200), and the progress bar.
struct Sink {
  CURL* c = nullptr;
  std::string path;
  uint64_t offset = 0;  // bytes already on disk (asked for with Range)
  Headers* hd = nullptr;
  FILE* f = nullptr;
  bool decided = false, writing = false, bad_range = false;
  ProgressBar bar;
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
      return bytes;  // an error page: read and dropped (the status says what went wrong)
    }
    if (!s->f) return 0;
    s->writing = true;
  }
  if (!s->writing) return bytes;
  return std::fwrite(data, 1, bytes, s->f);
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* s = static_cast<Sink*>(user);
  if (!s->bar.show) return 0;
  const auto now = std::chrono::steady_clock::now();
  const bool done = s->bar.expected && s->offset + static_cast<uint64_t>(dlnow) >= s->bar.expected;
  if (done ? s->drawn_done : now - s->last < std::chrono::milliseconds(100)) return 0;
  s->drawn_done = done;
  s->last = now;
  const uint64_t have = s->offset + static_cast<uint64_t>(dlnow);
  const uint64_t total = s->bar.expected ? s->bar.expected : s->offset + static_cast<uint64_t>(dltotal);
  const double secs = std::chrono::duration<double>(now - s->start).count();
  const double speed = secs > 0 ? static_cast<double>(dlnow) / secs : 0;
  const int pct = total ? static_cast<int>(100.0 * static_cast<double>(have) / static_cast<double>(total)) : 0;
  const int width = 24, fill = total ? std::min(width, static_cast<int>(width * static_cast<double>(have) / total)) : 0;
  std::string bar(fill, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%-28.28s [%s] %3d%% %10s / %-10s %10s/s  ", s->bar.name.c_str(), bar.c_str(), pct,
               human_bytes(static_cast<double>(have)).c_str(), human_bytes(static_cast<double>(total)).c_str(),
               human_bytes(speed).c_str());
  std::fflush(stderr);
  s->drawn = true;
  return 0;
}

// The outcome of curl_easy_perform, as HttpResult says it.
void set_outcome(HttpResult& r, CURL* c, CURLcode rc, const char* err) {
  r.completed = rc == CURLE_OK;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  if (!r.completed) r.error = *err ? err : curl_easy_strerror(rc);
  r.fatal = rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_TOO_MANY_REDIRECTS || rc == CURLE_URL_MALFORMAT;
}

}  // namespace

HttpResult http_head(const std::string& url, const std::string& token) {
  HttpResult r;
  char err[CURL_ERROR_SIZE] = "";
  Curl c;
  c.setup(url, token, loopback_http_url(url));
  curl_easy_setopt(c.c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c.c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c.c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c.c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c.c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c.c, CURLOPT_ERRORBUFFER, err);
  set_outcome(r, c.c, curl_easy_perform(c.c), err);
  return r;
}

HttpResult http_get_to_file(const std::string& url, const std::string& token, const std::string& path, uint64_t offset,
                            const ProgressBar& bar) {
  HttpResult r;
  Curl c;
  c.setup(url, token, loopback_http_url(url));
  Sink sink;
  sink.c = c.c;
  sink.path = path;
  sink.offset = offset;
  sink.hd = &r.headers;
  sink.bar = bar;
  sink.start = std::chrono::steady_clock::now();
  sink.last = sink.start - std::chrono::seconds(1);
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c.c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c.c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c.c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c.c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c.c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c.c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c.c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c.c, CURLOPT_XFERINFODATA, &sink);
  curl_easy_setopt(c.c, CURLOPT_ERRORBUFFER, err);
  const std::string range = std::to_string(offset) + "-";
  if (offset > 0) curl_easy_setopt(c.c, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl_easy_perform(c.c);
  if (sink.f) std::fclose(sink.f);
  if (sink.drawn) std::fputc('\n', stderr);
  r.bad_range = sink.bad_range;
  r.write_failed = rc == CURLE_WRITE_ERROR && !sink.bad_range;
  set_outcome(r, c.c, rc, err);
  return r;
}

}  // namespace convnext::io::hub

#include "io/hub_url.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "convnext/error.h"

namespace convnext::io::hub {

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

bool loopback_http_url(const std::string& url) {
  std::string scheme, origin, host;
  return split_origin(url, &scheme, &origin, &host) && scheme == "http" && is_loopback(host);
}

bool same_origin(const std::string& a, const std::string& b) {
  std::string s1, o1, h1, s2, o2, h2;
  split_origin(a, &s1, &o1, &h1);
  split_origin(b, &s2, &o2, &h2);
  return lower(o1) == lower(o2);
}

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

bool safe_component(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

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

bool valid_repo_id(const std::string& id) {
  const size_t slash = id.find('/');
  if (slash == std::string::npos) return safe_component(id);  // legacy ids without an org ("gpt2")
  return id.find('/', slash + 1) == std::string::npos && safe_component(id.substr(0, slash)) &&
         safe_component(id.substr(slash + 1));
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

}  // namespace convnext::io::hub

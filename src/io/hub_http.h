// HTTP for hub downloads, through libcurl: one HEAD, or one GET into a file (resumed with Range,
// with a progress bar). Retries and what the answers mean are the caller's (hub_fetch.h).
// Built only with libcurl (CONVNEXT_HAVE_CURL).
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace convnext::io::hub {

// The headers of the last response (after redirects): names in lower case.
struct Headers {
  long status = 0;
  std::map<std::string, std::string> h;
  std::string get(const std::string& k) const;  // "" when absent
};

// What one request did.
struct HttpResult {
  bool completed = false;      // the transfer ran to its end, whatever the status
  long status = 0;             // of the last response
  Headers headers;
  std::string error;           // libcurl's message when !completed
  bool bad_range = false;      // GET: the server resumed at another byte than asked; nothing written
  bool write_failed = false;   // GET: the file could not be written
  bool fatal = false;          // a bad URL or protocol, or too many redirects: trying again cannot help
};

// HEAD `url` within 60 s, following no redirect. A non-empty token goes as a Bearer token.
HttpResult http_head(const std::string& url, const std::string& token);

// The progress bar of a GET on stderr: the file's name, its size when known (else 0).
struct ProgressBar {
  bool show = false;
  std::string name;
  uint64_t expected = 0;
};

// GET `url` into the file `path`, following up to 5 redirects. With offset > 0 it asks for the
// bytes from there on: a 206 that starts there is appended, a 200 rewrites the file from the start.
HttpResult http_get_to_file(const std::string& url, const std::string& token, const std::string& path, uint64_t offset,
                            const ProgressBar& bar);

}  // namespace convnext::io::hub

// URLs and names for hub downloads: which URLs may be fetched, how a redirect's Location
// resolves, and which names (from the user or the server) are safe to use in the cache's paths.
#pragma once
#include <string>

namespace convnext::io::hub {

std::string trim(std::string s);   // without leading and trailing white space
std::string lower(std::string s);  // ASCII lower case

// "scheme://host[:port]" of an absolute URL (`origin`), its scheme and bare host, lower case
// (an IPv6 host keeps its brackets); false when the URL is not absolute or has no host.
bool split_origin(const std::string& url, std::string* scheme, std::string* origin, std::string* host);
bool is_loopback(const std::string& host);  // 127.x, localhost, [::1]
bool loopback_http_url(const std::string& url);  // plain http to this machine
// Whether two absolute URLs have the same scheme, host and port (case-insensitive).
bool same_origin(const std::string& a, const std::string& b);

// Throws Error unless `url` is https, or plain http to this machine (a local mirror, the tests' fake hub).
void check_url(const std::string& url);
// A redirect's Location, absolute, relative to the host, or relative to `base`'s path.
std::string join_url(const std::string& base, const std::string& location);
// Percent-encodes everything but unreserved characters and '/'.
std::string escape_path(const std::string& s);

// A name that is safe as one path component (commit hashes and ETags come from the server).
bool safe_component(const std::string& s);
// A repository file name: relative, no "..", no empty components.
bool safe_filename(const std::string& f);
// "org/name", or a legacy id without an org ("gpt2").
bool valid_repo_id(const std::string& id);

// An ETag header's value without W/ and quotes.
std::string strip_etag(std::string e);
bool is_sha256(const std::string& s);  // 64 hex digits

}  // namespace convnext::io::hub

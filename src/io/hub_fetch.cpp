#include "io/hub_fetch.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "convnext/error.h"
#include "io/hub_http.h"
#include "io/hub_url.h"

namespace convnext::io::hub {

namespace fs = std::filesystem;

namespace {

// The pause before try number attempt + 2: 0.2 s, doubling up to 3.2 s.
void back_off(int attempt) { std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(attempt, 4))); }

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

// A HEAD, tried again after a failed connection or a 5xx, up to `attempts` times in all.
HttpResult head_with_retries(const std::string& url, const std::string& token, int attempts, const std::string& what) {
  HttpResult r;
  for (int a = 0; a < attempts; ++a) {
    r = http_head(url, token);
    if (r.completed && (r.status < 500 || a + 1 == attempts)) break;
    back_off(a);
  }
  if (!r.completed) throw Error(what + ": cannot reach " + url + ": " + r.error);
  return r;
}

// The commit, blob name and size from the hub's answer for the file at `url`.
void read_metadata(const Headers& hd, const std::string& url, const std::string& what, RemoteFile* m) {
  m->commit = hd.get("x-repo-commit");
  m->etag = strip_etag(!hd.get("x-linked-etag").empty() ? hd.get("x-linked-etag") : hd.get("etag"));
  const std::string size = !hd.get("x-linked-size").empty() ? hd.get("x-linked-size") : hd.get("content-length");
  m->size_known = !size.empty();
  m->size = m->size_known ? std::strtoull(size.c_str(), nullptr, 10) : 0;
  if (m->commit.empty() || m->etag.empty())
    throw Error(what + ": the server (" + url + ") sent no X-Repo-Commit / ETag header; is HF_ENDPOINT a Hugging Face hub?");
  if (!safe_component(m->commit) || !safe_component(m->etag))
    throw Error(what + ": the server sent an unusable commit or ETag");
  check_url(m->download_url);
}

// One blob's GETs into its partial file: each try asks for the bytes the file does not have yet.
class BlobFetch {
 public:
  BlobFetch(const std::string& repo_id, const std::string& filename, const RemoteFile& m, const std::string& endpoint,
            const std::string& token, const fs::path& incomplete, const HubDownloadOptions& o)
      : repo_id_(repo_id), filename_(filename), m_(m), incomplete_(incomplete), o_(o),
        // The token goes only to the hub itself, not to the CDN it redirects to (signed URLs).
        token_(same_origin(endpoint, m.download_url) ? token : "") {}

  void run() {
    const ProgressBar bar{o_.progress && ::isatty(2), filename_, m_.size_known ? m_.size : 0};
    const int attempts = std::max(1, o_.max_attempts);
    for (int attempt = 0; attempt < attempts; ++attempt) {
      const uint64_t have = bytes_kept();
      if (m_.size_known && have == m_.size && (have > 0 || fs::exists(incomplete_))) return;
      const Next next = after_get(http_get_to_file(m_.download_url, token_, incomplete_.string(), have, bar), have);
      if (next == Next::done) return;
      if (next == Next::again_later) back_off(attempt);
    }
    throw Error(repo_id_ + ": " + filename_ + ": download failed after " + std::to_string(attempts) + " attempts: " +
                last_error_ + " (the partial file " + incomplete_.string() + " is kept for the next try)");
  }

 private:
  enum class Next { done, again, again_later };

  // The partial file's size; a file longer than the blob is wrong, and removed.
  uint64_t bytes_kept() {
    const uint64_t have = file_size_or_zero(incomplete_);
    if (!m_.size_known || have <= m_.size) return have;
    fs::remove(incomplete_);
    return 0;
  }

  // After one GET: the file is complete, or another try is due (at once when the partial file was
  // unusable and is removed, after a pause for a drop or a 5xx); what no try can mend throws.
  Next after_get(const HttpResult& r, uint64_t have) {
    if (r.bad_range) {  // the server resumed somewhere else: start over
      fs::remove(incomplete_);
      last_error_ = "the server answered the Range request with the wrong bytes";
      return Next::again;
    }
    if (r.completed && r.status == 416) {  // nothing left to send for that range: start over
      fs::remove(incomplete_);
      last_error_ = "HTTP 416 for the range " + std::to_string(have) + "-";
      return Next::again;
    }
    if (r.completed && r.status != 200 && r.status != 206) {
      if (r.status < 500) http_failure(repo_id_, filename_, o_.revision, m_.download_url, r.status, r.headers, !token_.empty());
      last_error_ = "HTTP " + std::to_string(r.status);
      return Next::again_later;
    }
    if (r.completed) return check_size();
    if (r.write_failed) throw Error(repo_id_ + ": " + filename_ + ": cannot write " + incomplete_.string());
    if (r.fatal) throw Error(repo_id_ + ": " + filename_ + ": " + r.error + " (" + m_.download_url + ")");
    last_error_ = r.error;  // a dropped connection, a timeout, a reset: go on from where the file ends
    return Next::again_later;
  }

  // A body that ended normally: done when the file has the blob's size (or the size is unknown).
  Next check_size() {
    const uint64_t now = file_size_or_zero(incomplete_);
    if (!m_.size_known || now == m_.size) {
      if (!fs::exists(incomplete_)) std::ofstream(incomplete_, std::ios::binary);  // an empty file
      return Next::done;
    }
    last_error_ = "got " + std::to_string(now) + " of " + std::to_string(m_.size) + " bytes";
    return Next::again;
  }

  const std::string& repo_id_;
  const std::string& filename_;
  const RemoteFile& m_;
  const fs::path& incomplete_;
  const HubDownloadOptions& o_;
  const std::string token_;
  std::string last_error_;
};

}  // namespace

bool head_metadata(const std::string& repo_id, const std::string& filename, const std::string& revision,
                   const std::string& endpoint, const std::string& token, int attempts, bool optional, RemoteFile* m) {
  const std::string what = repo_id + ": " + filename;
  std::string url = endpoint + "/" + repo_id + "/resolve/" + escape_path(revision) + "/" + escape_path(filename);
  for (int hop = 0; hop < 6; ++hop) {
    check_url(url);
    const HttpResult r = head_with_retries(url, token, attempts, what);
    const long st = r.status;
    if (st == 404 && optional) return false;
    if (st >= 300 && st < 400) {
      const std::string loc = r.headers.get("location");
      if (loc.empty()) throw Error(what + ": HTTP " + std::to_string(st) + " without a Location");
      if (r.headers.get("x-repo-commit").empty()) {  // not the file itself: a renamed repository etc.
        url = join_url(url, loc);
        continue;
      }
      m->download_url = join_url(url, loc);
    } else if (st == 200) {
      m->download_url = url;
    } else {
      http_failure(repo_id, filename, revision, url, st, r.headers, !token.empty());
    }
    read_metadata(r.headers, url, what, m);
    return true;
  }
  throw Error(what + ": too many redirects from " + endpoint);
}

void fetch_blob(const std::string& repo_id, const std::string& filename, const RemoteFile& m, const std::string& endpoint,
                const std::string& token, const fs::path& incomplete, const HubDownloadOptions& o) {
  BlobFetch(repo_id, filename, m, endpoint, token, incomplete, o).run();
}

uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto s = fs::file_size(p, ec);
  return ec ? 0 : s;
}

}  // namespace convnext::io::hub

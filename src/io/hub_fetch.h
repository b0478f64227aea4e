// The hub's side of a download, over hub_http.h: what a file's resolve URL says about it (a
// HEAD), and its bytes into a partial file, resumed after drops and retried. Built only with
// libcurl (CONVNEXT_HAVE_CURL).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "io/hub_download.h"

namespace convnext::io::hub {

// A file in the hub at one revision.
struct RemoteFile {
  std::string commit, etag, download_url;  // the commit and blob name are safe as path components
  uint64_t size = 0;
  bool size_known = false;
};

// HEADs {endpoint}/{repo_id}/resolve/{revision}/{filename} (following only the hub's own
// redirects, e.g. for a renamed repository) to learn the commit, the blob name, the size and
// where the bytes are. Returns false for an optional file that is missing (404).
bool head_metadata(const std::string& repo_id, const std::string& filename, const std::string& revision,
                   const std::string& endpoint, const std::string& token, int attempts, bool optional, RemoteFile* m);

// GETs the bytes into `incomplete`, resuming after dropped connections. Returns when the file has
// the expected size (when known) or the server ended the body normally; throws after
// o.max_attempts failed tries (keeping the partial file for the next run).
void fetch_blob(const std::string& repo_id, const std::string& filename, const RemoteFile& m, const std::string& endpoint,
                const std::string& token, const std::filesystem::path& incomplete, const HubDownloadOptions& o);

uint64_t file_size_or_zero(const std::filesystem::path& p);

}  // namespace convnext::io::hub

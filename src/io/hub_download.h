// Downloads from the Hugging Face hub into the cache layout huggingface_hub writes (and
// io/hub_cache.h reads), as huggingface_hub.hf_hub_download does:
//   GET {HF_ENDPOINT or https://huggingface.co}/{id}/resolve/{revision}/{filename}
//   (a HEAD first: X-Repo-Commit = the commit, X-Linked-Etag / ETag = the blob name,
//    X-Linked-Size / Content-Length = the size, a 302 Location = where the bytes are (the CDN))
//   models--org--name/blobs/<etag>.incomplete   while downloading (resumed with Range after a drop)
//   models--org--name/blobs/<etag>              once complete and verified (sha256 for LFS files)
//   models--org--name/snapshots/<commit>/<file> -> ../../blobs/<etag>   (relative symlink)
//   models--org--name/refs/<revision>           the commit hash (when the revision is a name)
// Only https is used, except plain http to a loopback host (127.0.0.1, localhost, ::1).
// Through libcurl; built without it (-DCONVNEXT_WITH_CURL=OFF, or libcurl absent) the downloads
// throw an Error saying how to enable them.
//
// The parts: hub_url.h (which URLs and names are safe), hub_http.h (libcurl), hub_fetch.h (the
// hub's HEAD and the resumed, retried GET), sha256.h (the LFS checksum), and hub_download.cpp
// (the cache layout).
#pragma once
#include <string>
#include <vector>

#include "convnext/hub.h"
#include "io/sha256.h"  // sha256_hex, sha256_hex_of_file: also for the callers of this header

namespace convnext::io {

// The public types (include/convnext/hub.h), under the names this module uses.
using HubDownloadOptions = convnext::DownloadOptions;
using HubFile = convnext::DownloadedFile;
using HubDownloadResult = convnext::DownloadResult;

// One file. Returns false (and writes nothing) when `optional` and the hub answers 404; any other
// failure throws an Error with one line (401/403/404 say what to do). `commit`, when not null,
// receives the commit hash the hub resolved the revision to.
bool hub_download_file(const std::string& repo_id, const std::string& filename, const HubDownloadOptions& options,
                       bool optional, HubFile* out = nullptr, std::string* commit = nullptr);

// A model: config.json, preprocessor_config.json (optional) and the weights: model.safetensors,
// else model.safetensors.index.json and its shards, else pytorch_model.bin, else
// pytorch_model.bin.index.json and its shards. All files come from the one commit the revision
// resolved to (for config.json).
HubDownloadResult hub_download_model(const std::string& repo_id, const HubDownloadOptions& options = {});

}  // namespace convnext::io

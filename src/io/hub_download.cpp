// hub_download_file and hub_download_model (hub_download.h): the request checked, the file's
// metadata and bytes fetched (hub_fetch.h), then placed in the cache as huggingface_hub does.
#include "io/hub_download.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "convnext/error.h"
#include "io/json_file.h"

#if CONVNEXT_HAVE_CURL
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "io/hub_cache.h"
#include "io/hub_fetch.h"
#include "io/hub_url.h"
#endif

namespace convnext::io {

namespace fs = std::filesystem;

#if CONVNEXT_HAVE_CURL

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "";
}

// The token: the options', HF_TOKEN, HUGGING_FACE_HUB_TOKEN, else the file huggingface_hub's login writes.
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
  return hub::trim(t);
}

std::string endpoint_of(const HubDownloadOptions& o) {
  std::string e = !o.endpoint.empty() ? o.endpoint : env("HF_ENDPOINT");
  if (e.empty()) e = "https://huggingface.co";
  while (!e.empty() && e.back() == '/') e.pop_back();
  hub::check_url(e + "/");
  return e;
}

// Names from the caller become paths in the cache and a URL: refused unless plainly safe.
void check_request(const std::string& repo_id, const std::string& filename, const HubDownloadOptions& o) {
  if (!hub::valid_repo_id(repo_id)) throw Error("'" + repo_id + "' is not a hub repository id (org/name)");
  if (!hub::safe_filename(filename)) throw Error(repo_id + ": refusing the file name '" + filename + "'");
  if (o.revision.empty() || o.revision.find("..") != std::string::npos || o.revision[0] == '/')
    throw Error(repo_id + ": bad revision '" + o.revision + "'");
}

// <cache>/models--org--name
fs::path repo_cache_dir(const std::string& repo_id, const HubDownloadOptions& o) {
  std::string id_dir = "models--" + repo_id;
  if (const size_t slash = id_dir.find('/'); slash != std::string::npos) id_dir.replace(slash, 1, "--");
  return fs::path(o.cache_dir.empty() ? hub_cache_dir() : o.cache_dir) / id_dir;
}

// The bytes into blobs/<etag>.incomplete, then, once their size (and for LFS files, whose ETag is
// their sha256, their checksum) is right, renamed to blobs/<etag>: a blob there is always whole.
void download_blob(const std::string& repo_id, const std::string& filename, const hub::RemoteFile& m,
                   const std::string& endpoint, const std::string& token, const fs::path& blob, const HubDownloadOptions& o) {
  std::error_code ec;
  const fs::path incomplete = blob.string() + ".incomplete";
  hub::fetch_blob(repo_id, filename, m, endpoint, token, incomplete, o);
  const uint64_t got = hub::file_size_or_zero(incomplete);
  if (m.size_known && got != m.size) {
    fs::remove(incomplete, ec);
    throw Error(repo_id + ": " + filename + ": got " + std::to_string(got) + " bytes, the hub says " + std::to_string(m.size));
  }
  if (hub::is_sha256(m.etag)) {
    const std::string sum = sha256_hex_of_file(incomplete.string());
    if (hub::lower(sum) != hub::lower(m.etag)) {
      fs::remove(incomplete, ec);
      throw Error(repo_id + ": " + filename + ": checksum mismatch: sha256 of the download is " + sum +
                  ", the hub's ETag is " + m.etag + " (download removed)");
    }
  }
  fs::rename(incomplete, blob);
}

// snapshots/<commit>/<filename> -> ../../blobs/<etag> (one more ../ per folder in filename), or
// a copy of the blob where symlinks cannot be made.
void link_snapshot(const fs::path& pointer, const fs::path& blob, const std::string& filename, const std::string& etag) {
  std::error_code ec;
  fs::create_directories(pointer.parent_path());
  std::string target = "../../";
  for (char c : filename)
    if (c == '/') target += "../";
  target += "blobs/" + etag;
  if (fs::is_symlink(pointer, ec) || fs::exists(pointer, ec)) {
    if (!(fs::is_symlink(pointer, ec) && fs::read_symlink(pointer, ec) == fs::path(target))) fs::remove(pointer, ec);
  }
  if (!fs::is_symlink(pointer, ec)) {
    fs::create_symlink(target, pointer, ec);
    if (ec) fs::copy_file(blob, pointer, fs::copy_options::overwrite_existing);
  }
}

// refs/<revision> holds the commit a branch or tag name resolved to (written atomically).
void write_ref(const fs::path& repo, const std::string& revision, const std::string& commit) {
  if (revision == commit) return;
  const fs::path ref = repo / "refs" / revision;
  fs::create_directories(ref.parent_path());
  std::string current;
  if (std::ifstream f(ref); f) std::getline(f, current);
  if (hub::trim(current) == commit) return;
  const fs::path tmp = ref.string() + ".tmp" + std::to_string(::getpid());
  std::ofstream(tmp) << commit;
  fs::rename(tmp, ref);
}

}  // namespace

bool hub_download_file(const std::string& repo_id, const std::string& filename, const HubDownloadOptions& o,
                       bool optional, HubFile* out, std::string* commit_out) {
  check_request(repo_id, filename, o);
  const std::string endpoint = endpoint_of(o);
  const std::string token = resolve_token(o);
  hub::RemoteFile m;
  if (!hub::head_metadata(repo_id, filename, o.revision, endpoint, token, std::max(1, o.max_attempts), optional, &m))
    return false;
  const fs::path repo = repo_cache_dir(repo_id, o);
  const fs::path blob = repo / "blobs" / m.etag;
  const fs::path pointer = repo / "snapshots" / m.commit / filename;
  fs::create_directories(repo / "blobs");
  std::error_code ec;
  const bool downloaded = !fs::exists(blob, ec);
  if (downloaded) download_blob(repo_id, filename, m, endpoint, token, blob, o);
  link_snapshot(pointer, blob, filename, m.etag);
  write_ref(repo, o.revision, m.commit);
  if (out) {
    out->filename = filename;
    out->path = pointer.string();
    out->blob = m.etag;
    out->size = m.size_known ? m.size : hub::file_size_or_zero(blob);
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

namespace {

// The shard files an index (*.index.json) names in its weight_map.
std::set<std::string> shard_names(const std::string& index_path) {
  const nlohmann::json j = read_json_file(index_path);
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) throw Error(index_path + ": no \"weight_map\" object");
  std::set<std::string> names;
  for (const auto& [k, v] : j["weight_map"].items())
    if (v.is_string()) names.insert(v.get<std::string>());
  if (names.empty()) throw Error(index_path + ": \"weight_map\" names no shard files");
  return names;
}

}  // namespace

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
  for (const std::string weights : {"model.safetensors", "pytorch_model.bin"}) {  // each whole, else sharded
    if (get(weights, true)) return r;
    if (get(weights + ".index.json", true)) {
      for (const std::string& shard : shard_names(r.files.back().path)) get(shard, false);
      return r;
    }
  }
  throw Error(repo_id + "@" + options.revision +
              ": no weights: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
              "pytorch_model.bin.index.json is in the repository");
}

}  // namespace convnext::io

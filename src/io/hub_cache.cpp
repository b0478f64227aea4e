#include "io/hub_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "convnext/error.h"

namespace convnext::io {

namespace fs = std::filesystem;

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "";
}

bool plausible_id_part(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 96) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}
}  // namespace

std::string hub_cache_dir() {
  if (std::string v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (std::string v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return v;
  if (std::string v = env("HF_HOME"); !v.empty()) return (fs::path(v) / "hub").string();
  if (std::string v = env("XDG_CACHE_HOME"); !v.empty()) return (fs::path(v) / "huggingface" / "hub").string();
  return (fs::path(env("HOME").empty() ? "/root" : env("HOME")) / ".cache" / "huggingface" / "hub").string();
}

std::string resolve_model_path(const std::string& model) {
  std::error_code ec;
  if (fs::exists(model, ec)) return model;
  std::string id = model, revision = "main";
  if (const size_t at = id.find('@'); at != std::string::npos) {
    revision = id.substr(at + 1);
    id = id.substr(0, at);
  }
  const size_t slash = id.find('/');
  const bool looks_like_id = slash != std::string::npos && id.find('/', slash + 1) == std::string::npos &&
                             plausible_id_part(id.substr(0, slash)) && plausible_id_part(id.substr(slash + 1)) &&
                             plausible_id_part(revision);
  if (!looks_like_id) throw Error(model + ": no such file or directory");
  const fs::path repo = fs::path(hub_cache_dir()) / ("models--" + id.substr(0, slash) + "--" + id.substr(slash + 1));
  std::string commit = revision;
  if (std::ifstream ref(repo / "refs" / revision); ref) {  // a branch or tag name: refs/<name> holds the hash
    std::getline(ref, commit);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    if (!plausible_id_part(commit)) throw Error((repo / "refs" / revision).string() + ": not a commit hash");
  }
  const fs::path snapshot = repo / "snapshots" / commit;
  if (!fs::is_directory(snapshot, ec)) {
    // The command that fetches it into this very cache, so the next try finds it.
    const std::string fetch = "convnext download " + id + (revision == "main" ? "" : " --revision " + revision);
    throw Error(model + ": not a local path, and not in the Hugging Face cache (looked for " + snapshot.string() +
                "); fetch it with `" + fetch + "`, or point HF_HUB_CACHE / HF_HOME at the cache that has it");
  }
  return snapshot.string();
}

}  // namespace convnext::io

// The Hugging Face hub: model ids resolved offline in the local cache (the layout transformers
// and huggingface_hub write), and downloads into it (`convnext download`).
//
//   convnext::download_model("facebook/convnext-tiny-224");          // once, online
//   auto m = convnext::ConvNextForImageClassification::from_pretrained("facebook/convnext-tiny-224");
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convnext/export.h"

namespace convnext {

struct DownloadOptions {
  std::string revision = "main";
  std::string endpoint;   // "" → $HF_ENDPOINT, else https://huggingface.co
  std::string token;      // "" → $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else the token file
                          //      ($HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token)
  std::string cache_dir;  // "" → hub_cache_dir()
  bool progress = false;  // a progress bar on stderr (drawn only when stderr is a terminal)
  int max_attempts = 5;   // tries per file; each retry resumes the partial download with Range
};

struct DownloadedFile {
  std::string filename;  // as in the repository ("model.safetensors")
  std::string path;      // snapshots/<commit>/<filename> in the cache
  std::string blob;      // the blob name (the ETag: sha256 for LFS files, git blob id otherwise)
  uint64_t size = 0;
  bool downloaded = false;  // false: it was already in the cache
};

struct DownloadResult {
  std::string commit;
  std::string snapshot_dir;
  std::vector<DownloadedFile> files;
};

// Fetches config.json, preprocessor_config.json and the weights (model.safetensors, else its
// shards, else pytorch_model.bin or its shards) of `id` ("org/name") at options.revision into the
// cache, resuming dropped transfers and checking LFS files against their sha256. Needs libcurl
// (CONVNEXT_WITH_CURL); without it, an Error says how to enable it.
CONVNEXT_API DownloadResult download_model(const std::string& id, const DownloadOptions& options = {});

// The Hugging Face cache directory: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
CONVNEXT_API std::string hub_cache_dir();
// A path as given when it exists; a hub id ("org/name" or "org/name@revision") as its cached
// snapshot directory; an Error naming `convnext download` when the id is not in the cache.
CONVNEXT_API std::string resolve_model_path(const std::string& path_or_id);

}  // namespace convnext

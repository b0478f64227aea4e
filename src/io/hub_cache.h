// The Hugging Face cache on disk, as transformers and huggingface_hub write it:
//   $HF_HUB_CACHE (or $HF_HOME/hub, or $XDG_CACHE_HOME/huggingface/hub, or ~/.cache/huggingface/hub)
//     models--<org>--<name>/refs/<revision>       the commit hash of that revision
//     models--<org>--<name>/snapshots/<hash>/...  the files (usually symlinks into ../../blobs)
#pragma once
#include <string>

namespace convnext::io {

// The cache folder in use.
std::string hub_cache_dir();

// `model` as given when it names something on disk; else, when it looks like a hub id
// ("org/name", optionally "org/name@revision"), its snapshot folder in the cache. Throws an
// Error that says where it looked when the id is not cached.
std::string resolve_model_path(const std::string& model);

}  // namespace convnext::io

// download_model, hub_cache_dir, resolve_model_path (include/convnext/hub.h).
#include "convnext/hub.h"

#include "io/hub_cache.h"
#include "io/hub_download.h"

namespace convnext {

DownloadResult download_model(const std::string& id, const DownloadOptions& options) {
  return io::hub_download_model(id, options);
}
std::string hub_cache_dir() { return io::hub_cache_dir(); }
std::string resolve_model_path(const std::string& path_or_id) { return io::resolve_model_path(path_or_id); }

}  // namespace convnext

// convnext download: a model from the Hugging Face hub into the local hub cache.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "convnext/error.h"
#include "convnext/hub.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext download ID [--revision R] [--cache-dir DIR] [--quiet]

Downloads the model ID ("org/name") from the Hugging Face hub as huggingface_hub's
hf_hub_download would: config.json, preprocessor_config.json (when the repository has one) and
the weights (model.safetensors; else model.safetensors.index.json and its shards; else
pytorch_model.bin, or its index and shards), all from the commit that R (default: main) points
to, into the hub cache (DIR, else $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub):
blobs/<etag>, snapshots/<commit>/<file> symlinks and refs/<R>. Other commands then load it by
its id ("org/name" or "org/name@R"). Files already in the cache are not downloaded again;
a dropped connection is resumed; LFS files are checked against their sha256.

  $HF_ENDPOINT   the hub (default https://huggingface.co); plain http only to 127.0.0.1/localhost
  $HF_TOKEN      sent as "Authorization: Bearer ..." for private or gated models (else the token
                 file $HF_TOKEN_PATH, $HF_HOME/token or ~/.cache/huggingface/token)

Prints one line per file and, last, the snapshot folder. A progress bar goes to stderr when it
is a terminal (not with --quiet).
)";

std::string size_str(uint64_t b) {
  char buf[32];
  if (b >= 1000000) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 1000) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}
}  // namespace

int cmd_download(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"quiet"}, {"revision", "cache-dir"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (a.positional().size() != 1) throw Error("give exactly one model id (org/name); see --help");
  DownloadOptions o;
  o.revision = a.get("revision", "main");
  o.cache_dir = a.get("cache-dir", "");
  o.progress = !a.has("quiet");
  const auto r = download_model(a.positional()[0], o);
  for (const auto& f : r.files)
    std::printf("%-32s %10s  %s\n", f.filename.c_str(), size_str(f.size).c_str(), f.downloaded ? "downloaded" : "cached");
  std::printf("%s@%s: %s\n", a.positional()[0].c_str(), r.commit.c_str(), r.snapshot_dir.c_str());
  return 0;
}

}  // namespace convnext::cli

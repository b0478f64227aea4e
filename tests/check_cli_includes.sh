#!/usr/bin/env bash
# The command-line tool and the server are clients of the public API: every #include "..." in
# src/cli and src/serve names a public header (convnext/...) or a file of its own folder; the CLI
# may also include the server's entry point, ../serve/server.h. (The build enforces it as well:
# these targets see only include/; this test names the offending line when someone widens that.)
set -euo pipefail
cli_dir=${1:?usage: check_cli_includes.sh SRC_CLI_DIR}
serve_dir=$(dirname "$cli_dir")/serve
bad=0
check() {  # folder, extra allowed include
  local dir=$1 extra=$2
  [[ -d $dir ]] || return 0
  while IFS=: read -r file line text; do
    inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$text")
    if [[ $inc == convnext/* ]] || { [[ $inc != */* ]] && [[ -f $dir/$inc ]]; } || [[ $inc == "$extra" ]]; then continue; fi
    echo "$file:$line: includes \"$inc\", which is not a public header (include/convnext/) nor part of $(basename "$dir")"
    bad=1
  done < <(grep -Hn -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir"/*.cpp "$dir"/*.h)
}
check "$cli_dir" "../serve/server.h"
check "$serve_dir" ""
if ((bad)); then exit 1; fi
echo "src/cli and src/serve include only public headers and their own files"

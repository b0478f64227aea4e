#!/usr/bin/env bash
# The command-line tool is a client of the public API: every #include "..." in src/cli names a
# public header (convnext/...) or a file of src/cli itself. (The build enforces it as well: the
# CLI target sees only include/; this test names the offending line when someone widens that.)
set -euo pipefail
cli_dir=${1:?usage: check_cli_includes.sh SRC_CLI_DIR}
bad=0
while IFS=: read -r file line text; do
  inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$text")
  if [[ $inc == convnext/* ]] || [[ -f $cli_dir/$inc ]]; then continue; fi
  echo "$file:$line: includes \"$inc\", which is not a public header (include/convnext/) nor part of src/cli"
  bad=1
done < <(grep -Hn -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$cli_dir"/*.cpp "$cli_dir"/*.h)
if ((bad)); then exit 1; fi
echo "src/cli includes only public headers and its own files"

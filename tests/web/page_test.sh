#!/usr/bin/env bash
# ctest serve_web_page: the web page of `convnext serve` in headless Chromium.
#   bash tests/web/page_test.sh CONVNEXT_CLI SOURCE_DIR SCREENSHOT.png
# Starts `convnext serve --model models/convnext-fashion-mnist --port 0`, asks `convnext classify --json`
# for the example images' labels, and runs tests/web/page_test.js (puppeteer-core driving Debian's
# chromium) against the server. Needs node (on the machine), chromium (scripts/setup.sh --tests) and
# puppeteer-core (installed here by tests/web/setup.sh when missing); a missing one fails the test.
# CHROMIUM=PATH picks another browser binary. The server and the browser are ended however it exits.
set -euo pipefail
cli=$(realpath "$1"); src=$(realpath "$2"); shot=$(realpath -m "$3")
cd "$src"

fail() { echo "serve_web_page: $*" >&2; exit 1; }
chromium=${CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || fail "no chromium at $chromium: install Debian's chromium (bash scripts/setup.sh --tests does), or set CHROMIUM"
command -v node >/dev/null || fail "node is not installed (Node.js 18 or newer is needed for puppeteer-core)"
if [[ ! -f tests/web/node_modules/puppeteer-core/package.json ]]; then
  bash tests/web/setup.sh || fail "could not install puppeteer-core (bash tests/web/setup.sh)"
fi

tmp=$(mktemp -d)
server=""; driver=""
cleanup() {
  # page_test.js closes the browser (on SIGTERM too); this is for a test killed on its way. The
  # browser runs in its own process group (puppeteer starts it detached).
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
  fi
  if [[ -s $tmp/browser.pid ]]; then
    kill -- -"$(cat "$tmp/browser.pid")" 2>/dev/null || true
  fi
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

model=models/convnext-fashion-mnist
choose=examples/images/sneaker_t10k_9.png
drop=examples/images/trouser_t10k_2.png
keyboard=examples/images/bag_t10k_18.png
click=examples/images/coat_t10k_6.png
shot_image=examples/images/shirt_t10k_4.png
printf 'this is not an image\n' > "$tmp/notes.txt"

"$cli" classify --model "$model" --json "$choose" "$drop" "$keyboard" "$click" "$shot_image" > "$tmp/expected.jsonl"

"$cli" serve --model "$model" --host 127.0.0.1 --port 0 > "$tmp/server.out" 2> "$tmp/server.err" &
server=$!
url=""
for _ in $(seq 600); do  # up to 60 s
  url=$(sed -n 's/^listening on \(http:\/\/[^ ]*\)$/\1/p' "$tmp/server.out" | head -n1)
  [[ -n $url ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/server.err" >&2; fail "convnext serve exited before listening"; }
  sleep 0.1
done
[[ -n $url ]] || { cat "$tmp/server.err" >&2; fail "convnext serve did not print 'listening on' within 60 s"; }
echo "server: $url (pid $server)"

mkdir -p "$(dirname "$shot")"
start=$(date +%s%N)
# In the background and waited for, so that a SIGTERM to this script reaches the trap at once.
timeout -k 10 240 node tests/web/page_test.js --url "$url" --chromium "$chromium" \
  --expected "$tmp/expected.jsonl" --screenshot "$shot" --browser-pid-file "$tmp/browser.pid" \
  --choose "$choose" --drop "$drop" --keyboard "$keyboard" --click "$click" --shot "$shot_image" \
  --not-an-image "$tmp/notes.txt" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=""
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "serve_web_page: the browser test took $((ms / 1000)).$(printf %03d $((ms % 1000))) s (node and chromium), exit $rc"
kill -0 "$server" 2>/dev/null || { cat "$tmp/server.err" >&2; fail "convnext serve died during the test"; }
exit "$rc"

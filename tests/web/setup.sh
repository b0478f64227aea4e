#!/usr/bin/env bash
# Installs the test-time puppeteer-core (npm, pinned in tests/web/package.json and package-lock.json)
# that tests/web/page_test.js drives Debian's chromium with (scripts/setup.sh --tests installs chromium).
#   bash tests/web/setup.sh
# puppeteer-core downloads no browser; --ignore-scripts runs no install script anyway. 24.43.1 is the
# newest puppeteer-core that runs on Node 20 (25.x needs Node 22.12); it drives Debian 12's chromium 156.
# node_modules is git-ignored (/tests/web/node_modules/).
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -f node_modules/puppeteer-core/package.json ]]; then
  npm install --ignore-scripts --no-audit --no-fund
fi
echo "puppeteer-core $(node -p "require('./node_modules/puppeteer-core/package.json').version"), node $(node --version), npm $(npm --version)"

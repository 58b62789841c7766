#!/usr/bin/env bash
# ctest console_browser: the admin console in Debian's chromium, driven by
# playwright-core (pinned in package-lock.json, no browser download), tests
# for node --test against the real server (USERDB_SERVER) on loopback.
# npm ci runs when node_modules is missing or older than the lockfile.
set -euo pipefail
cd "$(dirname "$0")"
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "console tests: node >= 20 needed (playwright-core), found $(node --version)" >&2
  exit 1
fi
if [ ! -d node_modules/playwright-core ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test console.test.js

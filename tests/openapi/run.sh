#!/usr/bin/env bash
# ctest openapi_lint: openapi/openapi.json (the document the server serves at
# /openapi.json, SPEC §11) linted by @redocly/cli, pinned in package-lock.json,
# with its recommended ruleset; redocly exits non-zero on any error, and so
# does this.  Warnings are printed, not fatal.  npm ci runs only when
# node_modules is missing or older than the lockfile, so later runs are offline.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/redocly ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec node_modules/.bin/redocly lint --extends recommended --format stylish \
  ../../openapi/openapi.json

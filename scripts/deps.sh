#!/usr/bin/env bash
# Install the Debian 12 packages userdb needs to build and test, if missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libevent-dev libmsgpack-dev libxxhash-dev
      libcriterion-dev libsodium-dev libjansson-dev libutf8proc-dev libhttp-parser-dev libzstd-dev python3
      python3-msgpack curl clang-format postgresql-15 libpq-dev
      libsystemd-dev systemd help2man dpkg-dev file adduser libssl-dev openssl)
# The console (net/console_pack.c links zlib; tests/console runs chromium
# through node >= 20).  npm: part of NodeSource's nodejs; Debian has it apart.
pkgs+=(zlib1g-dev chromium nodejs)
# bench/pg.sh (ctest bench_pg_quick): pgbench comes with the client package.
pkgs+=(postgresql-client-15)
command -v npm >/dev/null || pkgs+=(npm)
# The OpenAPI conformance check (tests/net/openapi_check.py).
pkgs+=(python3-jsonschema)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

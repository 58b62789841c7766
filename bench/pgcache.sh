#!/usr/bin/env bash
# bench/pgcache.sh [USERS] -- the embedded PostgreSQL connector against
# libpq (bench/pgcache_bench.c) on a throwaway PostgreSQL 15 cluster in
# /tmp (tests/pg/cluster.sh: Unix socket, fsync off), from the build in
# ./build.  Prints the table with the command that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-20000}
dir=/tmp/userdb-pgcache-bench-$$
trap 'bash tests/pg/cluster.sh stop "$dir"' EXIT
ci=$(bash tests/pg/cluster.sh start "$dir")
echo "# bash bench/pgcache.sh $users   ($(date -u +%FT%TZ), $(nproc) cores)"
./build/pgcache-bench "$ci" "$users"

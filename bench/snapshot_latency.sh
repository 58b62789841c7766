#!/usr/bin/env bash
# bench/snapshot_latency.sh -- request latency with and without a snapshot
# running (issue 4): a server with N users (default 1M) on a data dir, then
# three rounds of get_by_id (50 connections, one request in flight each, 8 s)
# without a snapshot, and with server.snapshot called 3 s into the run.
# Prints p99.9 and the worst latency of each run, and each snapshot's time.
#
#   bench/snapshot_latency.sh [USERS]     (build first: bench/run.sh builds
#                                          build-bench/, or set BENCH_BUILD)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
USERS=${1:-1000000}
B=$BUILD/userdb-bench
DIR=$(mktemp -d)
PORT=${BENCH_PORT:-17996}
"$BUILD/userdb-server" --data-dir "$DIR/d" --port "$PORT" --http-port 0 \
	--api-key k --snapshot-interval 0 >"$DIR/log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$DIR"' EXIT
"$B" --proto userdb --port "$PORT" --api-key k --op wait >/dev/null
"$B" --proto userdb --port "$PORT" --api-key k --op load --users "$USERS" \
	--conns 8 --pipeline 64 >/dev/null
"$B" --proto userdb --port "$PORT" --api-key k --op snapshot >/dev/null
get() {
	"$B" --proto userdb --port "$PORT" --api-key k --op get_by_id \
		--users "$USERS" --pipeline 1 --duration 8 --warmup 0.5 |
		grep -o '"p999_us":[0-9.]*,"max_us":[0-9.]*'
}
for round in 1 2 3; do
	echo "round $round without snapshot: $(get)"
	(sleep 3 && "$B" --proto userdb --port "$PORT" --api-key k \
		--op snapshot >"$DIR/snap.json") &
	snap=$!
	echo "round $round with snapshot:    $(get)"
	wait $snap
	echo "round $round snapshot: $(cat "$DIR/snap.json")"
done

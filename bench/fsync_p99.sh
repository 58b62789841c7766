#!/usr/bin/env bash
# bench/fsync_p99.sh -- reads while the disk is busy (issue 14): get_by_id
# latency while 50 clients create users, with --fsync everysec and with
# --fsync always, side by side.  With always, fdatasync runs on the log's
# syncer thread (persistence/oplog.h), so reads should not queue behind the
# disk: the target is p99(always) <= 1.5x p99(everysec).
#
# For each mode: a fresh server on a data dir (under BENCH_TMP, default
# /tmp: it must be a real disk, not tmpfs), USERS users loaded (default
# 100k), then 50 writer connections (create, one in flight each) for the
# whole measured window while 10 reader connections (get_by_id, one in
# flight each) are measured for DURATION seconds (default 5).
#
#   bench/fsync_p99.sh [USERS [DURATION]]   (BENCH_BUILD: a build dir with
#                                            userdb-server and userdb-bench,
#                                            default build-bench/;
#                                            BENCH_SERVER: another server)
# FSYNC_RAW=FILE: also append each measurement to FILE as a JSON line tagged
# fsync_reads_MODE / fsync_writes_MODE (bench/run.sh does, for report.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
SERVER=${BENCH_SERVER:-$BUILD/userdb-server}
USERS=${1:-100000}
DURATION=${2:-5}
B=$BUILD/userdb-bench
PORT=${BENCH_PORT:-17997}
DIR=$(mktemp -d "${BENCH_TMP:-/tmp}/userdb-fsync.XXXXXX")
SPID=
stop() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	SPID=
}
trap 'stop; rm -rf "$DIR"' EXIT
field() { grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }

run_mode() {
	local mode=$1
	rm -rf "$DIR/d"
	"$SERVER" --data-dir "$DIR/d" --port "$PORT" --http-port 0 --api-key k \
		--snapshot-interval 0 --fsync "$mode" --argon2-ops 1 \
		--argon2-mem 8192 >"$DIR/log" 2>&1 &
	SPID=$!
	"$B" --proto userdb --port "$PORT" --api-key k --op wait >/dev/null
	"$B" --proto userdb --port "$PORT" --api-key k --op load \
		--users "$USERS" --conns 8 --pipeline 64 --no-hashes >/dev/null
	"$B" --proto userdb --port "$PORT" --api-key k --op create \
		--conns 50 --pipeline 1 --no-hashes --warmup 0 \
		--duration "$(awk -v d="$DURATION" 'BEGIN { print d + 2 }')" >"$DIR/w.json" &
	local wpid=$!
	sleep 1
	"$B" --proto userdb --port "$PORT" --api-key k --op get_by_id \
		--users "$USERS" --conns 10 --pipeline 1 --warmup 0.5 \
		--duration "$DURATION" --server-pid "$SPID" >"$DIR/r.json"
	wait $wpid
	stop
	local r w
	r=$(cat "$DIR/r.json")
	w=$(cat "$DIR/w.json")
	printf '%-9s %12s %10s %10s %10s %12s %12s\n' "$mode" \
		"$(field ops_per_sec <<<"$r")" "$(field p50_us <<<"$r")" \
		"$(field p99_us <<<"$r")" "$(field p999_us <<<"$r")" \
		"$(field ops_per_sec <<<"$w")" "$(field p99_us <<<"$w")"
	field p99_us <<<"$r" >"$DIR/p99.$mode"
	if [ -n "${FSYNC_RAW:-}" ]; then
		printf '{"tag":"fsync_reads_%s","system":"userdb",%s\n' "$mode" \
			"${r#\{}" >>"$FSYNC_RAW"
		printf '{"tag":"fsync_writes_%s","system":"userdb",%s\n' "$mode" \
			"${w#\{}" >>"$FSYNC_RAW"
	fi
}

printf '%-9s %12s %10s %10s %10s %12s %12s\n' fsync reads/s \
	"read p50" "read p99" "read p999" creates/s "create p99"
run_mode everysec
run_mode always
awk -v a="$(cat "$DIR/p99.always")" -v e="$(cat "$DIR/p99.everysec")" \
	'BEGIN { printf "p99 of reads, always / everysec: %.2f (target <= 1.5)\n", a / e }'

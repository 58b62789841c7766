#!/bin/bash
# bench/bulk.sh [USERS] -- bulk export and import throughput (SPEC §9).
#
# Loads USERS (default 1000000) users with password hashes into a server
# (userdb-bench --op load), then measures on loopback:
#   1. export: GET /v1/users/export to /dev/null via userdb-cli (users/s);
#   2. import of that export (every line with its hash) into an empty
#      server with a data dir, --fsync everysec (users/s);
#   3. get_by_id (P=16, 50 connections) alone, then while exports run back
#      to back on the same server (ratio).
# Prints one JSON object.  Single runs on a shared machine vary: repeat.
# Last run (1M users, shared 2-core VM, load average 6-9): export 698k
# users/s to a file, 849k to /dev/null; import 58k users/s (CPU-starved:
# net/bulk.h has the per-thread CPU); get_by_id during exports 0.919x.
set -euo pipefail
USERS=${1:-1000000}
B=${BUILD:-$(dirname "$0")/../build}
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
start() { # name extra-args... -> sets PORT_<name>, HTTP_<name>
	"$B/userdb-server" --port 0 --http-port 0 --api-key k "${@:2}" >"$T/$1.log" 2>&1 &
	for _ in $(seq 100); do grep -q ready "$T/$1.log" && break; sleep 0.1; done
	local l; l=$(grep ready "$T/$1.log")
	eval "PORT_$1=$(sed 's/.*rpc=[^ ]*:\([0-9]*\).*/\1/' <<<"$l")"
	eval "HTTP_$1=$(sed 's/.*http=[^ ]*:\([0-9]*\).*/\1/' <<<"$l")"
}
now() { date +%s.%N; }
start a --no-persist
"$B/userdb-bench" --proto userdb --port "$PORT_a" --api-key k --op load \
	--users "$USERS" --pipeline 16 >/dev/null
export USERDB_API_KEY=k
t0=$(now)
"$B/userdb-cli" --http-port "$HTTP_a" export "$T/users.ndjson" 2>/dev/null
t1=$(now)
"$B/userdb-cli" --http-port "$HTTP_a" export /dev/null 2>/dev/null
t2=$(now)
mkdir -m 700 "$T/b"
start b --data-dir "$T/b" --fsync everysec
t3=$(now)
"$B/userdb-cli" --http-port "$HTTP_b" import "$T/users.ndjson" 2>"$T/import.txt"
t4=$(now)
hashed=$(grep -c '"password_hash":"\$argon2' "$T/users.ndjson" || true)
gb() { "$B/userdb-bench" --proto userdb --port "$PORT_a" --api-key k \
	--op get_by_id --users "$USERS" --pipeline 16 --duration 5 |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["ops_per_sec"])'; }
alone=$(gb)
( while :; do "$B/userdb-cli" --http-port "$HTTP_a" export /dev/null 2>/dev/null; done ) &
loop=$!
sleep 0.5
during=$(gb)
kill $loop; wait $loop 2>/dev/null || true
python3 - "$USERS" "$t0" "$t1" "$t2" "$t3" "$t4" "$alone" "$during" "$hashed" "$(tail -1 "$T/import.txt")" <<'PY'
import json, sys
n, t0, t1, t2, t3, t4, alone, during = (float(x) for x in sys.argv[1:9])
print(json.dumps({
    "users": int(n), "with_password_hash": int(sys.argv[9]),
    "export_to_file_users_per_s": round(n / (t1 - t0)),
    "export_to_null_users_per_s": round(n / (t2 - t1)),
    "import_users_per_s": round(n / (t4 - t3)),
    "import_summary": sys.argv[10],
    "get_by_id_alone_ops_per_s": alone, "get_by_id_during_export_ops_per_s": during,
    "get_by_id_ratio": round(during / alone, 3)}))
PY

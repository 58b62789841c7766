#!/bin/bash
# bench/tls.sh [USERS] -- get_by_id over TLS vs plaintext (SPEC §11, issue 16:
# goal TLS >= 0.7x plaintext throughput at P=16).
#
# Two --no-persist servers on loopback, one plaintext and one with
# --tls-cert/--tls-key (a throwaway self-signed P-256 certificate made here
# with openssl), each loaded with USERS (default 100000) users.  Then three
# rounds, each running plaintext and TLS alternately at P=1 and at P=16
# (userdb-bench --op get_by_id, 50 connections, DURATION s, default 3, with
# --server-pid for the server's CPU per request).  Prints the medians of the
# three rounds side by side with the TLS/plaintext ratios, then the command.
# The machine's other load moves single runs: compare within one run.
set -euo pipefail
USERS=${1:-100000}
DURATION=${DURATION:-3}
B=${BUILD:-$(dirname "$0")/../build}
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/key.pem" -out "$T/cert.pem" -days 1 -subj /CN=localhost \
	>/dev/null 2>&1
start() { # name extra-args... -> sets PORT_<name>, PID_<name>
	"$B/userdb-server" --port 0 --http-port 0 --api-key k --no-persist \
		"${@:2}" >"$T/$1.log" 2>&1 &
	eval "PID_$1=$!"
	for _ in $(seq 100); do grep -q ready "$T/$1.log" && break; sleep 0.1; done
	eval "PORT_$1=$(sed -n 's/.*ready rpc=[^ ]*:\([0-9]*\).*/\1/p' "$T/$1.log")"
}
start plain
start tls --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
bench() { # name P extra... -> one JSON line
	local port pid
	eval "port=\$PORT_$1 pid=\$PID_$1"
	"$B/userdb-bench" --proto userdb --port "$port" --api-key k \
		--server-pid "$pid" "${@:3}" --op get_by_id --users "$USERS" \
		--pipeline "$2" --duration "$DURATION"
}
"$B/userdb-bench" --proto userdb --port "$PORT_plain" --api-key k --op load \
	--users "$USERS" --pipeline 16 >/dev/null
"$B/userdb-bench" --proto userdb --port "$PORT_tls" --api-key k --tls \
	--op load --users "$USERS" --pipeline 16 >/dev/null
for round in 1 2 3; do
	for p in 1 16; do
		echo "plain $p $(bench plain "$p")" >>"$T/runs"
		echo "tls $p $(bench tls "$p" --tls)" >>"$T/runs"
	done
done
python3 - "$T/runs" "$USERS" "$DURATION" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, p, doc = line.split(" ", 2)
    runs.setdefault((name, int(p)), []).append(json.loads(doc))
def med(name, p, key):
    return statistics.median(r[key] for r in runs[(name, p)])
print("get_by_id, %s users, 50 connections, %s s x 3 rounds, medians "
      "(shared busy machine: compare within one run)" % (sys.argv[2], sys.argv[3]))
print("%-4s %12s %12s %6s   %14s %14s %6s   %9s %9s" % (
    "P", "plain ops/s", "tls ops/s", "ratio", "plain us/op", "tls us/op",
    "ratio", "plain p99", "tls p99"))
for p in (1, 16):
    po, to = med("plain", p, "ops_per_sec"), med("tls", p, "ops_per_sec")
    pc, tc = (med("plain", p, "server_us_per_op"),
              med("tls", p, "server_us_per_op"))
    print("%-4d %12.0f %12.0f %6.2f   %14.2f %14.2f %6.2f   %9.0f %9.0f" % (
        p, po, to, to / po, pc, tc, tc / pc, med("plain", p, "p99_us"),
        med("tls", p, "p99_us")))
PY
echo "command: bench/tls.sh $USERS (DURATION=$DURATION)"

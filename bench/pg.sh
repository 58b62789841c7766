#!/usr/bin/env bash
# bench/pg.sh [--quick] -- PostgreSQL mode (SPEC §7, issue 11) measured
# against PostgreSQL itself, on one throwaway local cluster.
#
#   1. start-up of a node from USERS users in PostgreSQL: exec to `ready`,
#      the node's CPU and the cluster's CPU meanwhile (goal <= 3 s at 1M);
#   2. get_by_id on that node vs a default-mode node (data dir, the same
#      users loaded over RPC), 50 connections, P=1 and P=16 (goal >= 0.95x);
#   3. get_by_id on the node vs `SELECT ... WHERE id = $1` by pgbench
#      (-M prepared, 50 clients) (goal >= 3x);
#   4. creates through the node vs the same rows INSERTed by pgbench
#      (-M prepared, 50 clients, the node's own statement shape: the user
#      row and its user.created event in one statement), same cluster, same
#      synchronous_commit (the default, on) (goal >= 0.8x);
#   5. coherence lag: a second node B; creates on A at RATE/s, and every
#      5 ms a probe create on A polled on B by id until B has it: time from
#      A's reply to B serving it, p50/p99 (goal p99 <= 50 ms at 5,000/s).
#
# Every figure is the median of RUNS rounds (3; the server runs one at a
# time, A restarted each round: each restart is a start-up sample) with the
# peer's figure of the same rounds beside it, the ratio, and CPU per
# request: the userdb process (/proc/PID/task/*/schedstat) and the whole
# cluster (postmaster and every backend, reaped ones included: userdb-bench
# --tree-pid).  Output: a table on stdout and bench/results/pg-latest.md,
# every measurement in bench/results/pg-latest.raw.jsonl (with --quick:
# only stdout and $T, nothing in results/).
#
# User i has id usr_ + i in 16 decimal digits (userdb-bench --plain-ids),
# so SQL loads the users (generate_series, with a user.created event each,
# as creates through userdb would leave them) and pgbench computes the id
# it looks up.  pgbench writes into pgb.users / pgb.events, copies of the
# userdb tables (LIKE ... INCLUDING ALL, same rows), which are not in the
# publication, with the nodes stopped, so no node decodes or applies them.
#
# Knobs: PG_USERS (1000000; quick 20000), PG_DURATION (3 s; quick 1),
# PG_RUNS (3; quick 1), PG_RATE (5000; quick 500), PG_CONNS (50),
# PG_FSYNC (on), BENCH_BUILD (a build dir with userdb-server and
# userdb-bench; default: build-bench/, built in Release here),
# BENCH_KEEP=1 (keep the temporary dir).  Numbers on a shared machine are
# noisy: compare ratios within one run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
if [ $QUICK = 1 ]; then
	USERS=${PG_USERS:-20000} DUR=${PG_DURATION:-1} RUNS=${PG_RUNS:-1}
	RATE=${PG_RATE:-500}
else
	USERS=${PG_USERS:-1000000} DUR=${PG_DURATION:-3} RUNS=${PG_RUNS:-3}
	RATE=${PG_RATE:-5000}
fi
CONNS=${PG_CONNS:-50}
PGBIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
B=${BENCH_BUILD:-}
if [ -z "$B" ]; then
	B=$ROOT/build-bench
	cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$B" -j2 --target userdb-server userdb-bench >/dev/null
fi
T=$(mktemp -d /tmp/userdb-pgbench.XXXXXX)
chmod 755 "$T"
RAW=$T/raw.jsonl
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	bash "$ROOT/tests/pg/cluster.sh" stop "$T/pg" || true
	[ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
log() { echo "pg.sh: $*" >&2; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the cluster -------------------------------------------------------------

log "cluster in $T/pg (fsync=${PG_FSYNC:-on})"
bash "$ROOT/tests/pg/cluster.sh" start "$T/pg" >/dev/null
# cluster.sh is the tests' cluster (fsync off, 64 MB); a benchmark wants the
# durability a deployment has and room for the table in shared buffers
cat >>"$T/pg/data/postgresql.conf" <<CONF
fsync = ${PG_FSYNC:-on}
full_page_writes = ${PG_FSYNC:-on}
shared_buffers = 1GB
work_mem = 64MB
max_wal_size = 4GB
CONF
as_owner "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -m fast \
	restart >/dev/null
PG=$(cat "$T/pg/conninfo")
PGOPT=(-h "$T/pg" -p 5432 -U postgres)
PM=$(head -1 "$T/pg/data/postmaster.pid")
sql() { psql "${PGOPT[@]}" -d postgres -qAtX -v ON_ERROR_STOP=1 "$@"; }

# ---- helpers -----------------------------------------------------------------

# A JSON line from stdin into RAW, tagged with the workload and round.
record() { # TAG ROUND
	local line
	while IFS= read -r line; do
		case $line in
		'{'*)
			printf '{"tag":"%s","round":%s,%s\n' "$1" "$2" "${line#\{}" >>"$RAW"
			log "$1 #$2: $line"
			;;
		esac
	done
}

ub() { "$B/userdb-bench" --proto userdb --api-key k --plain-ids --users "$USERS" "$@"; }
tree_ns() { ub --op cpu --tree-pid "$1" | sed 's/.*"tree_cpu_ns":\([0-9.-]*\).*/\1/'; }

# node NAME ARGS...: start a userdb-server, time exec -> answering (sets
# PID_NAME, PORT_NAME: call it outside a pipe), print the start-up JSON line.
node() {
	local name=$1 port http t0 pm0
	shift
	port=$(free_port) http=$(free_port)
	mkdir -p -m 700 "$T/$name"
	pm0=$(tree_ns "$PM")
	"$B/userdb-server" --port "$port" --http-port "$http" --api-key k \
		--data-dir "$T/$name" "$@" >>"$T/$name.log" 2>&1 &
	eval "PID_$name=$! PORT_$name=$port"
	PIDS+=("$!")
	local w
	w=$(ub --port "$port" --op wait --timeout 600)
	local pid cpu pmcpu
	eval "pid=\$PID_$name"
	# /proc/PID/stat, not schedstat: it keeps the CPU of threads that ended
	# (pg_load's helper)
	cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) / hz * 1e9 }' "/proc/$pid/stat")
	pmcpu=$(tree_ns "$PM")
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["server_cpu_s"]=float(sys.argv[2])/1e9; d["tree_cpu_s"]=(float(sys.argv[4])-float(sys.argv[3]))/1e9; print(json.dumps(d))' \
		"$w" "$cpu" "$pm0" "$pmcpu"
}

node_stop() { # NAME
	local pid
	eval "pid=\$PID_$1"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

# pgbench over script FILE: one JSON line like userdb-bench's, with the
# cluster's CPU over the run.
pgb() { # FILE [pgbench args]
	local f=$1 t0 t1 out
	shift
	t0=$(tree_ns "$PM")
	out=$(pgbench "${PGOPT[@]}" -n -M prepared -c "$CONNS" -j 1 -T "$DUR" \
		-D users="$USERS" -f "$f" "$@" postgres 2>&1) || { echo "$out" >&2; return 1; }
	t1=$(tree_ns "$PM")
	python3 - "$out" "$t0" "$t1" "$DUR" <<'PY'
import json, re, sys
out, t0, t1, dur = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
n = int(re.search(r"actually processed: (\d+)", out).group(1))
tps = float(re.search(r"tps = ([\d.]+) \(without", out).group(1))
lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
failed = re.search(r"number of failed transactions: (\d+)", out)
print(json.dumps({"proto": "pgbench", "ops": n, "errors": int(failed.group(1)) if failed else 0,
                  "ops_per_sec": tps, "mean_us": lat * 1000, "tree_cpu_s": (t1 - t0) / 1e9,
                  "tree_us_per_op": (t1 - t0) / 1e3 / n if n else 0}))
PY
}

# ---- data --------------------------------------------------------------------

# A first start on the empty database creates the schema (migrations).
node a --postgres "$PG" >/dev/null
node_stop a
log "loading $USERS users into PostgreSQL"
sql -v n="$USERS" <<'SQL'
BEGIN;
INSERT INTO userdb.users (id, name, email, email_folded, role, status, avatar,
  custom_data, identities, password_hash, created_at, updated_at, version)
SELECT 'usr_' || lpad(i::text, 16, '0'), 'User Name ' || i,
  'user' || i || '@example.com', 'user' || i || '@example.com',
  (ARRAY['admin', 'user', 'viewer'])[i % 3 + 1],
  (ARRAY['active', 'inactive', 'suspended'])[i / 3 % 3 + 1],
  'https://cdn.example.com/avatars/' || i || '.png',
  '{"plan":"pro","seats":5,"tags":["a","b"]}', '{}',
  '$argon2id$v=19$m=65536,t=2,p=1$' ||
    substr(encode(decode(md5('s' || i), 'hex'), 'base64'), 1, 22) || '$' ||
    substr(encode(decode(md5('h' || i) || md5('k' || i), 'hex'), 'base64'), 1, 43),
  t, t, i + 1
FROM (SELECT i, timestamptz '2026-01-01' + i * interval '1 ms' AS t
      FROM generate_series(0, :n - 1) i) s;
INSERT INTO userdb.events (user_id, event, created_at, details)
SELECT 'usr_' || lpad(i::text, 16, '0'), 'user.created',
  timestamptz '2026-01-01' + i * interval '1 ms', '{"actor":"key-1"}'
FROM generate_series(0, :n - 1) i;
-- pgbench's tables: the same shape, indexes and rows, outside the publication
CREATE SCHEMA pgb;
CREATE TABLE pgb.users (LIKE userdb.users INCLUDING ALL);
CREATE TABLE pgb.events (LIKE userdb.events INCLUDING ALL);
INSERT INTO pgb.users SELECT * FROM userdb.users;
INSERT INTO pgb.events (user_id, event, created_at, details)
  SELECT user_id, event, created_at, details FROM userdb.events;
COMMIT;
VACUUM ANALYZE;
CHECKPOINT;
SQL

cat >"$T/select.sql" <<'SQL'
\set i random(0, :users - 1)
SELECT id, name, email, role, status, avatar, custom_data, identities,
  last_sign_in_at, created_at, updated_at, version
FROM userdb.users WHERE id = 'usr_' || lpad(:i, 16, '0');
SQL
# The node's create statement (persistence/pg_write.c), values computed here.
cat >"$T/insert.sql" <<'SQL'
\set n random(1000000000000, 8999999999999999)
WITH u AS (INSERT INTO pgb.users (id, name, email, email_folded, role,
  status, avatar, custom_data, identities, password_hash, last_sign_in_at,
  created_at, updated_at, version, failed_verifies)
VALUES ('usr_' || lpad(:n, 16, '0'), 'User Name ' || :n,
  'user' || :n || '@example.com', 'user' || :n || '@example.com', 'user',
  'active', 'https://cdn.example.com/avatars/' || :n || '.png',
  '{"plan":"pro","seats":5,"tags":["a","b"]}'::jsonb, '{}'::jsonb,
  '$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
  NULL, now(), now(), 1, 0) RETURNING id)
INSERT INTO pgb.events (user_id, event, created_at, details)
SELECT id, 'user.created', now(), '{"actor":"key-1"}'::jsonb FROM u;
SQL

log "default-mode node: $USERS users over RPC"
node d --fsync everysec --snapshot-interval 0 >/dev/null
ub --port "$PORT_d" --op load --conns 50 --pipeline 16 | record load_default 0

# ---- rounds ------------------------------------------------------------------

for r in $(seq "$RUNS"); do
	node a --postgres "$PG" >"$T/startup.json" # not in a pipe: sets PID_a
	record startup "$r" <"$T/startup.json"
	for p in 1 16; do
		ub --port "$PORT_a" --op get_by_id --conns "$CONNS" --pipeline $p \
			--duration "$DUR" --server-pid "$PID_a" | record "get_pg_p$p" "$r"
		ub --port "$PORT_d" --op get_by_id --conns "$CONNS" --pipeline $p \
			--duration "$DUR" --server-pid "$PID_d" | record "get_default_p$p" "$r"
	done
	ub --port "$PORT_a" --op create --conns "$CONNS" --duration "$DUR" \
		--create-base $((2000000000 + r * 100000000)) \
		--server-pid "$PID_a" --tree-pid "$PM" | record create_node "$r"
	node_stop a
	pgb "$T/insert.sql" | record insert_pgbench "$r"
	pgb "$T/select.sql" | record select_pgbench "$r"
done

log "coherence lag: creates on A at $RATE/s, probed on B"
node a --postgres "$PG" >/dev/null
node b --postgres "$PG" >/dev/null
for r in $(seq "$RUNS"); do
	ub --port "$PORT_a" --op create --conns "$CONNS" --pipeline 4 \
		--duration "$DUR" --rate "$RATE" --probe-port "$PORT_b" \
		--create-base $((3000000000 + r * 100000000)) \
		--server-pid "$PID_a" --tree-pid "$PM" | record lag "$r"
done
node_stop a
node_stop b

# ---- report ------------------------------------------------------------------

if [ $QUICK = 1 ]; then
	OUT=$T/pg-latest
else
	mkdir -p "$ROOT/bench/results"
	OUT=$ROOT/bench/results/pg-latest
	cp "$RAW" "$OUT.raw.jsonl"
fi
python3 "$ROOT/bench/pg_report.py" "$RAW" "$USERS" "$DUR" "$RUNS" "$RATE" \
	"$CONNS" "${PG_FSYNC:-on}" | tee "$OUT.md"

#!/usr/bin/env bash
# bench/run.sh -- userdb against Redis, Tarantool and nginx, in one run.
#
#   bench/run.sh            full run: 1M users, 10 s per workload, P=1 and 16
#   bench/run.sh --quick    100k users, 2.5 s per workload (about 3 minutes)
#
# Installs what is missing (redis-server, tarantool, nginx-light, wrk,
# gnuplot-nox) with apt-get, builds userdb (Release, into $BENCH_BUILD,
# default build-bench/), then for each system in turn -- never two servers at
# once, so none steals the other's CPU -- starts it on free loopback ports with
# its data in a temporary directory, and measures:
#   load       N users of the benchmark shape, each with an Argon2id
#              password_hash (97 bytes encoded), pipelined (userdb-bench --op load)
#   rss        VmRSS after the load minus VmRSS of the empty server, per user;
#              and once more on a fresh server loaded --no-hashes (rss_nohash)
#   snapshot   userdb server.snapshot, Redis SAVE, Tarantool box.snapshot()
#              (time, and the file's size),
#              of exactly the N loaded users (before any update: userdb keeps
#              a per-user activity log that updates would grow, which the
#              peers do not hold, so later the data would differ)
#   startup    stop, start again on the same data, time until it serves data
#              (Tarantool listens before its recovery ends: a Lua function
#              defined after box.cfg must answer)
#   reads      get_by_id, get_by_email, get_many, list_first, list_deep, search
#              (on the restarted server)
#   http       (userdb) wrk on GET /v1/users/{id}; then nginx serving the same
#              JSON as a static file, same connections and duration
#   writes     update and a 90/10 read/update mix, then create
# then userdb alone (memory only) at smaller sizes for the scaling rows, and
# userdb's get_by_id latency while 50 clients create, --fsync everysec vs
# always (bench/fsync_p99.sh, 100k users).
# Every userdb-bench run also reads the server's CPU time (all threads,
# /proc/PID/task/*/schedstat) over its measured window: server_us_per_op,
# what a request costs the server, next to ops/s (the load generator shares
# the two cores, so ops/s alone says as much about it as about the server).
# Durability is alike for the writes: userdb --fsync everysec, Redis AOF
# everysec, Tarantool wal_mode=write.  Redis restarts from its RDB (SAVE), with
# AOF switched back on before the create workload.
#
# Writes bench/results/latest.json, latest.md and latest.png (bench/report.py);
# the raw measurements stay in bench/results/latest.raw.jsonl.
# Environment: BENCH_USERS, BENCH_DURATION, BENCH_CONNS, BENCH_SYSTEMS
# (subset of "userdb redis tarantool nginx scaling fsync"), BENCH_BUILD,
# BENCH_JOBS,
# BENCH_SERVER (a userdb-server binary to use instead of the one built),
# BENCH_KEEP=1 (keep the temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	*)
		sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//' | head -n -1
		exit 2
		;;
	esac
done

if [ $QUICK = 1 ]; then
	USERS=${BENCH_USERS:-100000} DUR=${BENCH_DURATION:-2.5} WARM=0.5
	DEPTHS_KEY="1 16" DEPTHS_OTHER="16" SMALL_SIZES="10000"
else
	USERS=${BENCH_USERS:-1000000} DUR=${BENCH_DURATION:-10} WARM=1
	DEPTHS_KEY="1 16" DEPTHS_OTHER="1 16" SMALL_SIZES="10000 100000"
fi
CONNS=${BENCH_CONNS:-50}
SYSTEMS=${BENCH_SYSTEMS:-userdb redis tarantool nginx scaling fsync}
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
RESULTS=$ROOT/bench/results
KEY="bench-key-$$-$RANDOM"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- dependencies and build ------------------------------------------------

install_missing() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		"${missing[@]}" >/dev/null
}

install_missing redis-server redis-tools tarantool nginx-light wrk \
	gnuplot-nox curl python3
bash scripts/deps.sh
log "building userdb (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"${BENCH_JOBS:-2}" --target userdb-server \
	userdb-bench >/dev/null
SERVER=${BENCH_SERVER:-$BUILD/userdb-server}
BENCH=$BUILD/userdb-bench

# ---- process bookkeeping ---------------------------------------------------

TMP=$(mktemp -d /tmp/userdb-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as another user
RAW=$TMP/raw.jsonl
: >"$RAW"
PIDS=()
SPID=

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Stop server $1 gracefully (SIGTERM), at most 60 s, then SIGKILL.
stop_server() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 600); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# CPU ticks (user + system) process $1 has used, all threads.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Wait until server $SPID is idle (< 5% of a core over 0.2 s), at most 60 s:
# work queued by the previous measurement must not run during the next.
settle() {
	local a b i
	for i in $(seq 300); do
		a=$(cpu_ticks "$SPID")
		sleep 0.2
		b=$(cpu_ticks "$SPID")
		[ $((b - a)) -le 1 ] && return 0
	done
	log "server $SPID still busy after 60 s"
}

# settle, then wait until $SPID's RSS holds still for 0.5 s (at most 30 s):
# userdb hashes its decoy password (64 MiB of Argon2id) on a thread just
# after it starts, which an RSS taken too early would count as "before".
settle_rss() {
	local a b i
	settle
	for i in $(seq 60); do
		a=$(rss_kb "$SPID")
		sleep 0.5
		b=$(rss_kb "$SPID")
		[ "$a" = "$b" ] && return 0
	done
}

# ---- servers: each sets SPID -----------------------------------------------

start_userdb() { # DIR PORT HTTP_PORT [flags]
	local dir=$1 port=$2 http=$3
	shift 3
	"$SERVER" --port "$port" --http-port "$http" --api-key "$KEY" \
		--snapshot-interval 0 --fsync everysec "$@" \
		>>"$dir.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
}

start_redis() { # DIR PORT [flags]
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
		--save "" --appendonly yes --appendfsync everysec \
		--daemonize no --logfile "$dir/redis.log" "$@" &
	SPID=$!
	PIDS+=("$SPID")
}

start_tarantool() { # DIR PORT
	mkdir -p "$1"
	TT_PORT=$2 TT_DIR=$1 tarantool "$ROOT/bench/tarantool_init.lua" \
		>>"$1/tarantool.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
}

# ---- measuring -------------------------------------------------------------

# Append JSON lines from stdin to the raw file, tagged; echo a summary.
record() { # TAG SYSTEM
	local line
	while IFS= read -r line; do
		case $line in
		'{'*)
			printf '{"tag":"%s","system":"%s",%s\n' "$1" "$2" \
				"${line#\{}" >>"$RAW"
			log "$2 $1: $line"
			;;
		esac
	done
}

# userdb-bench against SYSTEM on PORT, recorded under TAG.
run() { # SYSTEM PORT TAG USERS [userdb-bench args]
	local sys=$1 port=$2 tag=$3 users=$4
	shift 4
	local auth=() limit=$((${DUR%.*} + 150))
	[ "$sys" = userdb ] && auth=(--api-key "$KEY")
	[ -n "$SPID" ] && auth+=(--server-pid "$SPID")
	case " $* " in *" load "*) limit=$((users / 1000 + 120)) ;; esac
	# A server that hangs or dies costs this measurement, not the run.
	settle
	timeout -k 5 "$limit" "$BENCH" --proto "$sys" --port "$port" \
		"${auth[@]}" --users "$users" --conns "$CONNS" --duration "$DUR" \
		--warmup "$WARM" "$@" | record "$tag" "$sys" ||
		log "FAILED: $sys $tag $* (exit ${PIPESTATUS[0]})"
}

wait_ready() { # SYSTEM PORT -> prints seconds
	local auth=()
	[ "$1" = userdb ] && auth=(--api-key "$KEY")
	"$BENCH" --proto "$1" --port "$2" "${auth[@]}" --op wait \
		--timeout 600 | sed 's/.*"seconds":\([0-9.]*\).*/\1/' ||
		{ log "FAILED: $1 did not answer on port $2"; return 1; }
}

note() { # TAG SYSTEM JSON-FIELDS
	printf '{"tag":"%s","system":"%s",%s}\n' "$1" "$2" "$3" >>"$RAW"
	log "$2 $1: $3"
}

CREATE_BASE=1000000000
read_workloads() { # SYSTEM PORT
	local sys=$1 port=$2 p
	for p in $DEPTHS_KEY; do
		run "$sys" "$port" main "$USERS" --op get_by_id --pipeline "$p"
		run "$sys" "$port" main "$USERS" --op get_by_email --pipeline "$p"
		if [ "$sys" = redis ]; then
			run "$sys" "$port" email2rtt "$USERS" \
				--op get_by_email --email-2rtt --pipeline "$p"
		fi
	done
	for p in $DEPTHS_OTHER; do
		for op in get_many list_first list_deep; do
			run "$sys" "$port" main "$USERS" --op $op --pipeline "$p"
		done
		if [ "$sys" = redis ]; then
			for op in list_first list_deep; do
				run "$sys" "$port" list2rtt "$USERS" --op $op \
					--list-2rtt --pipeline "$p"
			done
		fi
	done
	# A substring scan; Redis has no equivalent short of a Lua SCAN.
	# A full scan per request: 2 connections keep the queue (and the
	# latency) sane; the same for every system that runs it.
	if [ "$sys" != redis ]; then
		run "$sys" "$port" main "$USERS" --op search --pipeline 1 \
			--conns 2
	fi
}

write_workloads() { # SYSTEM PORT OP...
	local sys=$1 port=$2 p op
	shift 2
	for op in "$@"; do
		for p in $DEPTHS_OTHER; do
			run "$sys" "$port" main "$USERS" --op "$op" --pipeline "$p" \
				--create-base $CREATE_BASE
			CREATE_BASE=$((CREATE_BASE + 100000000))
		done
	done
}

snapshot() { # SYSTEM PORT DIR
	local auth=() f
	[ "$1" = userdb ] && auth=(--api-key "$KEY")
	settle
	timeout -k 5 1800 "$BENCH" --proto "$1" --port "$2" "${auth[@]}" \
		--op snapshot | record snapshot "$1" ||
		log "FAILED: $1 snapshot"
	# The newest snapshot file: userdb snap-*.usnap, Redis dump.rdb,
	# Tarantool *.snap.
	f=$(ls -t "$3"/snap-*.usnap "$3"/dump.rdb "$3"/*.snap 2>/dev/null | head -1)
	[ -n "$f" ] && note snapshot_size "$1" \
		"$(printf '"users":%d,"bytes":%d' "$USERS" "$(stat -c %s "$f")")"
}

# RSS per user of a fresh server loaded without password hashes.
nohash_rss() { # SYSTEM
	local sys=$1 dir=$TMP/$1-nohash port http before after
	port=$(free_port) http=$(free_port)
	case $sys in
	userdb) start_userdb "$dir" "$port" "$http" --data-dir "$dir" ;;
	*) "start_$sys" "$dir" "$port" ;;
	esac
	wait_ready "$sys" "$port" >/dev/null || return 0
	settle_rss
	before=$(rss_kb "$SPID")
	run "$sys" "$port" nohash "$USERS" --op load --pipeline 16 --no-hashes
	sleep 0.5
	after=$(rss_kb "$SPID")
	note rss_nohash "$sys" "$(printf '"users":%d,"rss_before_kb":%d,"rss_after_kb":%d,"bytes_per_user":%.1f' \
		"$USERS" "$before" "$after" \
		"$(awk -v a="$after" -v b="$before" -v n="$USERS" \
			'BEGIN { print (a - b) * 1024 / n }')")"
	stop_server "$SPID"
	rm -rf "$dir"
}

load_and_rss() { # SYSTEM PORT
	local before after
	settle_rss
	before=$(rss_kb "$SPID")
	run "$1" "$2" main "$USERS" --op load --pipeline 16
	sleep 0.5
	after=$(rss_kb "$SPID")
	note rss "$1" "$(printf '"users":%d,"rss_before_kb":%d,"rss_after_kb":%d,"bytes_per_user":%.1f' \
		"$USERS" "$before" "$after" \
		"$(awk -v a="$after" -v b="$before" -v n="$USERS" \
			'BEGIN { print (a - b) * 1024 / n }')")"
}

http_bench() { # SYSTEM URL
	settle
	local secs # wrk takes whole seconds
	secs=$(awk -v d="$DUR" 'BEGIN { x = int(d); print (x < d ? x + 1 : x) }')
	BENCH_AUTH="Bearer $KEY" timeout -k 5 $((secs + 60)) wrk -t1 \
		-c"$CONNS" -d"${secs}s" -s "$ROOT/bench/wrk_get.lua" "$2" \
		-- "$TMP/ids.txt" | record http "$1" || log "FAILED: wrk on $1"
}

startup() { # SYSTEM PORT STARTER-ARGS...
	local sys=$1 port=$2 secs t0
	shift 2
	t0=$(date +%s.%N)
	"start_$sys" "$@"
	wait_ready "$sys" "$port" >/dev/null || return 0
	secs=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')
	note startup "$sys" "$(printf '"users":%d,"seconds":%.3f,"rss_kb":%d' \
		"$USERS" "$secs" "$(rss_kb "$SPID")")"
}

# ---- the systems -----------------------------------------------------------

bench_userdb() {
	local dir=$TMP/userdb port http
	port=$(free_port) http=$(free_port)
	log "userdb: $USERS users, data in $dir"
	start_userdb "$dir" "$port" "$http" --data-dir "$dir"
	wait_ready userdb "$port" >/dev/null
	load_and_rss userdb "$port"
	snapshot userdb "$port" "$dir"
	stop_server "$SPID"
	startup userdb "$port" "$dir" "$port" "$http" --data-dir "$dir"
	read_workloads userdb "$port"
	"$BENCH" --op ids --users "$USERS" --port 1 >"$TMP/ids.txt"
	curl -sf -H "Authorization: Bearer $KEY" \
		"http://127.0.0.1:$http/v1/users/$(head -1 "$TMP/ids.txt")" \
		>"$TMP/user.json" || log "userdb: GET /v1/users/{id} failed"
	http_bench userdb "http://127.0.0.1:$http"
	write_workloads userdb "$port" update mix create
	stop_server "$SPID"
	nohash_rss userdb
}

bench_redis() {
	local dir=$TMP/redis port
	port=$(free_port)
	log "redis: $USERS users, data in $dir"
	start_redis "$dir" "$port"
	wait_ready redis "$port" >/dev/null
	load_and_rss redis "$port"
	snapshot redis "$port" "$dir"
	stop_server "$SPID"
	rm -rf "$dir/appendonlydir" # start-up from the RDB file, as measured
	startup redis "$port" "$dir" "$port" --appendonly no
	redis-cli -p "$port" config set appendonly yes >/dev/null
	while redis-cli -p "$port" info persistence |
		grep -Eq 'aof_rewrite_(in_progress|scheduled):1'; do
		sleep 0.2
	done
	read_workloads redis "$port"
	write_workloads redis "$port" update mix create
	stop_server "$SPID"
	nohash_rss redis
}

bench_tarantool() {
	local dir=$TMP/tarantool port
	port=$(free_port)
	log "tarantool: $USERS users, data in $dir"
	start_tarantool "$dir" "$port"
	wait_ready tarantool "$port" >/dev/null
	load_and_rss tarantool "$port"
	snapshot tarantool "$port" "$dir"
	stop_server "$SPID"
	startup tarantool "$port" "$dir" "$port"
	read_workloads tarantool "$port"
	write_workloads tarantool "$port" update mix create
	stop_server "$SPID"
	nohash_rss tarantool
}

bench_nginx() {
	local dir=$TMP/nginx port
	if [ ! -s "$TMP/user.json" ]; then
		log "nginx: no user JSON from userdb (run userdb first); skipped"
		return 0
	fi
	[ -s "$TMP/ids.txt" ] || "$BENCH" --op ids --users "$USERS" \
		--port 1 >"$TMP/ids.txt"
	port=$(free_port)
	mkdir -p "$dir"
	cp "$TMP/user.json" "$dir/user.json"
	chmod -R a+rX "$dir"
	cat >"$dir/nginx.conf" <<-EOF
		worker_processes 1;
		daemon off;
		pid $dir/nginx.pid;
		error_log $dir/error.log warn;
		events { worker_connections 4096; }
		http {
		    access_log off;
		    keepalive_requests 100000000;
		    client_body_temp_path $dir/body;
		    proxy_temp_path $dir/proxy;
		    server {
		        listen 127.0.0.1:$port;
		        location /v1/users/ {
		            root $dir;
		            default_type application/json;
		            try_files /user.json =404;
		        }
		    }
		}
	EOF
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
	SPID=$!
	PIDS+=("$SPID")
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/v1/users/x" >/dev/null && break
		sleep 0.05
	done
	http_bench nginx "http://127.0.0.1:$port"
	stop_server "$SPID"
}

# userdb alone, memory only, at smaller sizes: get_by_id and search scaling.
bench_scaling() {
	local n port http
	for n in $SMALL_SIZES; do
		port=$(free_port) http=$(free_port)
		start_userdb "$TMP/userdb-$n" "$port" "$http" --no-persist
		wait_ready userdb "$port" >/dev/null
		run userdb "$port" load "$n" --op load --pipeline 16
		run userdb "$port" small "$n" --op get_by_id --pipeline 16
		run userdb "$port" small "$n" --op search --pipeline 1 --conns 2
		stop_server "$SPID"
	done
}

# userdb alone: reads while the disk is busy, --fsync everysec vs always.
bench_fsync() {
	BENCH_BUILD=$BUILD BENCH_SERVER=$SERVER BENCH_PORT=$(free_port) \
		BENCH_TMP=$TMP FSYNC_RAW=$RAW timeout -k 5 600 \
		bash "$ROOT/bench/fsync_p99.sh" 100000 "$DUR" >&2
}

START=$(date +%s)
for s in $SYSTEMS; do
	"bench_$s" || log "FAILED: $s"
done

mkdir -p "$RESULTS"
cp "$RAW" "$RESULTS/latest.raw.jsonl"
python3 "$ROOT/bench/report.py" "$RAW" "$RESULTS" \
	"date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "quick=$QUICK" "users=$USERS" \
	"conns=$CONNS" "seconds_per_workload=$DUR" \
	"cpu=$(nproc)x $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
	"userdb=$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
	"redis=$(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/')" \
	"tarantool=$(tarantool --version | head -1 | cut -d' ' -f2)" \
	"nginx=$(nginx -v 2>&1 | sed 's|.*/||')" \
	"wall_seconds=$(($(date +%s) - START))"
log "results in $RESULTS/latest.{json,md,png} ($(($(date +%s) - START)) s)"

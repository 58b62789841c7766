#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests (ctest fixture pg).
#
#   cluster.sh start DIR    initdb into DIR/data, start it with its Unix socket
#                           in DIR (no TCP), wal_level=logical; prints the
#                           conninfo and writes it to DIR/conninfo
#   cluster.sh stop DIR     stop it (fast) and remove DIR
#
# initdb refuses root, so as root (CI) the cluster runs as the `postgres`
# user that Debian's postgresql-15 package creates; otherwise as the caller.
# fsync is off: the cluster lives for one test run, and the tests check what
# userdb acknowledges against what PostgreSQL committed, not power loss.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}

as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

stop() {
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
	fi
	rm -rf "$dir"
}

case "$cmd" in
start)
	stop
	mkdir -p "$dir"
	chmod 0755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
		--locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
max_connections = 200
fsync = off
full_page_writes = off
shared_buffers = 64MB
CONF
	as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	echo "host=$dir port=5432 user=postgres dbname=postgres" >"$dir/conninfo"
	cat "$dir/conninfo"
	;;
stop)
	stop
	;;
*)
	echo "usage: cluster.sh start|stop DIR" >&2
	exit 2
	;;
esac

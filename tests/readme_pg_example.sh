#!/usr/bin/env bash
# readme_pg_example.sh SOURCE_DIR BUILD_DIR -- the README's PostgreSQL
# connector example run as written (the sh block after "pkg-config --cflags
# --libs userdb_pg" is found in README.md): BUILD_DIR installed into a
# temporary prefix, examples/pg_cache.c compiled with the README's line
# and run against a fresh database of the ctest fixture's cluster.  The
# block's cluster.sh and PG= lines are replaced by that database; every
# other line runs as written.  Checks what the program printed: the user
# found, updated through, and the change psql made arriving.
set -euo pipefail
src=$(cd "$1" && pwd)
bld=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$bld" --prefix "$tmp/prefix" >/dev/null
libdir=$(cd "$tmp/prefix" && ls -d lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH=$tmp/prefix/$libdir
cluster=$(cat "${USERDB_PG_CONNINFO_FILE:?run through ctest}")
db=readme_pg_$$
psql -X -q -d "$cluster" -c "CREATE DATABASE $db"
export PG="$cluster dbname=$db"
awk '/^```sh$/ { b = 1; n = ""; next }
     b && /^```$/ { b = 0; if (keep) { printf "%s", n; exit } next }
     b { n = n $0 "\n"; if ($0 ~ /pkg-config --cflags --libs userdb_pg/) keep = 1 }' \
	"$src/README.md" | grep -v '^bash tests/pg/cluster.sh \|^PG=' >"$tmp/run.sh"
grep -q '^cc examples/pg_cache.c \$(pkg-config --cflags --libs userdb_pg) -o pg_cache$' \
	"$tmp/run.sh" || { echo "no compile line in README.md"; exit 1; }
cd "$tmp"
ln -s "$src/examples" examples
timeout 120 bash -e run.sh >out.txt 2>&1 || { cat out.txt; exit 1; }
cat out.txt
grep -Eq '^found: usr_[0-9a-z]{16} <ada@example.com> user, name "Ada", ETag 1$' out.txt
grep -Eq '^updated: usr_[0-9a-z]{16} <ada@example.com> admin, name "Ada Lovelace", ETag 2$' out.txt
grep -Eq '^changed elsewhere: usr_[0-9a-z]{16} <ada@example.com> admin, name "Ada from psql", ETag 3$' out.txt
psql -X -q -d "$cluster" -c "DROP DATABASE $db WITH (FORCE)"

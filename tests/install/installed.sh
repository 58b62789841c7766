#!/usr/bin/env bash
# installed.sh SOURCE_DIR BUILD_DIR VERSION -- `cmake --install` into a
# temporary prefix, then use that tree alone (no path into the source or the
# build): the README's embedding example (hello_userdb.c, taken from
# README.md) built with pkg-config against the shared library and with
# --static against the static ones, and by a tiny CMake project through
# find_package(userdb CONFIG); each program runs and prints the user.  The
# shared library's dynamic symbols are exactly what include/userdb.h
# declares, all ud_; its SONAME is libuserdb.so.MAJOR.
set -euo pipefail
src=$(cd "$1" && pwd)
bld=$(cd "$2" && pwd)
version=$3
major=${version%%.*}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
p=$tmp/prefix
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$bld" --prefix "$p" >"$tmp/install.log"
libdir=$(cd "$p" && ls -d lib*/pkgconfig | head -1)
libdir=$p/${libdir%/pkgconfig}
for f in bin/userdb-server bin/userdb-cli bin/userdb-check include/userdb.h; do
	[ -f "$p/$f" ] || fail "$f not installed"
done
for f in libuserdb.so.$version libuserdb.a libuserdb_engine.a \
	pkgconfig/userdb.pc cmake/userdb/userdbConfig.cmake \
	cmake/userdb/userdbConfigVersion.cmake cmake/userdb/userdbTargets.cmake; do
	[ -f "$libdir/$f" ] || fail "$libdir/$f not installed"
done
[ "$(readlink "$libdir/libuserdb.so")" = "libuserdb.so.$major" ] || fail "dev symlink"
[ "$(readlink "$libdir/libuserdb.so.$major")" = "libuserdb.so.$version" ] || fail "soname symlink"
soname=$(readelf -d "$libdir/libuserdb.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libuserdb.so.$major" ] || fail "SONAME is '$soname'"
"$p/bin/userdb-server" --version | grep -q "^userdb-server $version" || fail "installed --version"
if grep -rq "$bld\|$src" "$libdir/pkgconfig" "$libdir/cmake"; then
	fail "the installed package files name the build or source tree"
fi

# Exports: every defined dynamic symbol is declared in userdb.h, and every
# function or variable userdb.h declares is exported.
nm -D --defined-only "$libdir/libuserdb.so.$version" | awk '{print $3}' | sort >"$tmp/exported"
[ -s "$tmp/exported" ] || fail "no exported symbols"
if grep -v '^ud_' "$tmp/exported"; then fail "exported symbols outside ud_ (above)"; fi
gcc -E -P -DUD_NO_VISIBILITY "$p/include/userdb.h" | tr -s ' \t\n' ' ' >"$tmp/h.i"
{ grep -oE '\bud_[a-z0-9_]+ ?\(' "$tmp/h.i" | tr -d ' ('
  grep -oE 'extern [^;(]*\bud_[a-z0-9_]+ ?;' "$tmp/h.i" | grep -oE 'ud_[a-z0-9_]+ ?;$' | tr -d ' ;'
} | sort -u >"$tmp/declared"
diff "$tmp/declared" "$tmp/exported" >"$tmp/diff" ||
	{ cat "$tmp/diff"; fail "declared (<) and exported (>) differ"; }
echo "exports: $(wc -l <"$tmp/exported") symbols, all declared in userdb.h"

# The README's program, nothing else from the source tree.
mkdir "$tmp/app" && cd "$tmp/app"
awk '/^```c$/ { c = 1; n = 0; next }
     c && /^```$/ { c = 0; if (keep) exit; next }
     c { if (++n == 1 && $0 ~ /^\/\* hello_userdb\.c/) keep = 1; if (keep) print }' \
	"$src/README.md" >hello_userdb.c
[ -s hello_userdb.c ] || fail "no hello_userdb.c in README.md"
expect() { # program
	local out
	out=$("$@")
	[[ $out =~ ^usr_[0-9a-z]{16}\ \<Ann@Example\.com\>\ user$ ]] ||
		fail "$1 printed '$out'"
	echo "$1: $out"
}
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion userdb)" = "$version" ] || fail "pkg-config --modversion"
pkg-config --validate userdb || fail "pkg-config --validate"

# shared, with the README's pkg-config line
cc hello_userdb.c $(pkg-config --cflags --libs userdb) -o hello_shared
readelf -d hello_shared | grep -q "NEEDED.*\[libuserdb\.so\.$major\]" ||
	fail "hello_shared does not need libuserdb.so.$major"
LD_LIBRARY_PATH=$libdir expect ./hello_shared

# static: the .a files and every private requirement
cc -static hello_userdb.c $(pkg-config --cflags --libs --static userdb) -o hello_static
if readelf -d hello_static 2>/dev/null | grep -q NEEDED; then
	fail "hello_static has dynamic dependencies"
fi
expect ./hello_static

# find_package(userdb CONFIG) -> userdb::userdb
mkdir cm && cat >cm/CMakeLists.txt <<'CM'
cmake_minimum_required(VERSION 3.18)
project(hello_userdb C)
find_package(userdb 0.1 CONFIG REQUIRED)
add_executable(hello_userdb ../hello_userdb.c)
target_link_libraries(hello_userdb PRIVATE userdb::userdb)
CM
cmake -S cm -B cm/build -DCMAKE_PREFIX_PATH="$p" >cm.log 2>&1 || { cat cm.log; fail "cmake"; }
cmake --build cm/build >>cm.log 2>&1 || { cat cm.log; fail "cmake --build"; }
expect ./cm/build/hello_userdb

# The PostgreSQL connector: its files, examples/pg_cache.c linked with
# pkg-config userdb_pg and through find_package(userdb) -> userdb::pgcache
# (run against a database by tests/readme_pg_example.sh).
for f in include/userdb_pg.h; do [ -f "$p/$f" ] || fail "$f not installed"; done
for f in libuserdb_pgcache.a pkgconfig/userdb_pg.pc cmake/userdb/userdb_pgTargets.cmake; do
	[ -f "$libdir/$f" ] || fail "$libdir/$f not installed"
done
pkg-config --validate userdb_pg || fail "pkg-config --validate userdb_pg"
cc "$src/examples/pg_cache.c" $(pkg-config --cflags --libs userdb_pg) -o pg_cache
[[ $(./pg_cache 2>&1 || true) == "usage: pg_cache CONNINFO" ]] || fail "pg_cache usage"
mkdir cmpg && cat >cmpg/CMakeLists.txt <<CM
cmake_minimum_required(VERSION 3.18)
project(pg_cache C)
find_package(userdb 0.1 CONFIG REQUIRED)
add_executable(pg_cache $src/examples/pg_cache.c)
target_link_libraries(pg_cache PRIVATE userdb::pgcache)
CM
cmake -S cmpg -B cmpg/build -DCMAKE_PREFIX_PATH="$p" >cmpg.log 2>&1 || { cat cmpg.log; fail "cmake (pgcache)"; }
cmake --build cmpg/build >>cmpg.log 2>&1 || { cat cmpg.log; fail "cmake --build (pgcache)"; }
[[ $(./cmpg/build/pg_cache 2>&1 || true) == "usage: pg_cache CONNINFO" ]] || fail "cmake pg_cache usage"
echo "pgcache: pkg-config userdb_pg and userdb::pgcache link examples/pg_cache.c"

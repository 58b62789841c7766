#!/usr/bin/env bash
# readme_example.sh SOURCE_DIR BUILD_DIR -- the README's embedding example,
# taken from README.md as written (the C block that starts with
# "/* hello_userdb.c" and the sh block after it), compiled and run against
# BUILD_DIR installed into a temporary prefix.  The block's cmake and sudo
# lines (build, install, ldconfig) are replaced by that install; every
# other line runs as written, with pkg-config and the loader pointed at the
# prefix.
set -euo pipefail
src=$(cd "$1" && pwd)
bld=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$bld" --prefix "$tmp/prefix" >/dev/null
libdir=$(cd "$tmp/prefix" && ls -d lib*/pkgconfig | head -1)
libdir=$tmp/prefix/${libdir%/pkgconfig}
export PKG_CONFIG_PATH=$libdir/pkgconfig LD_LIBRARY_PATH=$libdir
awk '/^```c$/ { c = 1; n = 0; next }
     c && /^```$/ { c = 0; if (keep) exit; next }
     c { if (++n == 1 && $0 ~ /^\/\* hello_userdb\.c/) keep = 1; if (keep) print }' \
	"$src/README.md" >"$tmp/hello_userdb.c"
awk 'f && /^```sh$/ { s = 1; next }
     /^\/\* hello_userdb\.c/ { f = 1 }
     s && /^```$/ { exit }
     s { print }' "$src/README.md" | grep -v '^cmake \|^sudo ' >"$tmp/run.sh"
test -s "$tmp/hello_userdb.c" || { echo "no example in README.md"; exit 1; }
grep -q '^\./hello_userdb$' "$tmp/run.sh" || { echo "no run line"; exit 1; }
grep -q 'pkg-config --cflags --libs userdb' "$tmp/run.sh" ||
	{ echo "no pkg-config line"; exit 1; }
cd "$tmp"
out=$(bash -e run.sh)
echo "$out"
# the program prints the created user's generated id, the email as given
# and the default role
[[ $out =~ ^usr_[0-9a-z]{16}\ \<Ann@Example\.com\>\ user$ ]] ||
	{ echo "unexpected output"; exit 1; }

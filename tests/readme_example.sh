#!/usr/bin/env bash
# readme_example.sh SOURCE_DIR BUILD_DIR -- the README's embedding example,
# taken from README.md as written (the C block that starts with
# "/* hello_userdb.c" and the sh block after it), compiled and run against
# the libraries in BUILD_DIR.  The block's cmake line is skipped (BUILD_DIR
# is built already); every other line runs as written, from a folder where
# include/ and build/ are the source's and BUILD_DIR.
set -euo pipefail
src=$(cd "$1" && pwd)
bld=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$src/include" "$tmp/include"
ln -s "$bld" "$tmp/build"
awk '/^```c$/ { c = 1; n = 0; next }
     c && /^```$/ { c = 0; if (keep) exit; next }
     c { if (++n == 1 && $0 ~ /^\/\* hello_userdb\.c/) keep = 1; if (keep) print }' \
	"$src/README.md" >"$tmp/hello_userdb.c"
awk 'f && /^```sh$/ { s = 1; next }
     /^\/\* hello_userdb\.c/ { f = 1 }
     s && /^```$/ { exit }
     s { print }' "$src/README.md" | grep -v '^cmake ' >"$tmp/run.sh"
test -s "$tmp/hello_userdb.c" || { echo "no example in README.md"; exit 1; }
grep -q '^\./hello_userdb$' "$tmp/run.sh" || { echo "no run line"; exit 1; }
cd "$tmp"
out=$(bash -e run.sh)
echo "$out"
# the program prints the created user's generated id, the email as given
# and the default role
[[ $out =~ ^usr_[0-9a-z]{16}\ \<Ann@Example\.com\>\ user$ ]] ||
	{ echo "unexpected output"; exit 1; }

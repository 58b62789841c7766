#!/usr/bin/env bash
# version.sh SOURCE_DIR BIN_DIR VERSION -- every binary answers --version
# with its name and the project version, plus the git revision (a commit
# of the checkout, perhaps not HEAD if the build is older) when the source
# is a checkout, and exits 0 without reading anything else (a data dir that
# does not exist and a bad flag after it do not matter).
set -euo pipefail
src=$1 bin=$2 version=$3
git=
[ -e "$src/.git" ] && command -v git >/dev/null && git=1
for b in userdb-server userdb-cli userdb-check; do
	out=$(cd / && "$bin/$b" --version)
	echo "$out"
	[ "$(wc -l <<<"$out")" = 1 ] || { echo "$b: not one line"; exit 1; }
	if [ -z "$git" ]; then
		[ "$out" = "$b $version" ] || { echo "$b: expected '$b $version'"; exit 1; }
		continue
	fi
	re="^$b ${version//./\\.} \\(git ([0-9a-f]{12})(-dirty)?\\)$"
	[[ $out =~ $re ]] || { echo "$b: expected '$b $version (git REV)'"; exit 1; }
	git -C "$src" cat-file -e "${BASH_REMATCH[1]}^{commit}" ||
		{ echo "$b: ${BASH_REMATCH[1]} is no commit of $src"; exit 1; }
done
# --version wins over the rest of the command line, as --help does
"$bin/userdb-server" --data-dir /nonexistent/x --version --no-such-flag >/dev/null
"$bin/userdb-check" --version >/dev/null
# and an unknown flag is still an error
if "$bin/userdb-server" --no-such-flag 2>/dev/null; then
	echo "userdb-server accepted --no-such-flag"; exit 1
fi

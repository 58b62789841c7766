#!/usr/bin/env bash
# unit.sh SOURCE_DIR BUILD_DIR -- packaging/userdb.service passes
# `systemd-analyze verify` (with ExecStart pointed at the built binary, the
# installed path not existing here; man pages are checked in deb.sh) and
# scores what its comment says in `systemd-analyze security --offline`,
# at most 2.0; it keeps the contract of SPEC.md section 12 (Type=notify,
# own user, StateDirectory, SIGHUP reload, /etc/default/userdb); and the
# generated /etc/default/userdb has a variable for every flag of --help.
set -euo pipefail
src=$(cd "$1" && pwd)
bld=$(cd "$2" && pwd)
unit=$src/packaging/userdb.service
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for line in Type=notify User=userdb Group=userdb StateDirectory=userdb \
	'ExecReload=/bin/kill -HUP $MAINPID' 'EnvironmentFile=-/etc/default/userdb' \
	Environment=USERDB_DATA_DIR=/var/lib/userdb ExecStart=/usr/bin/userdb-server \
	Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
	PrivateTmp=yes CapabilityBoundingSet= 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
	WantedBy=multi-user.target; do
	grep -qxF "$line" "$unit" || fail "userdb.service lacks '$line'"
done

sed "s|^ExecStart=/usr/bin/userdb-server|ExecStart=$bld/userdb-server|" "$unit" >"$tmp/userdb.service"
systemd-analyze verify --man=no "$tmp/userdb.service" 2>"$tmp/verify" ||
	{ cat "$tmp/verify"; fail "systemd-analyze verify"; }
[ ! -s "$tmp/verify" ] || { cat "$tmp/verify"; fail "systemd-analyze verify warned"; }
score=$(systemd-analyze security --offline=yes "$tmp/userdb.service" 2>&1 |
	sed -n 's/.*Overall exposure level for userdb.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no security score"
claimed=$(sed -n 's/^# systemd-analyze security userdb.service.*: \([0-9.]*\) .*/\1/p' "$unit")
echo "systemd-analyze security: $score (the unit's comment: $claimed)"
[ "$score" = "$claimed" ] || fail "score $score, the comment says $claimed"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"

# a broken unit is caught (the check can fail)
sed 's/^Type=notify/Type=notifyy/' "$tmp/userdb.service" >"$tmp/bad.service"
if systemd-analyze verify --man=no "$tmp/bad.service" 2>/dev/null &&
	[ -z "$(systemd-analyze verify --man=no "$tmp/bad.service" 2>&1)" ]; then
	fail "verify accepted Type=notifyy"
fi

# /etc/default/userdb: every flag's variable, each commented out
def=$bld/packaging/userdb.default
[ -f "$def" ] || fail "$def not built"
flags=$("$bld/userdb-server" --help | sed -n 's/^  --\([a-z0-9-]*\).*/\1/p' | grep -vx 'help\|version')
[ "$(wc -l <<<"$flags")" -ge 20 ] || fail "too few flags in --help"
for f in $flags; do
	v=USERDB_$(tr 'a-z-' 'A-Z_' <<<"$f")
	grep -q "^#$v=" "$def" || fail "$def has no #$v="
done
if grep -v '^#' "$def" | grep -q .; then fail "$def sets something"; fi
# and the server takes every default written there, uncommented
env -i $(sed -n 's/^#\(USERDB_[A-Z_]*=.\)/\1/p' "$def" | grep -v '^USERDB_DATA_DIR=\|^USERDB_NO_PERSIST=\|PORT=') \
	USERDB_NO_PERSIST=1 USERDB_PORT=0 USERDB_HTTP_PORT=0 \
	timeout 10 "$bld/userdb-server" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q '^userdb ready' "$tmp/out" && break; sleep 0.1; done
kill "$pid" 2>/dev/null || true
wait "$pid" || true
grep -q '^userdb ready' "$tmp/out" || { cat "$tmp/out"; fail "the defaults of $def do not start the server"; }
echo "userdb.default: $(wc -l <<<"$flags") flags, every one with its variable"

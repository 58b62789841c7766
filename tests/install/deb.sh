#!/usr/bin/env bash
# deb.sh SOURCE_DIR WORK_DIR -- the Debian package, end to end, on this
# machine: configure SOURCE_DIR for /usr with the defaults a packager uses
# (Release, no fault injection) in WORK_DIR, `cpack -G DEB`, check the
# .deb's control data, `dpkg -i` it, check the system user, the files,
# --version, the conffile, the installed unit (systemd-analyze verify), an
# embedding program built with the system's pkg-config, and the server run
# as the unit runs it (its ExecStart, user, Environment= and EnvironmentFile)
# up to `ready`, a write and its ExecReload (SIGHUP: still serving); then `dpkg --purge` and check that nothing is
# left.  Needs root (or sudo -n); exits 77 (skipped) without.  One run at a
# time per machine (flock); refuses to run over an installed userdb.
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
fail() { echo "FAIL: $*"; exit 1; }
SUDO=
if [ "$(id -u)" != 0 ]; then
	sudo -n true 2>/dev/null || { echo "SKIP: needs root"; exit 77; }
	SUDO="sudo -n"
fi

# ---- build the package ----------------------------------------------------
mkdir -p "$work"
# what is packaged only (no benchmarks or examples): cpack builds nothing
cmake -S "$src" -B "$work" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	-UUD_FAULT_INJECTION -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >"$work/configure.log"
grep -q '^UD_FAULT_INJECTION:BOOL=OFF$' "$work/CMakeCache.txt" ||
	fail "the default build has fault injection"
cmake --build "$work" -j2 --target userdb-server userdb-cli userdb-check userdb \
	userdb_engine userdb_shared userdb_pgcache userdb_packaging_files \
	>"$work/build.log" 2>&1 ||
	{ tail -30 "$work/build.log"; fail build; }
rm -f "$work"/userdb_*.deb
(cd "$work" && cpack -G DEB >cpack.log 2>&1) || { cat "$work/cpack.log"; fail cpack; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$work/CMakeCache.txt")
arch=$(dpkg --print-architecture)
deb=$work/userdb_${version}_${arch}.deb
[ -f "$deb" ] || fail "no $deb"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for d in adduser libc6 libsodium23 libevent-2.1-7 libjansson4 libsystemd0; do
	grep -q "\b$d\b" <<<"$depends" || fail "Depends lacks $d (shlibdeps)"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/default/userdb ||
	fail "/etc/default/userdb is no conffile"

# ---- install ----------------------------------------------------------------
exec 9>/tmp/userdb-deb-test.lock
flock 9
dpkg-query -W -f='${Status}' userdb 2>/dev/null | grep -q installed &&
	fail "a userdb package is installed already (dpkg --purge userdb first)"
getent passwd userdb >/dev/null && fail "a user userdb exists already"
installed=
pid=
cleanup() {
	[ -z "$pid" ] || $SUDO kill "$pid" 2>/dev/null || true
	[ -z "$installed" ] || $SUDO dpkg --purge userdb >/dev/null 2>&1 || true
}
trap cleanup EXIT
installed=1
$SUDO dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log"; fail "dpkg -i"; }

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd userdb) || fail "no user userdb"
[ "$uid" -lt 1000 ] || fail "userdb is no system user (uid $uid)"
[ "$home" = /var/lib/userdb ] || fail "home $home"
[[ $shell == */nologin || $shell == /bin/false ]] || fail "shell $shell"
getent group userdb >/dev/null || fail "no group userdb"
/usr/bin/userdb-server --version | grep -q "^userdb-server $version" || fail "--version"
/usr/bin/userdb-cli --version >/dev/null && /usr/bin/userdb-check --version >/dev/null
dpkg -L userdb >"$work/files"
for f in /usr/bin/userdb-server /usr/bin/userdb-cli /usr/bin/userdb-check \
	/usr/lib/systemd/system/userdb.service /usr/include/userdb.h /etc/default/userdb \
	/usr/share/man/man1/userdb-server.1.gz /usr/share/man/man1/userdb-cli.1.gz \
	/usr/share/man/man1/userdb-check.1.gz; do
	grep -qx "$f" "$work/files" || fail "dpkg -L lacks $f"
done
for f in pkgconfig/userdb.pc cmake/userdb/userdbConfig.cmake libuserdb.so.$version \
	libuserdb.a libuserdb_engine.a; do
	grep -q "^/usr/lib/.*/$f$\|^/usr/lib/$f$" "$work/files" || fail "dpkg -L lacks $f"
done
dpkg-query -W -f='${Conffiles}' userdb | grep -q '/etc/default/userdb' || fail conffile
[ "$(stat -c %a /etc/default/userdb)" = 600 ] || fail "/etc/default/userdb is not 0600"
man -w userdb-server >/dev/null 2>&1 || ! command -v man >/dev/null || fail "man userdb-server"
man_opt=--man=yes
command -v man >/dev/null || man_opt=--man=no
systemd-analyze verify $man_opt /usr/lib/systemd/system/userdb.service >"$work/verify" 2>&1 &&
	[ ! -s "$work/verify" ] || { cat "$work/verify"; fail "verify of the installed unit"; }

# an embedding program with the system's pkg-config, found by ldconfig
app=$(mktemp -d)
awk '/^```c$/ { c = 1; n = 0; next }
     c && /^```$/ { c = 0; if (keep) exit; next }
     c { if (++n == 1 && $0 ~ /^\/\* hello_userdb\.c/) keep = 1; if (keep) print }' \
	"$src/README.md" >"$app/hello_userdb.c"
(cd "$app" && env -u PKG_CONFIG_PATH cc hello_userdb.c $(env -u PKG_CONFIG_PATH pkg-config --cflags --libs userdb) -o hello_userdb) ||
	fail "cc with pkg-config userdb"
out=$(env -u LD_LIBRARY_PATH "$app/hello_userdb") || fail "hello_userdb"
rm -rf "$app"
[[ $out =~ \<Ann@Example\.com\>\ user$ ]] || fail "hello_userdb printed '$out'"

# ---- the server as the unit runs it ------------------------------------------
unit=/usr/lib/systemd/system/userdb.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
state=/var/lib/$(sed -n 's/^StateDirectory=//p' "$unit")
envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
mapfile -t envs < <(sed -n 's/^Environment=//p' "$unit"; grep -v '^#\|^$' "$envfile" || true)
$SUDO install -d -o "$user" -g "$user" -m 0750 "$state" # as StateDirectory= does
# ports 0 on a shared machine; USERDB_FAULT would fail the start (the log's
# first write) if the installed binary had the fault hooks
out=$work/server.out
rm -f "$out"
$SUDO env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${envs[@]}" USERDB_PORT=0 USERDB_HTTP_PORT=0 \
	USERDB_FAULT='write:EIO:0:*' setpriv --reuid="$user" --regid="$user" --init-groups \
	$exec_start >"$out" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q '^userdb ready' "$out" && break; sleep 0.1; done
grep -q '^userdb ready' "$out" || { cat "$out"; fail "no ready line from $exec_start"; }
http=$(sed -n 's/^userdb ready rpc=[^ ]* http=\([^ ]*\)$/\1/p' "$out")
key=$($SUDO cat "$state/api-key")
code=$(curl -s -o "$work/create.json" -w '%{http_code}' -X POST "http://$http/v1/users" \
	-H "Authorization: Bearer $key" -d '{"name":"Deb","email":"deb@example.com"}')
[ "$code" = 201 ] || { cat "$work/create.json"; fail "create answered $code"; }
# systemctl reload: the unit's ExecReload with $MAINPID; the server stays up
reload=$(sed -n 's/^ExecReload=//p' "$unit")
mainpid=$pid
[ -z "$SUDO" ] || mainpid=$(pgrep -P "$pid" -x userdb-server)
$SUDO ${reload//\$MAINPID/$mainpid} || fail "ExecReload $reload"
sleep 0.5
kill -0 "$pid" 2>/dev/null || { cat "$out"; fail "the server died on ExecReload"; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/healthz")
[ "$code" = 200 ] || fail "healthz after reload answered $code"
$SUDO kill -TERM "$mainpid"
wait "$pid" || fail "the server did not exit 0 on SIGTERM"
pid=
[ "$(stat -c %U "$state")" = "$user" ] || fail "$state not owned by $user"
$SUDO runuser -u "$user" -- /usr/bin/userdb-check "$state" >"$work/check.out" ||
	{ cat "$work/check.out"; fail "userdb-check $state"; }
echo "ran $exec_start as $user: ready, a create, ExecReload, SIGTERM, userdb-check clean"

# ---- purge --------------------------------------------------------------------
$SUDO dpkg --purge userdb >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail purge; }
installed=
dpkg-query -W -f='${Status}' userdb 2>/dev/null | grep -q installed && fail "still installed"
getent passwd userdb >/dev/null && fail "user userdb left"
getent group userdb >/dev/null && fail "group userdb left"
while read -r f; do
	[ -d "$f" ] && continue
	[ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after purge"
done <"$work/files"
for f in /etc/default/userdb /var/lib/userdb /run/userdb \
	/etc/systemd/system/multi-user.target.wants/userdb.service \
	/var/lib/systemd/deb-systemd-helper-enabled/userdb.service.dsh-also \
	/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/userdb.service; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after purge"
done
echo "purged: no file, user or group left"

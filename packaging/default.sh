#!/usr/bin/env bash
# default.sh USERDB_SERVER OUT -- write /etc/default/userdb to OUT: one
# commented-out USERDB_<FLAG> line, with its --help text and default, for
# every flag that `userdb-server --help` lists (--help and --version have no
# environment twin).  Run at build time, so a new flag gets its variable.
set -euo pipefail
exec >"$2.tmp"
cat <<'HEAD'
# /etc/default/userdb -- settings of userdb-server, read by userdb.service
# (EnvironmentFile=).  Every flag of `userdb-server --help` has its variable
# USERDB_<FLAG> below; uncomment and edit, then `systemctl restart userdb`.
# Values are literal (no quotes or shell expansion); booleans take 1.
# The unit sets USERDB_DATA_DIR=/var/lib/userdb (its StateDirectory): set it
# here only to move the data, to a directory writable under the sandbox
# (ReadWritePaths= in a drop-in).  Keys in USERDB_API_KEY: this file is
# readable by root only.
HEAD
"$1" --help | awk '
	/^  --/ {
		flag = $1; sub(/^--/, "", flag)
		if (flag == "help" || flag == "version")
			next
		line = $0; sub(/^  --[^ ]+/, "", line)
		arg = ""
		if (match(line, /^ [A-Z_]+ /)) {
			arg = substr(line, 2, RLENGTH - 2)
		}
		help = line; sub(/^ *[A-Z_]* +/, "", help)
		if (arg == "") sub(/^ +/, "", help)
		val = arg == "" ? "1" : ""
		if (flag == "data-dir") help = help "; the unit: /var/lib/userdb"
		if (match(help, /\([^()]*\)$/)) {
			d = substr(help, RSTART + 1, RLENGTH - 2)
			if (d !~ / /) val = d
			if (d ~ /: [0-9]+$/) { sub(/.*: /, "", d); val = d }
		}
		if (flag == "data-dir") val = "/var/lib/userdb"
		var = "USERDB_" toupper(flag); gsub(/-/, "_", var)
		printf "\n# --%s%s: %s\n#%s=%s\n", flag, arg == "" ? "" : " " arg, help, var, val
	}'
mv "$2.tmp" "$2"

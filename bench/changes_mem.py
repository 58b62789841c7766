#!/usr/bin/python3
"""Memory per user of a server with the change stream: VmRSS of
userdb-server before and after `userdb-bench --op load`.

    python3 bench/changes_mem.py [--build build] [--users 300000]
                                 [--no-hashes] [--no-persist]
                                 [--changes-keep N]

One server (a temp data dir with --fsync everysec, or --no-persist), then
userdb-bench --proto userdb --op load --users N --pipeline 16; prints one
JSON line: RSS before and after (KiB) and (after - before) / users in
bytes.  Numbers on a busy shared machine vary by a few percent."""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

KEY = "bench-changes-key-0123456789"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--users", type=int, default=300000)
    ap.add_argument("--no-hashes", action="store_true")
    ap.add_argument("--no-persist", action="store_true")
    ap.add_argument("--changes-keep", type=int)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="userdb-chmem-")
    os.chmod(data, 0o700)
    cmd = [os.path.join(args.build, "userdb-server"), "--port", "0",
           "--http-port", "0", "--api-key", KEY, "--snapshot-interval", "0"]
    cmd += ["--no-persist"] if args.no_persist else \
        ["--data-dir", data, "--fsync", "everysec"]
    if args.changes_keep is not None:
        cmd += ["--changes-keep", str(args.changes_keep)]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        rpc = None
        for line in srv.stdout:
            if "ready" in line:
                for w in line.split():
                    if w.startswith("rpc="):
                        rpc = int(w.rsplit(":", 1)[1])
                break
        time.sleep(1)
        before = rss_kib(srv.pid)
        load = [os.path.join(args.build, "userdb-bench"), "--proto",
                "userdb", "--port", str(rpc), "--api-key", KEY, "--op",
                "load", "--users", str(args.users), "--pipeline", "16"]
        if args.no_hashes:
            load.append("--no-hashes")
        t0 = time.time()
        subprocess.run(load, capture_output=True, check=True)
        took = time.time() - t0
        time.sleep(0.5)
        after = rss_kib(srv.pid)
        print(json.dumps({
            "users": args.users, "hashes": not args.no_hashes,
            "persist": not args.no_persist,
            "changes_keep": args.changes_keep, "rss_before_kib": before,
            "rss_after_kib": after, "load_s": round(took, 2),
            "bytes_per_user": round((after - before) * 1024 / args.users)}))
    finally:
        srv.terminate()
        srv.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Change-stream cost: write throughput with 0, 10 and 200 watchers attached,
and the time from a write's reply to its event at a watcher (p50/p99).

    python3 bench/changes_bench.py [--build build] [--watchers 0,10,200]
                                   [--duration 5] [--users 10000]
                                   [--conns 16] [--pipeline 16]

One userdb-server (data in a temp dir, --fsync everysec); userdb-bench
loads --users users, then for each watcher count: W RPC watchers
(changes.watch nil) are attached by a reader process that reads and
discards with selectors (2 processes), userdb-bench --op update runs for
--duration seconds (--conns 16 connections x --pipeline 16 in flight), and a probe updates one
user of its own 5 times a second over RPC while an SSE watcher filtered to
that user (user_id=) notes when each event arrives: latency = event arrival
- reply arrival, both read by the same process.  The server's own CPU
time per update (utime + stime from /proc over the run) is shown too: it
is what the watchers cost the write path, apart from the readers' CPU
that competes with the server on the same cores.  Watchers cut by the server
(a reader that fell more than --max-output behind) are counted and shown.

Prints a JSON line per run and a table.  Everything shares the machine's
cores (server, load generator, readers): figures on a busy shared VM are
noisy; compare runs taken together."""
import argparse
import http.client
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

KEY = "bench-changes-key-0123456789"


def start_server(build, data):
    p = subprocess.Popen(
        [os.path.join(build, "userdb-server"), "--port", "0", "--http-port",
         "0", "--api-key", KEY, "--data-dir", data, "--snapshot-interval",
         "0", "--argon2-ops", "1", "--argon2-mem", "8192"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rpc = http_port = None
    for line in p.stdout:
        if "ready" in line:
            for w in line.split():
                if w.startswith("rpc="):
                    rpc = int(w.rsplit(":", 1)[1])
                if w.startswith("http="):
                    http_port = int(w.rsplit(":", 1)[1])
            break
    return p, rpc, http_port


def rpc_connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rpc_call(s, u, msgid, method, params):
    s.sendall(msgpack.packb([0, msgid, method, params]))
    while True:
        for m in u:
            if m[0] == 1 and m[1] == msgid:
                return m
        data = s.recv(1 << 16)
        if not data:
            raise EOFError
        u.feed(data)


def reader_proc(port, n, ready, stop, result):
    """n watchers in this process: watch from now, read and discard."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = rpc_connect(port)
        u = msgpack.Unpacker(raw=False)
        rpc_call(s, u, 1, "auth", [KEY])
        rpc_call(s, u, 2, "changes.watch", [None])
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    ready.set()
    buf = bytearray(1 << 20)
    total = cut = 0
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            try:
                k = key.fileobj.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                k = 0
            if k == 0:
                cut += 1
                sel.unregister(key.fileobj)
            total += k
    result.put((total, cut))


def probe(port, http_port, uid, stop, lat):
    """Update uid 5 times a second; an SSE watcher on uid notes arrivals."""
    c = http.client.HTTPConnection("127.0.0.1", http_port)
    c.request("GET", "/v1/events?user_id=" + uid,
              headers={"Authorization": "Bearer " + KEY})
    r = c.getresponse()
    r.fp.readline()
    r.fp.readline()  # the opening comment
    arrivals = {}

    def sse():
        name = None
        while True:
            line = r.fp.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                d = json.loads(line[6:])
                arrivals[d["user"]["name"]] = time.perf_counter()

    t = threading.Thread(target=sse, daemon=True)
    t.start()
    s = rpc_connect(port)
    u = msgpack.Unpacker(raw=False)
    rpc_call(s, u, 1, "auth", [KEY])
    replies = {}
    i = 0
    while not stop.is_set():
        i += 1
        name = "probe-%d" % i
        rpc_call(s, u, 10 + i, "user.update", [uid, {"name": name}])
        replies[name] = time.perf_counter()
        time.sleep(0.2)
    time.sleep(0.5)
    for name, t_reply in replies.items():
        if name in arrivals:
            lat.append((arrivals[name] - t_reply) * 1e3)
    s.close()
    c.close()


def cpu_seconds(pid):
    """utime + stime of a process, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(args, rpc, http_port, bench_bin, watchers, uid, pid):
    stop = multiprocessing.Event()
    result = multiprocessing.Queue()
    procs = []
    per = [watchers // 2, watchers - watchers // 2] if watchers else []
    for n in per:
        ready = multiprocessing.Event()
        p = multiprocessing.Process(target=reader_proc,
                                    args=(rpc, n, ready, stop, result))
        p.start()
        ready.wait(60)
        procs.append(p)
    pstop = threading.Event()
    lat = []
    pt = threading.Thread(target=probe,
                          args=(rpc, http_port, uid, pstop, lat))
    pt.start()
    cpu0 = cpu_seconds(pid)
    out = subprocess.run(
        [bench_bin, "--proto", "userdb", "--port", str(rpc), "--api-key",
         KEY, "--op", "update", "--users", str(args.users), "--conns",
         str(args.conns), "--pipeline", str(args.pipeline), "--duration",
         str(args.duration)],
        capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu0
    pstop.set()
    pt.join()
    stop.set()
    total = cut = 0
    for p in procs:
        t, c = result.get(timeout=30)
        total += t
        cut += c
        p.join()
    rep = json.loads(out)
    ops = rep["ops_per_sec"]
    lat.sort()
    row = {"watchers": watchers, "update_ops_per_s": ops,
           "server_cpu_us_per_update": cpu * 1e6 / max(1, rep["ops"]),
           "watchers_cut": cut, "watcher_bytes": total,
           "latency_ms_p50": lat[len(lat) // 2] if lat else None,
           "latency_ms_p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))]
           if lat else None, "latency_samples": len(lat)}
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--watchers", default="0,10,200")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--pipeline", type=int, default=16)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="userdb-chbench-")
    os.chmod(data, 0o700)
    srv, rpc, http_port = start_server(args.build, data)
    bench_bin = os.path.join(args.build, "userdb-bench")
    try:
        subprocess.run([bench_bin, "--proto", "userdb", "--port", str(rpc),
                        "--api-key", KEY, "--op", "load", "--users",
                        str(args.users)], capture_output=True, check=True)
        s = rpc_connect(rpc)
        u = msgpack.Unpacker(raw=False)
        rpc_call(s, u, 1, "auth", [KEY])
        m = rpc_call(s, u, 2, "user.create",
                     [{"name": "probe", "email": "probe@bench.example"}])
        uid = m[3]["id"]
        rows = [bench(args, rpc, http_port, bench_bin, int(w), uid, srv.pid)
                for w in args.watchers.split(",")]
        base = rows[0]["update_ops_per_s"]
        print("\nwatchers  updates/s  vs 0   server us/update  cut  "
              "p50 ms  p99 ms")
        for r in rows:
            ops = r["update_ops_per_s"]
            rel = ops / base if isinstance(ops, (int, float)) and \
                isinstance(base, (int, float)) and base else float("nan")
            print("%8d  %9.0f  %4.2fx  %16.2f  %3d  %6.2f  %6.2f" % (
                r["watchers"], ops, rel, r["server_cpu_us_per_update"],
                r["watchers_cut"],
                r["latency_ms_p50"] or -1, r["latency_ms_p99"] or -1))
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

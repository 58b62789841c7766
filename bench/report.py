#!/usr/bin/env python3
"""report.py -- turn the raw measurements of bench/run.sh into the results.

Input: a JSON-lines file, one measurement a line, each with "system"
(userdb, redis, tarantool, nginx) and "tag" (what was measured; see run.sh),
plus the fields userdb-bench or the shell printed.

Output, in the directory given:
  latest.json  {"meta": {...}, "comparisons": [...]}: one object per
               comparison: name, unit, better ("higher"/"lower"), the figure
               of each system, best_peer, ratio (userdb / best peer), target
               (e.g. ">= 1.1"), pass (true/false/null), latencies.
  latest.md    the same as Markdown tables.
  latest.png   gnuplot bar chart of userdb's advantage over the best peer
               (the ratio, inverted where lower is better), target marked.

Usage: report.py RAW.jsonl OUTDIR [key=value ...]   (key=value go to meta)
"""
import json
import os
import shutil
import subprocess
import sys

PEERS = ("redis", "tarantool")

# (op, pipeline) -> target on userdb / best peer ops/s (higher is better).
TARGETS = {
    ("get_by_id", 1): 1.1,
    ("get_by_id", 16): 1.3,
    ("get_by_email", 1): 1.1,
    ("get_by_email", 16): 1.3,
    ("list_first", 1): 1.2,
    ("list_first", 16): 1.2,
    ("update", 1): 1.3,
    ("update", 16): 1.3,
    ("create", 1): 1.3,
    ("create", 16): 1.3,
}
# (op, pipeline) -> target on userdb / best peer server CPU per request
# (lower is better).
CPU_TARGETS = {
    ("get_by_id", 1): 0.6,
    ("get_by_id", 16): 0.6,
    ("get_by_email", 1): 0.6,
    ("get_by_email", 16): 0.6,
    ("list_first", 1): 0.8,
    ("list_first", 16): 0.8,
}
# Redis runs some reads two ways; the better one is reported.
# op -> (tag of the alternative, main way, alternative way)
REDIS_ALT = {
    "get_by_email": ("email2rtt", "EVALSHA script", "GET + HGETALL"),
    "list_first": ("list2rtt", "EVALSHA script",
                   "ZCARD + ZREVRANGE, then pipelined HGETALLs"),
    "list_deep": ("list2rtt", "EVALSHA script",
                  "ZCARD + ZREVRANGE, then pipelined HGETALLs"),
}
ORDER = ["get_by_id", "get_by_email", "get_many", "list_first", "list_deep",
         "search", "update", "mix", "create", "load"]


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    print("report: skipping bad line: " + line[:80],
                          file=sys.stderr)
    return recs


def find(recs, **kw):
    """Last record matching every key=value (later runs win)."""
    hit = None
    for r in recs:
        if all(r.get(k) == v for k, v in kw.items()):
            hit = r
    return hit


def lat(r):
    if not r or "p50_us" not in r:
        return None
    return {k: r.get(k) for k in ("p50_us", "p99_us", "p999_us")}


def comparison(name, unit, better, figures, target=None, note=None,
               latency=None, ratio=None):
    """figures: system -> number or None.  ratio defaults to userdb / best
    peer; target is a number: ratio >= target (higher) or <= (lower)."""
    peers = {s: v for s, v in figures.items() if s != "userdb" and v}
    best_name = None
    if peers:
        pick = max if better == "higher" else min
        best_name = pick(peers, key=peers.get)
    u = figures.get("userdb")
    if ratio is None and u is not None and best_name:
        ratio = u / peers[best_name] if peers[best_name] else None
    ok = None
    if target is not None and ratio is not None:
        ok = ratio >= target if better == "higher" else ratio <= target
    c = {"name": name, "unit": unit, "better": better,
         "userdb": u, "redis": figures.get("redis"),
         "tarantool": figures.get("tarantool"),
         "nginx": figures.get("nginx"),
         "best_peer": best_name,
         "ratio": round(ratio, 3) if ratio is not None else None,
         "target": (None if target is None else
                    (">= " if better == "higher" else "<= ") + str(target)),
         "pass": ok}
    if note:
        c["note"] = note
    if latency:
        c["latency_us"] = latency
    return c


def workload_rows(recs):
    rows = []
    keys = sorted({(r["op"], r.get("pipeline", 1)) for r in recs
                   if r.get("tag") == "main" and "ops_per_sec" in r},
                  key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99,
                                 k[1]))
    for op, p in keys:
        figs, lats, note = {}, {}, None
        for s in ("userdb",) + PEERS:
            r = find(recs, tag="main", system=s, op=op, pipeline=p)
            alt = REDIS_ALT.get(op) if s == "redis" else None
            if alt:
                r2 = find(recs, tag=alt[0], system=s, op=op, pipeline=p)
                if r2 and (not r or r2["ops_per_sec"] > r["ops_per_sec"]):
                    r, note = r2, "Redis: %s (beat %s)" % (alt[2], alt[1])
                elif r and r2:
                    note = "Redis: %s (beat %s)" % (alt[1], alt[2])
            if r and r.get("client_cpu", 0) >= 0.9 * r.get("threads", 1):
                note = (note + "; " if note else "") + \
                    "%s: load generator near 100%% CPU (client-bound)" % s
            if r and r.get("errors"):
                note = (note + "; " if note else "") + \
                    "%s had %d errors" % (s, r["errors"])
            figs[s] = r["ops_per_sec"] if r else None
            if r and not r.get("ops"):
                note = (note + "; " if note else "") + \
                    "%s: no request completed in the window" % s
            if lat(r):
                lats[s] = lat(r)
        users = next((r["users"] for r in recs if r.get("tag") == "main"
                      and r.get("op") == op), None)
        name = "%s P=%d" % (op, p) if op != "load" else \
            "load %s users (P=%d)" % (users, p)
        rows.append(comparison(name, "ops/s", "higher", figs,
                               TARGETS.get((op, p)), note, lats))
        cpu = {}
        for s in ("userdb",) + PEERS:
            r = find(recs, tag="main", system=s, op=op, pipeline=p)
            if r and r.get("server_us_per_op"):
                cpu[s] = r["server_us_per_op"]
        if cpu:
            rows.append(comparison(name + " server CPU", "us/request",
                                   "lower", cpu, CPU_TARGETS.get((op, p)),
                                   "server CPU time (all threads) over the "
                                   "measured window / requests"))
    return rows


def by_system(recs, tag, field):
    out = {}
    for s in ("userdb",) + PEERS + ("nginx",):
        r = find(recs, tag=tag, system=s)
        out[s] = r.get(field) if r else None
    return out


def scaling_rows(recs, n_main):
    rows = []
    # deep page vs first page: each system's own first/deep throughput ratio.
    ps = sorted({r.get("pipeline") for r in recs if r.get("op") == "list_deep"
                 and r.get("tag") == "main"})
    for p in ps[-1:]:
        figs = {}
        for s in ("userdb",) + PEERS:
            a = find(recs, tag="main", system=s, op="list_first", pipeline=p)
            b = find(recs, tag="main", system=s, op="list_deep", pipeline=p)
            if a and b and b["ops_per_sec"]:
                figs[s] = round(a["ops_per_sec"] / b["ops_per_sec"], 3)
        rows.append(comparison(
            "deep page vs first page cost (P=%d)" % p, "x (first/deep ops/s)",
            "lower", figs, 2, "each system's own ratio; target on userdb's",
            ratio=figs.get("userdb")))
    # get_by_id at the main size vs the small size (userdb).
    small = [r for r in recs if r.get("tag") == "small"
             and r.get("op") == "get_by_id" and r.get("system") == "userdb"]
    for r in sorted(small, key=lambda r: r["users"])[:1]:
        big = find(recs, tag="main", system="userdb", op="get_by_id",
                   pipeline=r["pipeline"])
        if big and r["ops_per_sec"]:
            ratio = big["ops_per_sec"] / r["ops_per_sec"]
            c = comparison("get_by_id %d vs %d users (P=%d)" % (
                n_main, r["users"], r["pipeline"]), "x (ops/s ratio)",
                "higher", {"userdb": round(ratio, 3)}, 0.9, ratio=ratio)
            rows.append(c)
    for r in [r for r in recs if r.get("tag") == "small"
              and r.get("op") == "search" and r.get("system") == "userdb"]:
        big = find(recs, tag="main", system="userdb", op="search")
        if big and r["ops_per_sec"]:
            ratio = big["ops_per_sec"] / r["ops_per_sec"]
            rows.append(comparison(
                "search %d vs %d users" % (n_main, r["users"]),
                "x (ops/s ratio)", "higher", {"userdb": round(ratio, 4)},
                None, "a substring scan: expected to fall with size",
                ratio=ratio))
    return rows


def build(recs, meta):
    n_main = int(meta.get("users", 0) or 0)
    rows = workload_rows(recs)
    rows.append(comparison("memory per user at %d users, with password "
                           "hashes" % n_main,
                           "bytes (RSS after load - empty)", "lower",
                           by_system(recs, "rss", "bytes_per_user"), 0.7))
    if any(r.get("tag") == "rss_nohash" for r in recs):
        rows.append(comparison("memory per user at %d users, no password "
                               "hashes" % n_main,
                               "bytes (RSS after load - empty)", "lower",
                               by_system(recs, "rss_nohash",
                                         "bytes_per_user"), 0.8))
    rows.append(comparison("start-up load, %d users" % n_main, "s", "lower",
                           by_system(recs, "startup", "seconds"), 0.3))
    rows.append(comparison("snapshot write, %d users" % n_main, "s",
                           "lower", by_system(recs, "snapshot", "seconds"),
                           1))
    if any(r.get("tag") == "snapshot_size" for r in recs):
        rows.append(comparison("snapshot file, %d users" % n_main, "bytes",
                               "lower",
                               by_system(recs, "snapshot_size", "bytes"), 1))
    http = {s: (find(recs, tag="http", system=s) or {}).get("ops_per_sec")
            for s in ("userdb", "nginx")}
    hl = {s: lat(find(recs, tag="http", system=s)) for s in http}
    rows.append(comparison("HTTP GET /v1/users/{id} vs nginx static",
                           "req/s", "higher", http, 0.8, "wrk",
                           {k: v for k, v in hl.items() if v}))
    rows += scaling_rows(recs, n_main)
    rows += fsync_rows(recs)
    return rows


def fsync_rows(recs):
    """get_by_id p99 while 50 clients create: --fsync always over everysec
    (bench/fsync_p99.sh); userdb's own ratio."""
    e = find(recs, tag="fsync_reads_everysec", system="userdb")
    a = find(recs, tag="fsync_reads_always", system="userdb")
    if not (e and a and e.get("p99_us")):
        return []
    ratio = a["p99_us"] / e["p99_us"]
    return [comparison("get_by_id p99 while 50 clients create, fsync "
                       "always vs everysec (%d users)" % a["users"],
                       "x (p99 ratio)", "lower", {"userdb": round(ratio, 3)},
                       1.5, "reads not queued behind fdatasync (the log's "
                       "syncer thread)", {"userdb": lat(a)}, ratio=ratio)]


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 1000:
            return "{:,.0f}".format(v)
        return "{:.3g}".format(v)
    return str(v)


def markdown(rows, meta):
    out = ["# userdb vs Redis, Tarantool, nginx", ""]
    out.append(", ".join("%s: %s" % kv for kv in sorted(meta.items())))
    out += ["", "Ratio = userdb / best peer (for scaling rows: userdb's own "
            "ratio). Targets from the issue.", "",
            "| comparison | unit | userdb | Redis | Tarantool | nginx | "
            "ratio | target | ok |",
            "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ok = {True: "yes", False: "**no**", None: ""}[r["pass"]]
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["unit"], fmt(r["userdb"]), fmt(r["redis"]),
            fmt(r["tarantool"]), fmt(r["nginx"]), fmt(r["ratio"]),
            r["target"] or "", ok))
    out += ["", "Latency, microseconds (p50 / p99 / p99.9):", "",
            "| workload | userdb | Redis | Tarantool | nginx |",
            "|---|---|---|---|---|"]
    for r in rows:
        L = r.get("latency_us")
        if not L:
            continue
        cells = []
        for s in ("userdb", "redis", "tarantool", "nginx"):
            v = L.get(s)
            cells.append("%s / %s / %s" % (fmt(v["p50_us"]), fmt(v["p99_us"]),
                                           fmt(v["p999_us"])) if v else "-")
        out.append("| %s | %s |" % (r["name"], " | ".join(cells)))
    notes = [r for r in rows if r.get("note")]
    if notes:
        out += ["", "Notes:", ""]
        out += ["- %s: %s" % (r["name"], r["note"]) for r in notes]
    return "\n".join(out) + "\n"


def chart(rows, outdir):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no chart", file=sys.stderr)
        return
    data = os.path.join(outdir, "latest.dat.tmp")
    n = 0
    with open(data, "w") as f:
        for r in rows:
            if r["ratio"] is None or r["ratio"] <= 0:
                continue
            inv = r["better"] == "lower"
            adv = 1 / r["ratio"] if inv else r["ratio"]
            t = r["target"]
            tv = float(t.split()[1]) if t else None
            if tv is not None and inv:
                tv = 1 / tv
            label = r["name"].replace('"', "'")[:40]
            f.write('%d "%s" %g %s\n' % (n, label, adv,
                                         "%g" % tv if tv else "NaN"))
            n += 1
    if not n:
        os.remove(data)
        return
    png = os.path.join(outdir, "latest.png")
    script = """
set terminal pngcairo size 1400,700 noenhanced font ",10"
set output '%s'
set title "userdb advantage over the best of Redis / Tarantool / nginx (> 1: userdb better; 'lower is better' rows inverted; scaling rows: userdb's own ratio)"
set logscale y
set grid ytics
set style fill solid 0.6
set boxwidth 0.6
set xtics rotate by -40 left
set key top left
set yrange [*:*]
set bmargin 12
set rmargin 20
plot '%s' using 1:3:xtic(2) with boxes title 'userdb advantage', \\
     '' using 1:4 with points pt 7 ps 1.5 lc rgb 'red' title 'target', \\
     1 with lines lc rgb 'black' notitle
""" % (png, data)
    r = subprocess.run(["gnuplot"], input=script, text=True,
                       capture_output=True)
    if r.returncode:
        print("report: gnuplot failed: " + r.stderr, file=sys.stderr)
    os.remove(data)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    recs = load(sys.argv[1])
    outdir = sys.argv[2]
    meta = dict(a.split("=", 1) for a in sys.argv[3:])
    rows = build(recs, meta)
    with open(os.path.join(outdir, "latest.json"), "w") as f:
        json.dump({"meta": meta, "comparisons": rows}, f, indent=1)
        f.write("\n")
    md = markdown(rows, meta)
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(md)
    chart(rows, outdir)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/pg.sh's measurements (raw JSON lines) -> the comparison table.

Usage: pg_report.py RAW USERS DURATION RUNS RATE CONNS FSYNC

Each figure is the median over the rounds of its tag; a ratio is the ratio
of the two medians (both sides ran in the same rounds, alternately)."""
import json
import statistics
import sys


def main():
    raw, users, dur, runs, rate, conns, fsync = sys.argv[1:8]
    by = {}
    with open(raw) as f:
        for line in f:
            d = json.loads(line)
            by.setdefault(d["tag"], []).append(d)

    def med(tag, key):
        v = [d[key] for d in by.get(tag, []) if key in d]
        return statistics.median(v) if v else None

    def fmt(v, nd=1):
        if v is None:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"

    rows = []

    def row(name, unit, ours, peer, goal, higher=True, note=""):
        ratio = None
        if ours is not None and peer:
            ratio = ours / peer
        ok = "-"
        if goal is not None:
            v = ratio if peer is not None else ours
            if v is not None:
                ok = "yes" if (v >= goal if higher else v <= goal) else "no"
        g = "-" if goal is None else (">= " if higher else "<= ") + f"{goal:g}"
        g += "x" if goal is not None and peer is not None else ""
        rows.append((name, unit, fmt(ours), fmt(peer),
                     "-" if ratio is None else f"{ratio:.2f}", g, ok, note))

    n = int(users)
    row(f"start-up from {n:,} users (exec to ready)", "s",
        med("startup", "seconds"), None, 3, higher=False,
        note="CPU below")
    row("  node CPU during start-up", "s", med("startup", "server_cpu_s"),
        None, None)
    row("  cluster CPU during start-up", "s", med("startup", "tree_cpu_s"),
        None, None)
    for p in (1, 16):
        row(f"get_by_id P={p}: PostgreSQL-backed node vs default mode",
            "ops/s", med(f"get_pg_p{p}", "ops_per_sec"),
            med(f"get_default_p{p}", "ops_per_sec"), 0.95)
        row("  server CPU per request (lower is better)", "us",
            med(f"get_pg_p{p}", "server_us_per_op"),
            med(f"get_default_p{p}", "server_us_per_op"), None)
    row("get_by_id P=1 on the node vs pgbench SELECT by id (-M prepared)",
        "ops/s", med("get_pg_p1", "ops_per_sec"),
        med("select_pgbench", "ops_per_sec"), 3)
    row("  CPU per request: node vs cluster (lower is better)", "us",
        med("get_pg_p1", "server_us_per_op"),
        med("select_pgbench", "tree_us_per_op"), None)
    row("create through the node vs pgbench INSERT of the same rows",
        "ops/s", med("create_node", "ops_per_sec"),
        med("insert_pgbench", "ops_per_sec"), 0.8)
    row("  cluster CPU per write (lower is better)", "us",
        med("create_node", "tree_us_per_op"),
        med("insert_pgbench", "tree_us_per_op"), None)
    row("  node CPU per write", "us", med("create_node", "server_us_per_op"),
        None, None)
    row("  write latency p50 node / mean pgbench", "us",
        med("create_node", "p50_us"), med("insert_pgbench", "mean_us"),
        None)
    row(f"coherence lag A -> B p50, creates offered at {int(rate):,}/s",
        "ms", ms(med("lag", "lag_p50_us")), None, None)
    row("coherence lag A -> B p99", "ms", ms(med("lag", "lag_p99_us")),
        None, 50, higher=False)
    row("  writes/s A actually did meanwhile", "ops/s",
        med("lag", "ops_per_sec"), None, None)
    row("  lag samples per round / never seen in 5 s", "n",
        med("lag", "lag_samples"), med("lag", "lag_missing"), None)

    print(f"# userdb PostgreSQL mode vs PostgreSQL 15 ({n:,} users)\n")
    print(f"{conns} connections, {dur} s per workload, median of {runs} "
          f"round(s), fsync={fsync}, synchronous_commit=on (both sides); "
          "one shared, busy 2-core machine: compare ratios, not absolute "
          "figures.\n")
    print("| measurement | unit | userdb | peer | ratio | goal | met | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\nPer round (ops/s or s):")
    for tag in sorted(by):
        key = "seconds" if tag == "startup" else "ops_per_sec"
        vals = ", ".join(fmt(d.get(key)) for d in by[tag])
        print(f"- {tag}: {vals}")


def ms(us):
    return None if us is None else us / 1000


if __name__ == "__main__":
    main()

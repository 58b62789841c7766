#!/usr/bin/env python3
"""userdb-server --postgres against a real PostgreSQL 15 (SPEC §7).

Real binary on 127.0.0.1 port 0, real cluster (the ctest fixture's, plus a
private one for the test that stops PostgreSQL), SQL through psql.
Each case prints its name; any failure exits 1.
"""
import http.client
import json
import msgpack
import os
import socket
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import atexit

SERVER = os.environ["USERDB_SERVER"]
SRC = os.environ["USERDB_SOURCE_DIR"]
CLUSTER = open(os.environ["USERDB_PG_CONNINFO_FILE"]).read().strip()
KEY = "pgtestkey"
TMP = tempfile.mkdtemp(prefix="udpgsrv-")
os.chmod(TMP, 0o755)
_n = [0]
_servers = []


@atexit.register
def _kill_all():
    """A failed case must not leave servers behind (they would hold
    ctest's output pipe open and retry their connection forever)."""
    for s in _servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(timeout=20)


def psql(conninfo, sql):
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                          "-d", conninfo, "-c", sql],
                         capture_output=True, text=True, timeout=30)
    if out.returncode:
        raise RuntimeError("psql %s: %s" % (sql, out.stderr))
    return out.stdout.strip()


def new_db(cluster=CLUSTER):
    _n[0] += 1
    name = "srv_%d_%d" % (os.getpid(), _n[0])
    psql(cluster, "CREATE DATABASE " + name)
    return cluster + " dbname=" + name


class Server:
    def __init__(self, conninfo, data_dir=None):
        _n[0] += 1
        self.dir = data_dir or os.path.join(TMP, "node%d" % _n[0])
        self.conninfo = conninfo
        self.start()

    def start(self):
        args = [SERVER, "--postgres", self.conninfo, "--data-dir", self.dir,
                "--port", "0", "--http-port", "0", "--api-key", KEY,
                "--argon2-ops", "1", "--argon2-mem", "8192"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        _servers.append(self)
        self.out = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out.append(line)
            if "ready" in line:
                self.port = int(line.split("http=")[1].split(":")[1])
                self.rpc_port = int(line.split("rpc=")[1].split()[0]
                                    .rsplit(":", 1)[1])
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("server did not become ready: %r" % self.out)

    def _drain(self):
        for line in self.proc.stdout:
            self.out.append(line)

    def call(self, method, path, body=None, headers=None, timeout=15):
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        h = {"Authorization": "Bearer " + KEY}
        h.update(headers or {})
        try:
            c.request(method, path,
                      None if body is None else json.dumps(body), h)
            r = c.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None, r
        except (ConnectionError, http.client.HTTPException, OSError):
            return None, None, None  # not acknowledged
        finally:
            c.close()

    def rpc(self, method, params, timeout=15):
        """One MessagePack-RPC call on a fresh connection: (error, result),
        or None when the connection closed unanswered."""
        s = socket.create_connection(("127.0.0.1", self.rpc_port),
                                     timeout=timeout)
        try:
            s.sendall(msgpack.packb([0, 1, "auth", [KEY]]) +
                      msgpack.packb([0, 2, method, params]))
            un = msgpack.Unpacker(raw=False)
            got = {}
            while 2 not in got:
                data = s.recv(65536)
                if not data:
                    return None
                un.feed(data)
                for m in un:
                    got[m[1]] = (m[2], m[3])
            return got[2]
        except OSError:
            return None
        finally:
            s.close()

    def dump(self):
        users, page = [], 1
        while True:
            st, b, _ = self.call("GET", "/v1/users?limit=100&order=asc"
                                 "&page=%d" % page)
            assert st == 200, (st, b)
            users += b["data"]
            if page >= b["pagination"]["pages"]:
                return users
            page += 1

    def metric(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/metrics", None, {"Authorization": "Bearer " + KEY})
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        return self.proc.returncode


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def rows(conninfo):
    out = psql(conninfo, "SELECT id || ' ' || email || ' ' || role || ' ' ||"
               " version FROM userdb.users ORDER BY id")
    return set(out.splitlines()) if out else set()


def t_writes_are_rows_and_come_back_after_restart():
    ci = new_db()
    s = Server(ci)
    st, b, _ = s.call("POST", "/v1/users", {
        "name": "王小明", "email": "Wang@Example.com", "password": "hunter22",
        "custom_data": {"plan": "pro", "n": [1, 2]}, "avatar":
        "https://x.io/a.png"})
    expect(st == 201, (st, b))
    uid = b["data"]["id"]
    # read-your-own-write at once, on the writing node
    st, b, r = s.call("GET", "/v1/users/" + uid)
    expect(st == 200 and b["data"]["name"] == "王小明", b)
    etag = r.getheader("ETag")
    row = psql(ci, "SELECT name, email_folded, custom_data->>'plan',"
               " password_hash LIKE '$argon2id$%%' FROM userdb.users"
               " WHERE id = '%s'" % uid)
    expect(row == "王小明|wang@example.com|pro|t", row)
    # If-Match: a stale ETag is 412, the right one goes through
    st, b, _ = s.call("PATCH", "/v1/users/" + uid, {"role": "admin"},
                      {"If-Match": '"0000000000000999"'})
    expect(st == 412, (st, b))
    st, b, _ = s.call("PATCH", "/v1/users/" + uid, {"role": "admin"},
                      {"If-Match": etag})
    expect(st == 200, (st, b))
    st, b, _ = s.call("POST", "/v1/users/%s/password/verify" % uid,
                      {"password": "hunter22"})
    expect(st == 200 and b["data"]["valid"], b)
    st, b, _ = s.call("POST", "/v1/users/%s/password/verify" % uid,
                      {"password": "wrong-one"})
    expect(st == 200 and not b["data"]["valid"], b)
    st, b, _ = s.call("POST", "/v1/users", {"name": "Gone",
                                            "email": "gone@x.io"})
    gone = b["data"]["id"]
    expect(s.call("DELETE", "/v1/users/" + gone)[0] == 200, "delete")
    expect(psql(ci, "SELECT count(*) FROM userdb.users WHERE id = '%s'"
                % gone) == "0", "deleted row")
    ev = psql(ci, "SELECT string_agg(event, ',' ORDER BY id) FROM"
              " userdb.events WHERE user_id = '%s'" % uid)
    expect(ev == "user.created,user.updated,user.password_verified,"
           "user.password_verified", ev)
    before = s.dump()
    _, logs_before, _ = s.call("GET", "/v1/logs?user_id=" + uid)
    _, gone_logs, _ = s.call("GET", "/v1/logs?user_id=" + gone)
    expect(s.kill(signal.SIGTERM) == 0, "clean exit")
    expect(sorted(os.listdir(s.dir)) == ["LOCK", "api-key", "node-id"] or
           sorted(os.listdir(s.dir)) == ["LOCK", "node-id"],
           os.listdir(s.dir))
    s.start()
    after = s.dump()
    expect(after == before, "same users after restart:\n%r\n%r" %
           (before, after))
    # entry ids are each node's own numbering; the entries are the same
    def entries(b):
        return [(e["event"], e["created_at"], e["details"])
                for e in b["data"]]
    expect(entries(s.call("GET", "/v1/logs?user_id=" + uid)[1]) ==
           entries(logs_before), "same log")
    got = entries(s.call("GET", "/v1/logs?user_id=" + gone)[1])
    expect(got == entries(gone_logs), "deleted user's log: %r / %r" %
           (got, entries(gone_logs)))
    st, b, r = s.call("GET", "/v1/users/" + uid)
    expect(b["data"]["last_sign_in_at"] is not None, b)
    # a second server on the same data dir is refused
    p = subprocess.run([SERVER, "--postgres", ci, "--data-dir", s.dir,
                        "--port", "0", "--http-port", "0"],
                       capture_output=True, text=True, timeout=20)
    expect(p.returncode != 0 and "in use" in p.stderr, p.stderr)
    s.kill()


def t_duplicate_email_is_409_from_the_engine():
    ci = new_db()
    s = Server(ci)
    expect(s.call("POST", "/v1/users", {"name": "A",
                                        "email": "A@x.io"})[0] == 201, "a")
    st, b, _ = s.call("POST", "/v1/users", {"name": "B", "email": "a@X.IO"})
    expect(st == 409 and b["error"]["code"] == "duplicate_email", b)
    expect(psql(ci, "SELECT count(*) FROM userdb.users") == "1", "one row")
    s.kill()


def t_email_race_between_nodes_never_gives_two_users():
    ci = new_db()
    a, b = Server(ci), Server(ci)
    res = []
    for i in range(10):
        em = "race%d@x.io" % i
        out = [None, None]

        def go(k, s):
            out[k] = s.call("POST", "/v1/users", {"name": "R", "email": em})

        ts = [threading.Thread(target=go, args=(0, a)),
              threading.Thread(target=go, args=(1, b))]
        [t.start() for t in ts]
        [t.join() for t in ts]
        oks = [o for o in out if o[0] == 201]
        expect(len(oks) == 1, "exactly one create acknowledged: %r" %
               ([o[0] for o in out],))
        res.append(em)
        expect(psql(ci, "SELECT count(*) FROM userdb.users WHERE"
                    " email_folded = '%s'" % em) == "1", em)
    refused = a.metric("userdb_pg_writes_refused_total") + \
        b.metric("userdb_pg_writes_refused_total")
    expect(refused >= 1, "the losing writes were refused by PostgreSQL")
    a.kill()
    b.kill()


def t_races_between_nodes_get_409_and_412():
    """PostgreSQL's verdict is the reply: N creates of one email across
    three nodes (HTTP and RPC) give one success and 409s; If-Match
    updates of one version across the nodes give one 200 and 412s; no
    node's memory keeps a refused change."""
    ci = new_db()
    nodes = [Server(ci) for _ in range(3)]
    for rnd in range(5):
        em = "same%d@x.io" % rnd
        out = [None] * 6
        go = threading.Barrier(6)

        def create(k):
            s = nodes[k % 3]
            go.wait()
            if k < 3:
                st, b, _ = s.call("POST", "/v1/users",
                                  {"name": "R%d" % k, "email": em})
                out[k] = (st, b and (b.get("error") or {}).get("code"))
            else:
                r = s.rpc("user.create", [{"name": "R%d" % k, "email": em}])
                out[k] = None if r is None else \
                    (201 if r[0] is None else r[0]["code"],
                     r[0] and r[0]["code"])
        ts = [threading.Thread(target=create, args=(k,)) for k in range(6)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        expect(sum(1 for o in out if o and o[0] == 201) == 1,
               "one create wins: %r" % out)
        expect(all(o and (o[0] == 201 or o[1] == "duplicate_email")
                   for o in out), "the others are 409 duplicate_email: %r"
               % out)
    users = converge(nodes, ci, "after the email races")
    expect(len(users) == 5, "one user per email: %d" % len(users))
    # If-Match races on one user from every node
    st, b, _ = nodes[0].call("POST", "/v1/users",
                             {"name": "M", "email": "match@x.io"})
    uid = b["data"]["id"]
    converge(nodes, ci, "the user is everywhere")
    for rnd in range(5):
        st, b, r = nodes[0].call("GET", "/v1/users/" + uid)
        etag = r.getheader("ETag")
        out = [None] * 6
        go = threading.Barrier(6)

        def patch(k):
            go.wait()
            st, b, _ = nodes[k % 3].call(
                "PATCH", "/v1/users/" + uid,
                {"name": "P%d-%d" % (rnd, k)}, {"If-Match": etag})
            out[k] = (st, b and (b.get("error") or {}).get("code"),
                      b and b.get("data", {}).get("name"))
        ts = [threading.Thread(target=patch, args=(k,)) for k in range(6)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        wins = [o for o in out if o and o[0] == 200]
        expect(len(wins) == 1, "one update wins: %r" % out)
        expect(all(o and (o[0] == 200 or (o[0] == 412 and
                                          o[1] == "precondition_failed"))
                   for o in out), "the others are 412: %r" % out)
        users = converge(nodes, ci, "after If-Match race %d" % rnd)
        got = [u for u in users if u["id"] == uid][0]["name"]
        expect(got == wins[0][2], "every node holds the winner's write: %s"
               " vs %s" % (got, wins[0][2]))
        expect(psql(ci, "SELECT name FROM userdb.users WHERE id = '%s'"
                    % uid) == got, "PostgreSQL holds it too")
    [n.kill() for n in nodes]


def writer(s, stop, acked, prefix):
    i = 0
    while not stop.is_set():
        i += 1
        st, b, _ = s.call("POST", "/v1/users",
                          {"name": "L", "email": "%s%d@x.io" % (prefix, i)},
                          timeout=10)
        if st == 201:
            acked.append(b["data"]["id"])
        elif st is None:
            time.sleep(0.01)


def t_kill_9_under_load_loses_nothing_acknowledged():
    ci = new_db()
    s = Server(ci)
    stop, acked = threading.Event(), []
    ts = [threading.Thread(target=writer, args=(s, stop, acked, "k%d_" % k))
          for k in range(4)]
    [t.start() for t in ts]
    time.sleep(1.5)
    s.kill(signal.SIGKILL)
    stop.set()
    [t.join() for t in ts]
    expect(len(acked) > 20, "load ran: %d" % len(acked))
    in_pg = set(psql(ci, "SELECT id FROM userdb.users").splitlines())
    lost = [u for u in acked if u not in in_pg]
    expect(not lost, "acknowledged but not in PostgreSQL: %r" % lost[:5])
    s.start()
    ids = {u["id"] for u in s.dump()}
    expect(in_pg == ids, "restart loads exactly the table")
    s.kill()


def t_postgres_down_reads_go_on_writes_503_then_resume():
    pdir = os.path.join(TMP, "private-pg")
    ci = subprocess.run(["bash", os.path.join(SRC, "tests/pg/cluster.sh"),
                         "start", pdir], capture_output=True, text=True,
                        check=True).stdout.strip()
    try:
        s = Server(ci)
        st, b, _ = s.call("POST", "/v1/users", {"name": "K",
                                                "email": "k@x.io"})
        uid = b["data"]["id"]
        stop, acked = threading.Event(), []
        t = threading.Thread(target=writer, args=(s, stop, acked, "d"))
        t.start()
        time.sleep(0.5)
        bin_ = "/usr/lib/postgresql/15/bin/pg_ctl"
        owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        subprocess.run(owner + [bin_, "-D", pdir + "/data", "-m", "immediate",
                                "-w", "stop"], check=True,
                       capture_output=True)
        time.sleep(0.3)
        t0 = time.time()
        st, b, _ = s.call("POST", "/v1/users", {"name": "X",
                                                "email": "x@x.io"})
        took = time.time() - t0
        expect(st == 503 and b["error"]["code"] == "unavailable", (st, b))
        expect(took < 5, "503 within 5 s: %.1f" % took)
        st, b, _ = s.call("GET", "/v1/users/" + uid)
        expect(st == 200, "reads go on while PostgreSQL is down")
        expect(s.metric("userdb_pg_up") == 0, "metrics show it down")
        subprocess.run(owner + [bin_, "-D", pdir + "/data", "-l",
                                pdir + "/server.log", "-w", "start"],
                       check=True, capture_output=True)
        deadline = time.time() + 15
        while time.time() < deadline:
            st, b, _ = s.call("POST", "/v1/users", {"name": "Y",
                                                    "email": "y@x.io"})
            if st == 201:
                break
            time.sleep(0.2)
        expect(st == 201, "writes resume: %r" % (st,))
        time.sleep(0.5)
        stop.set()
        t.join()
        in_pg = set(psql(ci, "SELECT id FROM userdb.users").splitlines())
        lost = [u for u in acked if u not in in_pg]
        expect(not lost, "acknowledged but not in PostgreSQL: %r" % lost[:5])
        s.kill()
    finally:
        subprocess.run(["bash", os.path.join(SRC, "tests/pg/cluster.sh"),
                        "stop", pdir], capture_output=True)


def converge(nodes, ci, what, timeout=15):
    """Every node's full dump equals the others' and PostgreSQL's ids."""
    deadline = time.time() + timeout
    while True:
        dumps = [sorted(n.dump(), key=lambda u: u["id"]) for n in nodes]
        in_pg = set(psql(ci, "SELECT id FROM userdb.users").splitlines()) - {""}
        same = all(d == dumps[0] for d in dumps) and \
            {u["id"] for u in dumps[0]} == in_pg
        if same:
            return dumps[0]
        if time.time() > deadline:
            said = [ln.strip() for n in nodes for ln in n.out
                    if "postgres:" in ln][-8:]
            raise AssertionError("%s: nodes did not converge (%s users in "
                                 "PostgreSQL, %s on the nodes); the nodes "
                                 "said %r" % (what, len(in_pg),
                                              [len(d) for d in dumps], said))
        time.sleep(0.2)


def random_writes(s, rnd, n, known, lock):
    for _ in range(n):
        op = rnd.random()
        with lock:
            ids = list(known)
        if op < 0.5 or not ids:
            st, b, _ = s.call("POST", "/v1/users", {
                "name": "N%d" % rnd.randrange(10**6),
                "email": "r%d@x.io" % rnd.randrange(10**9),
                "custom_data": {"k": rnd.randrange(100)}})
            if st == 201:
                with lock:
                    known.add(b["data"]["id"])
        elif op < 0.85:
            s.call("PATCH", "/v1/users/" + rnd.choice(ids), {
                "name": "U%d" % rnd.randrange(10**6),
                "role": rnd.choice(["admin", "user", "viewer"])})
        else:
            uid = rnd.choice(ids)
            if s.call("DELETE", "/v1/users/" + uid)[0] == 200:
                with lock:
                    known.discard(uid)


def t_three_nodes_converge_after_random_writes_through_each():
    ci = new_db()
    nodes = [Server(ci) for _ in range(3)]
    # Two writers per node, all updating and deleting the same users
    # concurrently: the losers of each race are refused by PostgreSQL and
    # their nodes' memory put back to the row.
    lock = threading.Lock()
    shared = set()
    owned = [shared for _ in nodes]
    ts = [threading.Thread(target=random_writes,
                           args=(n, random.Random(k * 10 + j), 40, shared,
                                 lock))
          for k, n in enumerate(nodes) for j in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    users = converge(nodes, ci, "three nodes")
    expect(len(users) > 20, "writes happened: %d" % len(users))
    # kill -9 one node, write through the others, restart it: it has all
    nodes[0].kill()
    random_writes(nodes[1], random.Random(9), 30, owned[1], lock)
    nodes[0].start()
    converge(nodes, ci, "after kill -9 and restart")
    [n.kill() for n in nodes]


def t_sql_update_and_delete_reach_every_node():
    ci = new_db()
    a, b = Server(ci), Server(ci)
    st, body, _ = a.call("POST", "/v1/users", {"name": "S", "email":
                                                "s@x.io"})
    uid = body["data"]["id"]
    _, _, r = a.call("GET", "/v1/users/" + uid)
    etag = r.getheader("ETag")
    psql(ci, "UPDATE userdb.users SET name = 'From SQL', role = 'viewer',"
         " status = 'inactive', avatar = 'https://x.io/s.png',"
         " custom_data = '{\"v\": 2}', email = 'S2@x.io'"
         " WHERE id = '%s'" % uid)
    for n in (a, b):
        deadline = time.time() + 10
        while time.time() < deadline:
            st, body, r = n.call("GET", "/v1/users/" + uid)
            if body["data"]["name"] == "From SQL":
                break
            time.sleep(0.05)
        d = body["data"]
        expect((d["name"], d["role"], d["status"], d["avatar"],
                d["custom_data"], d["email"]) ==
               ("From SQL", "viewer", "inactive", "https://x.io/s.png",
                {"v": 2}, "S2@x.io"), d)
        expect(r.getheader("ETag") != etag, "the ETag moved")
        st, body, _ = n.call("GET", "/v1/users?email=s2@X.IO")
        expect(body["pagination"]["total"] == 1, "found by the new email")
    psql(ci, "DELETE FROM userdb.users WHERE id = '%s'" % uid)
    for n in (a, b):
        deadline = time.time() + 10
        while n.call("GET", "/v1/users/" + uid)[0] != 404:
            expect(time.time() < deadline, "delete seen")
            time.sleep(0.05)
    a.kill()
    b.kill()


def t_hostile_rows_are_skipped_and_counted():
    ci = new_db()
    a = Server(ci)
    a.call("POST", "/v1/users", {"name": "Ok", "email": "ok@x.io"})
    psql(ci, "INSERT INTO userdb.users (id, name, email, email_folded)"
         " VALUES ('usr_h1', 'H', 'no-at-sign', 'no-at-sign'),"
         " ('usr_h2', 'H', 'OK@X.IO', 'folded-differently'),"
         " ('bad id', 'H', 'h3@x.io', 'h3@x.io')")
    psql(ci, "INSERT INTO userdb.users (id, name, email, email_folded,"
         " custom_data) VALUES ('usr_h4', 'H', 'h4@x.io', 'h4@x.io',"
         " '[1]')")
    psql(ci, "INSERT INTO userdb.users (id, name, email, email_folded)"
         " VALUES ('usr_fine', 'Fine', 'fine@x.io', 'fine@x.io')")
    deadline = time.time() + 10
    while a.call("GET", "/v1/users/usr_fine")[0] != 200:
        expect(time.time() < deadline, "the good row after them applied")
        time.sleep(0.05)
    expect(a.metric("userdb_pg_rows_skipped_total") == 4,
           a.metric("userdb_pg_rows_skipped_total"))
    for bad in ("usr_h1", "usr_h2", "usr_h4"):
        expect(a.call("GET", "/v1/users/" + bad)[0] == 404, bad)
    # a node starting now skips the same rows while loading
    b = Server(ci)
    expect(b.metric("userdb_pg_rows_skipped_total") == 4, "load skips")
    expect(b.call("GET", "/v1/users/usr_fine")[0] == 200, "fine loaded")
    a.kill()
    b.kill()


def t_alter_table_add_column_and_toast_keep_the_stream():
    ci = new_db()
    a, b = Server(ci), Server(ci)
    big = {"blob": "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                           for _ in range(7000))}
    st, body, _ = a.call("POST", "/v1/users", {"name": "T", "email":
                                                "t@x.io", "custom_data": big})
    expect(st == 201, (st, body))
    uid = body["data"]["id"]
    psql(ci, "ALTER TABLE userdb.users ADD COLUMN dba_note text"
         " DEFAULT 'x'")
    # only name changes: custom_data (TOASTed) arrives as unchanged
    psql(ci, "UPDATE userdb.users SET name = 'T2', dba_note = 'y'"
         " WHERE id = '%s'" % uid)
    st, body, _ = a.call("POST", "/v1/users", {"name": "After",
                                                "email": "after@x.io"})
    after = body["data"]["id"]
    for n in (a, b):
        deadline = time.time() + 10
        while True:
            _, u, _ = n.call("GET", "/v1/users/" + uid)
            if u["data"]["name"] == "T2" and \
                    n.call("GET", "/v1/users/" + after)[0] == 200:
                break
            expect(time.time() < deadline, "stream goes on after ALTER")
            time.sleep(0.05)
        expect(u["data"]["custom_data"] == big, "TOASTed value kept")
    a.kill()
    b.kill()


def t_a_slot_dropped_while_down_means_a_reload():
    ci = new_db()
    a, b = Server(ci), Server(ci)
    a.call("POST", "/v1/users", {"name": "Before", "email": "b4@x.io"})
    node = open(os.path.join(a.dir, "node-id")).read().strip()
    a.kill()
    psql(ci, "SELECT pg_drop_replication_slot('userdb_%s')" % node)
    for i in range(5):
        b.call("POST", "/v1/users", {"name": "W", "email": "w%d@x.io" % i})
    a.start()
    converge([a, b], ci, "after the slot was dropped")
    expect(psql(ci, "SELECT count(*) FROM pg_replication_slots WHERE"
                " slot_name = 'userdb_%s'" % node) == "1", "slot recreated")
    a.kill()
    b.kill()


def t_drop_node_drops_a_dead_nodes_slot_and_origin():
    ci = new_db()
    a, b = Server(ci), Server(ci)
    a.call("POST", "/v1/users", {"name": "A", "email": "dn@x.io"})
    na = open(os.path.join(a.dir, "node-id")).read().strip()
    nb = open(os.path.join(b.dir, "node-id")).read().strip()
    a.kill()

    def drop(node):
        return subprocess.run([SERVER, "--postgres", ci, "--drop-node", node],
                              capture_output=True, text=True, timeout=30)

    def has(node):
        return psql(ci, "SELECT (SELECT count(*) FROM pg_replication_slots"
                    " WHERE slot_name = 'userdb_%s') + (SELECT count(*) FROM"
                    " pg_replication_origin WHERE roname = 'userdb_%s')"
                    % (node, node))
    expect(has(na) == "2", "a dead node keeps its slot and origin")
    p = drop(nb)
    expect(p.returncode == 1 and "active" in p.stderr,
           "a running node's slot is refused: %r" % (p.stderr,))
    expect(has(nb) == "2", "the running node kept its slot")
    p = drop(na)
    expect(p.returncode == 0 and na in p.stdout, (p.returncode, p.stderr))
    expect(has(na) == "0", "slot and origin gone")
    p = drop(na)
    expect(p.returncode == 1 and "no slot" in p.stderr, p.stderr)
    p = drop("../x")
    expect(p.returncode == 2 and "bad node id" in p.stderr, p.stderr)
    expect(b.call("POST", "/v1/users", {"name": "B", "email": "dn2@x.io"}
                  )[0] == 201, "the other node goes on")
    b.kill()


class Watch:
    """An RPC change-stream watcher on a node, collecting notifications."""

    def __init__(self, node, since=None):
        self.s = socket.create_connection(("127.0.0.1", node.rpc_port),
                                          timeout=15)
        self.un = msgpack.Unpacker(raw=False)
        self.changes = []
        self.s.sendall(msgpack.packb([0, 1, "auth", [KEY]]) +
                       msgpack.packb([0, 2, "changes.watch", [since]]))
        self.reply = None
        while self.reply is None:
            self._read()

    def _read(self):
        data = self.s.recv(65536)
        if not data:
            raise AssertionError("watcher connection closed")
        self.un.feed(data)
        for m in self.un:
            if m[0] == 2 and m[1] == "change":
                self.changes.append(m[2][0])
            elif m[0] == 1 and m[1] == 2:
                self.reply = m

    def wait(self, n, timeout=15):
        deadline = time.time() + timeout
        self.s.settimeout(0.5)
        while len(self.changes) < n and time.time() < deadline:
            try:
                self._read()
            except socket.timeout:
                pass
        expect(len(self.changes) >= n, "%d of %d changes came" %
               (len(self.changes), n))
        return self.changes

    def close(self):
        self.s.close()


def t_change_stream_has_one_numbering_on_every_node():
    """SPEC §8 in PostgreSQL mode: a watcher on node B sees the writes made
    through A, through B and by SQL with the seqs A's watcher sees, in
    commit order, actor null for SQL; a resume on B from a seq A gave
    misses nothing and repeats nothing."""
    ci = new_db()
    a, b = Server(ci), Server(ci)
    wa, wb = Watch(a), Watch(b)
    expect(wa.reply[2] is None and wb.reply[2] is None,
           (wa.reply, wb.reply))
    st, u, _ = a.call("POST", "/v1/users", {"name": "S", "email": "s@x.io"})
    uid = u["data"]["id"]
    converge([a, b], ci, "the user reached B")
    expect(b.call("PATCH", "/v1/users/%s/is-suspended" % uid,
                  {"is_suspended": True})[0] == 200, "suspend via B")
    psql(ci, "UPDATE userdb.users SET name = 'from sql' WHERE id = '%s'"
         % uid)
    st, v, _ = b.call("POST", "/v1/users", {"name": "T", "email": "t@x.io"})
    psql(ci, "BEGIN; UPDATE userdb.users SET role = 'admin';"
         " DELETE FROM userdb.users WHERE id = '%s'; COMMIT" % uid)
    n = 7
    ca, cb = wa.wait(n), wb.wait(n)
    key = lambda c: (c["seq"], c["event"], c["user_id"], c["actor"],
                     c["user"] and c["user"]["name"])
    expect([key(c) for c in ca[:n]] == [key(c) for c in cb[:n]],
           "the same changes with the same seqs: %r vs %r" %
           ([key(c) for c in ca], [key(c) for c in cb]))
    seqs = [c["seq"] for c in ca]
    expect(seqs == sorted(seqs) and len(set(seqs)) == n,
           "strictly increasing: %r" % seqs)
    evs = [(c["event"], c["user_id"] == uid) for c in ca]
    expect(evs == [("user.created", True), ("user.suspended", True),
                   ("user.updated", True), ("user.created", False),
                   ("user.updated", True), ("user.updated", False),
                   ("user.deleted", True)], evs)
    expect(ca[0]["actor"] is not None and ca[1]["actor"] is not None,
           "userdb's writes name their key: %r" % ca[:2])
    expect(ca[1]["user"]["status"] == "suspended", ca[1])
    expect(ca[2]["actor"] is None and ca[2]["user"]["name"] == "from sql",
           "a SQL change: actor null, the user after it: %r" % ca[2])
    expect(ca[-1]["user"] is None, "a delete's user is null")
    expect(seqs[-3] + 1 == seqs[-2] and seqs[-2] + 1 == seqs[-1],
           "one transaction's changes have adjacent seqs: %r" % seqs[-3:])
    # resume on B from A's second seq: exactly the rest
    wr = Watch(b, since=seqs[1])
    rest = wr.wait(n - 2)
    expect([key(c) for c in rest] == [key(c) for c in ca[2:n]],
           "resume on B: %r" % [key(c) for c in rest])
    b.call("POST", "/v1/users", {"name": "U", "email": "u@x.io"})
    wr.wait(n - 1)
    time.sleep(0.3)
    expect(len(wr.changes) == n - 1 and wr.changes[-1]["seq"] > seqs[-1],
           "nothing repeated, the next one came")
    gone = Watch(b, since=seqs[0] // 2)
    expect(gone.reply[2] and gone.reply[2]["code"] == "gone",
           "before the node's start: gone %r" % (gone.reply,))
    gone.close()
    [w.close() for w in (wa, wb, wr)]
    a.kill()
    b.kill()


def t_broken_stream_reconnects_and_a_lost_slot_reloads():
    """A replication stream cut while running reconnects from the slot
    (what came meanwhile arrives once); a slot lost while running stops
    the node (exit 3) so that its restart reloads everything."""
    ci = new_db()
    a, b = Server(ci), Server(ci)
    node = open(os.path.join(a.dir, "node-id")).read().strip()
    slot = "userdb_" + node

    def cut():
        psql(ci, "SELECT pg_terminate_backend(active_pid) FROM"
             " pg_replication_slots WHERE slot_name = '%s'" % slot)
    w = Watch(a)
    cut()
    for i in range(5):
        expect(b.call("POST", "/v1/users", {"name": "W%d" % i,
                                            "email": "w%d@x.io" % i}
                      )[0] == 201, "write through B")
    psql(ci, "UPDATE userdb.users SET name = 'sql' WHERE email = 'w0@x.io'")
    converge([a, b], ci, "after the stream was cut")
    got = w.wait(6)
    time.sleep(0.3)
    expect(len(got) == 6 and len({c["seq"] for c in got}) == 6,
           "each change once on A's watcher: %d" % len(got))
    expect(a.metric("userdb_pg_replication_up") == 1 and
           a.metric("userdb_pg_replication_reconnects_total") >= 1,
           "reconnected")
    w.close()
    # the slot lost while A runs: A stops, and its restart reloads
    deadline = time.time() + 10
    while True:
        cut()
        try:
            psql(ci, "SELECT pg_drop_replication_slot('%s')" % slot)
            break
        except RuntimeError:
            expect(time.time() < deadline, "could not drop A's slot")
    b.call("POST", "/v1/users", {"name": "Late", "email": "late@x.io"})
    a.proc.wait(timeout=20)
    expect(a.proc.returncode == 3, "exit 3: %r" % a.proc.returncode)
    expect(any("slot lost" in ln for ln in a.out), a.out[-3:])
    a.start()
    converge([a, b], ci, "after the reload")
    a.kill()
    b.kill()


CASES = [t_broken_stream_reconnects_and_a_lost_slot_reloads,
t_change_stream_has_one_numbering_on_every_node,
t_drop_node_drops_a_dead_nodes_slot_and_origin,
t_races_between_nodes_get_409_and_412,
         t_three_nodes_converge_after_random_writes_through_each,
         t_sql_update_and_delete_reach_every_node,
         t_hostile_rows_are_skipped_and_counted,
         t_alter_table_add_column_and_toast_keep_the_stream,
         t_a_slot_dropped_while_down_means_a_reload,
         t_writes_are_rows_and_come_back_after_restart,
         t_duplicate_email_is_409_from_the_engine,
         t_kill_9_under_load_loses_nothing_acknowledged,
         t_postgres_down_reads_go_on_writes_503_then_resume,
         t_email_race_between_nodes_never_gives_two_users]

ONLY = os.environ.get("PG_CASES")  # a comma list of case names, to iterate
if ONLY:
    CASES = [c for c in CASES if c.__name__ in ONLY.split(",")]
failed = 0
for case in CASES:
    t0 = time.time()
    try:
        case()
        print("ok   %s (%.1f s)" % (case.__name__, time.time() - t0))
    except Exception as e:  # noqa: BLE001 -- report every case
        failed += 1
        print("FAIL %s: %s" % (case.__name__, e))
    # the case's nodes are gone: their slots would fill max_replication_slots
    for srv in _servers:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(timeout=20)
    # (and their replication origins the replication state slots)
    psql(CLUSTER, "SELECT count(pg_drop_replication_slot(slot_name)) FROM"
         " pg_replication_slots WHERE NOT active")
    psql(CLUSTER, "SELECT count(pg_replication_origin_drop(roname)) FROM"
         " pg_replication_origin WHERE roname NOT IN (SELECT slot_name FROM"
         " pg_replication_slots)")
sys.exit(1 if failed else 0)

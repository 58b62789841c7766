#!/usr/bin/python3
"""Bulk export and import (SPEC §9) against the real server binary.

    tests/net/test_bulk.py [build/userdb-server [build/userdb-cli]]

Loopback only, port 0, temp data dirs.  Every HTTP response is checked
against the OpenAPI document the server serves (openapi_check.py).  Exits 1
when a check failed."""
import ctypes
import ctypes.util
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("USERDB_BUILD", os.path.join(HERE, "..", "..", "build"))
SERVER = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "USERDB_SERVER", os.path.join(BUILD, "userdb-server"))
CLI = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(SERVER), "userdb-cli")
KEY = "bulk-test-key"
FAILS = []
NCHECK = 0
SPEC = None


def check(cond, what, got=None):
    global NCHECK
    NCHECK += 1
    if not cond:
        line = "FAIL %s | got: %s" % (what, repr(got)[:400])
        FAILS.append(line)
        print(line, flush=True)
    return bool(cond)


class Server:
    def __init__(self, data_dir=None, extra=()):
        args = [SERVER, "--port", "0", "--http-port", "0", "--api-key", KEY,
                "--argon2-mem", "8192", "--argon2-ops", "1"]
        args += ["--data-dir", data_dir] if data_dir else ["--no-persist"]
        args += list(extra)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("USERDB_")}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env=env)
        self.http = self.rpc = None
        deadline = time.time() + 15
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"ready rpc=\S+:(\d+) http=\S+:(\d+)", line)
            if m:
                self.rpc, self.http = int(m.group(1)), int(m.group(2))
                break
        if not self.http:
            self.proc.kill()
            raise RuntimeError("server did not start")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "timeout"


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None


def call(srv, method, path, body=None, key=KEY, headers=None, check_doc=True):
    conn = http.client.HTTPConnection("127.0.0.1", srv.http, timeout=120)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    b = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    resp = Resp(r.status, hdrs, b)
    if check_doc and SPEC:
        for err in SPEC.check(method, path, r.status, hdrs, b):
            check(False, "response conforms to openapi.json: %s %s" %
                  (method, path), err)
    return resp


def sodium_hash(password):
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    lib.sodium_init()
    buf = ctypes.create_string_buffer(128)
    pw = password.encode()
    rc = lib.crypto_pwhash_str_alg(buf, pw, ctypes.c_ulonglong(len(pw)),
                                   ctypes.c_ulonglong(1), ctypes.c_size_t(8192),
                                   ctypes.c_int(2))
    assert rc == 0
    return buf.value.decode()


def ndjson(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n"
                   for r in rows).encode()


def export(srv, query=""):
    r = call(srv, "GET", "/v1/users/export" + query)
    lines = [json.loads(x) for x in r.body.decode().splitlines() if x]
    return r, lines


def import_(srv, data, query=""):
    r = call(srv, "POST", "/v1/users/import" + query, body=data,
             headers={"Content-Type": "application/x-ndjson"})
    return r, (r.json or {}).get("data") or {}


def ts(i):
    return "2024-01-01T00:%02d:%02d.%03dZ" % (i // 60000 % 60,
                                             i // 1000 % 60, i % 1000)


# --------------------------------------------------------------------------

def t_import_basics(S):
    h = sodium_hash("correct horse")
    rows = [
        {"id": "usr_a1", "name": "Ann", "email": "ann@x.com", "role": "admin",
         "password_hash": h, "created_at": "2024-01-01T00:00:00Z",
         "updated_at": "2024-01-02T00:00:00.250Z",
         "last_sign_in_at": "2024-01-03T00:00:00Z", "has_password": True,
         "identities": {"github": {"user_id": "77", "details": {"a": 1}}},
         "custom_data": {"k": [1, 2]}},
        {"name": "李小龙", "email": "lee@x.com"},
    ]
    data = ndjson(rows) + b"not json\n\n" + ndjson([{"name": "x"}]) + \
        b'{"name":"Bo","email":"bo@x.com","password":"secretsecret"}\n' + \
        b'{"name":"Cy","email":"cy@x.com"}'  # no final newline
    r, d = import_(S, data)
    check(r.status == 200 and r.json.get("success") is True, "import 200", r.body)
    check(d.get("created") == 4 and d.get("failed") == 2 and
          d.get("updated") == 0 and d.get("skipped") == 0, "import counts", d)
    errs = d.get("errors", [])
    check([e["line"] for e in errs] == [3, 5], "error line numbers", errs)
    check(all(set(e) == {"line", "code", "message", "field"} for e in errs),
          "error shape", errs)
    check(errs and errs[0]["code"] == "invalid_request" and
          "JSON" in errs[0]["message"], "not-JSON line", errs)
    bo = call(S, "GET", "/v1/users?email=bo@x.com").json["data"]
    check(len(bo) == 1 and bo[0]["has_password"] is True,
          "a plain password is hashed on import", bo)
    if bo:
        v = call(S, "POST", "/v1/users/%s/password/verify" % bo[0]["id"],
                 {"password": "secretsecret"})
        check(v.status == 200 and v.json["data"]["valid"] is True,
              "an imported plain password verifies", v.body)
    u = call(S, "GET", "/v1/users/usr_a1").json["data"]
    check(u["created_at"] == "2024-01-01T00:00:00.000Z" and
          u["updated_at"] == "2024-01-02T00:00:00.250Z" and
          u["last_sign_in_at"] == "2024-01-03T00:00:00.000Z",
          "times kept as given", u)
    check(u["identities"] == {"github": {"user_id": "77", "details": {"a": 1}}},
          "identities kept", u)
    check(u["has_password"] is True and u["role"] == "admin", "hash and role", u)
    v = call(S, "POST", "/v1/users/usr_a1/password/verify",
             {"password": "correct horse"})
    check(v.status == 200 and v.json["data"]["valid"] is True,
          "imported hash verifies", v.body)
    # a line older than the newest user cannot go after it
    r, d = import_(S, ndjson([{"name": "Old", "email": "old@x.com",
                               "created_at": "2000-01-01T00:00:00Z"}]))
    check(d.get("failed") == 1 and d["errors"][0]["field"] == "created_at",
          "created_at before the newest user is refused", d)
    r, d = import_(S, ndjson([{"name": "Fut", "email": "fut@x.com",
                               "created_at": "2999-01-01T00:00:00Z"}]))
    check(d.get("failed") == 1 and d["errors"][0]["field"] == "created_at",
          "created_at in the future is refused", d)
    r, d = import_(S, b"", "")
    check(r.status == 200 and d.get("created") == 0, "empty import", r.body)
    r = call(S, "POST", "/v1/users/import?on_conflict=maybe", body=b"{}\n")
    check(r.status == 400 and r.json["error"]["field"] == "on_conflict",
          "bad on_conflict is 400", r.body)
    r = call(S, "POST", "/v1/users/import?x=1", body=b"{}\n")
    check(r.status == 400, "unknown import parameter is 400", r.body)
    r = call(S, "POST", "/v1/users/import", body=b"{}\n", key="wrong")
    check(r.status == 401, "import needs the key", r.body)
    r = call(S, "GET", "/v1/users/import")
    check(r.status == 405, "GET import is 405", r.body)
    r = call(S, "POST", "/v1/users/export")
    check(r.status == 405, "POST export is 405", r.body)


def t_password_lines_in_order(S):
    """Plain passwords are hashed on the worker pool, yet every line applies
    in file order: a later line for the same email sees the earlier one."""
    rows = []
    for i in range(40):
        row = {"id": "usr_pw%02d" % i, "name": "P%d" % i,
               "email": "pw%d@x.com" % (i // 2)}
        if i % 3 == 0:
            row["password"] = "password-%02d" % i
        rows.append(row)
    rows.append({"name": "Short", "email": "short@x.com", "password": "short"})
    r, d = import_(S, ndjson(rows))
    errs = d.get("errors", [])
    check(d.get("created") == 20 and d.get("failed") == 21,
          "password lines: counts", d)
    check([e["line"] for e in errs] == list(range(2, 41, 2)) + [41],
          "password lines: the second line of each email fails, in order",
          errs)
    check(all(e["code"] == "duplicate_email" for e in errs[:20]) and
          errs[-1:] and errs[-1]["field"] == "password",
          "password lines: codes", errs)
    for i in (0, 6, 12):
        v = call(S, "POST", "/v1/users/usr_pw%02d/password/verify" % i,
                 {"password": "password-%02d" % i})
        check(v.status == 200 and v.json["data"]["valid"] is True,
              "password line %d verifies" % i, v.body)
    u = call(S, "GET", "/v1/users/usr_pw02").json["data"]
    check(u["has_password"] is False, "a line without password has none", u)


def t_conflicts(S):
    base = [{"id": "usr_k1", "name": "K1", "email": "k1@x.com"},
            {"id": "usr_k2", "name": "K2", "email": "k2@x.com"}]
    import_(S, ndjson(base))
    again = [{"id": "usr_k1", "name": "K1 new", "email": "k1@x.com"},
             {"name": "K2 by mail", "email": "K2@X.COM", "role": "viewer"},
             {"id": "usr_k3", "name": "K3", "email": "k3@x.com"}]
    r, d = import_(S, ndjson(again))
    check(d.get("created") == 1 and d.get("failed") == 2, "fail: counts", d)
    check([e["code"] for e in d["errors"]] == ["duplicate_id", "duplicate_email"],
          "fail: codes", d)
    again[2]["id"], again[2]["email"] = "usr_k4", "k4@x.com"
    r, d = import_(S, ndjson(again), "?on_conflict=skip")
    check((d.get("created"), d.get("skipped"), d.get("failed")) == (1, 2, 0),
          "skip: counts", d)
    check(call(S, "GET", "/v1/users/usr_k1").json["data"]["name"] == "K1",
          "skip leaves the user", None)
    again[2]["id"], again[2]["email"] = "usr_k5", "k5@x.com"
    h = sodium_hash("pw-for-k1")
    again[0]["password_hash"] = h
    r, d = import_(S, ndjson(again + [{"id": "usr_k1", "name": "X",
                                       "email": "k2@x.com"}]),
                   "?on_conflict=update")
    check((d.get("created"), d.get("updated"), d.get("failed")) == (1, 2, 1),
          "update: counts", d)
    check(d["errors"] and d["errors"][0]["line"] == 4 and
          d["errors"][0]["code"] == "duplicate_email",
          "update: id and email of two users fails", d)
    k1 = call(S, "GET", "/v1/users/usr_k1").json["data"]
    k2 = call(S, "GET", "/v1/users/usr_k2").json["data"]
    check(k1["name"] == "K1 new" and k1["has_password"], "update: by id", k1)
    check(k2["name"] == "K2 by mail" and k2["role"] == "viewer",
          "update: by email", k2)
    # duplicates inside one file
    dup = [{"id": "usr_d1", "name": "D", "email": "d1@x.com"},
           {"id": "usr_d1", "name": "D", "email": "d2@x.com"},
           {"id": "usr_d3", "name": "D", "email": "D1@x.com"}]
    r, d = import_(S, ndjson(dup))
    check((d.get("created"), d.get("failed")) == (1, 2) and
          [e["code"] for e in d["errors"]] == ["duplicate_id", "duplicate_email"],
          "duplicates inside the file", d)


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % (int(t * 1000) % 1000)


def t_update_times_identities(S):
    """on_conflict=update sets the line's times, identities and password in
    one change (one user.updated event), and refuses what would break the
    store's order of creation or move updated_at back."""
    r, d = import_(S, ndjson([{"id": "usr_t1", "name": "T", "email": "t1@x.com",
                               "identities": {"gh": {"user_id": "1"}}}]))
    check(d.get("created") == 1, "update times: created", d)
    u0 = call(S, "GET", "/v1/users/usr_t1").json["data"]
    time.sleep(0.2)
    upd = rfc3339(time.time() - 0.05)
    line = {"id": "usr_t1", "name": "T2", "email": "t1@x.com",
            "created_at": u0["created_at"], "updated_at": upd,
            "last_sign_in_at": "2020-05-05T05:05:05.500Z",
            "identities": {"google": {"user_id": "g-9", "details": {"x": 1}}},
            "password": "a-new-password"}
    r, d = import_(S, ndjson([line]), "?on_conflict=update")
    check(d.get("updated") == 1 and d.get("failed") == 0, "update times: ok", d)
    u = call(S, "GET", "/v1/users/usr_t1").json["data"]
    check(u["updated_at"] == upd and u["created_at"] == u0["created_at"] and
          u["last_sign_in_at"] == "2020-05-05T05:05:05.500Z" and
          u["name"] == "T2" and u["has_password"] is True,
          "update sets updated_at and last_sign_in_at as given", (upd, u))
    check(u["identities"] == {"google": {"user_id": "g-9", "details": {"x": 1}}},
          "update replaces the identities", u)
    v = call(S, "POST", "/v1/users/usr_t1/password/verify",
             {"password": "a-new-password"})
    check(v.status == 200 and v.json["data"]["valid"] is True,
          "update sets a plain password, hashed", v.body)
    logs = call(S, "GET", "/v1/logs?user_id=usr_t1&limit=100").json["data"]
    ups = [e for e in logs if e["event"] == "user.updated"]
    check(len(ups) == 1 and set(ups[0]["details"]["fields"]) >=
          {"name", "identities", "password", "last_sign_in_at"} and
          not [e for e in logs if e["event"] == "user.password_changed"],
          "an update line is one change with one event", logs)
    bad = dict(line, created_at="2020-01-01T00:00:00Z")
    del bad["password"]
    r, d = import_(S, ndjson([bad]), "?on_conflict=update")
    check(d.get("failed") == 1 and d["errors"][0]["field"] == "created_at",
          "update may not move created_at", d)
    bad = dict(line, updated_at=u0["updated_at"])
    del bad["password"]
    r, d = import_(S, ndjson([bad]), "?on_conflict=update")
    check(d.get("failed") == 1 and d["errors"][0]["field"] == "updated_at",
          "update may not move updated_at back", d)
    same = dict(line)  # the verification above moved last_sign_in_at
    del same["password"]
    same["last_sign_in_at"] = call(S, "GET", "/v1/users/usr_t1").json[
        "data"]["last_sign_in_at"]
    logs = call(S, "GET", "/v1/logs?user_id=usr_t1&limit=100").json["data"]
    r, d = import_(S, ndjson([same]), "?on_conflict=update")
    logs2 = call(S, "GET", "/v1/logs?user_id=usr_t1&limit=100").json["data"]
    check(d.get("updated") == 1 and len(logs2) == len(logs),
          "an update line that changes nothing makes no event", (d, logs2))


def t_hostile(S):
    good = lambda i: json.dumps({"name": "G%d" % i, "email": "g%d@h.com" % i}).encode()
    parts = [
        good(1),
        b"[" * 200000 + b"]" * 200000,           # deep nesting
        b'{"a":' * 5000 + b"1" + b"}" * 5000,     # deep object
        b'{"name":"' + b"x" * (10 << 20) + b'"}',  # 10 MB line
        good(2),
        b'{"name":"dup","email":"g1@h.com"}',      # duplicate email
        b'{"name":"h","email":"h1@h.com","password_hash":"$argon2i$xyz"}',
        b'{"name":"h","email":"h2@h.com","password_hash":"plain"}',
        b'{"name":"\xff\xfe","email":"u1@h.com"}',  # invalid UTF-8
        b'{"name":"n","email":"u2@h.com","name":"twice"}',
        b'{"name":"n","email":"u3@h.com","created_at":"yesterday"}',
        b'{"name":"n","email":"u4@h.com","identities":{"bad target!":{"user_id":"1"}}}',
        b'{"name":"n","email":"u5@h.com","identities":{"gh":{"user_id":1}}}',
        b'{"name":"n","email":"u6@h.com","wat":1}',
        b'[' + b'[],' * 300000 + b'[]]',          # many small values, < 1 MiB
        good(3),
    ]
    r, d = import_(S, b"\n".join(parts) + b"\n")
    check(r.status == 200, "hostile import answered", r.body[:300])
    check(d.get("created") == 3 and d.get("failed") == len(parts) - 3,
          "hostile: only the good lines applied", d)
    lines = [e["line"] for e in d.get("errors", [])]
    check(lines == [i + 1 for i in range(len(parts))
                    if i not in (0, 4, len(parts) - 1)],
          "hostile: each bad line reported by number", lines)
    big = [e for e in d.get("errors", []) if e["line"] == 4]
    check(big and big[0]["code"] == "payload_too_large", "10 MB line", big)
    check(S.alive() and call(S, "GET", "/healthz", key=None).status == 200,
          "server still up", None)
    # more than 100 failures: all counted, 100 reported
    r, d = import_(S, b"x\n" * 250)
    check(d.get("failed") == 250 and len(d.get("errors", [])) == 100 and
          d["errors"][99]["line"] == 100, "first 100 errors of 250", d.get("failed"))
    # a body beyond --max-body is fine here, and the connection stays usable
    many = ndjson([{"name": "M", "email": "m%d@many.com" % i} for i in range(30000)])
    check(len(many) > (1 << 20), "test body over the normal limit", len(many))
    r, d = import_(S, many)
    check(d.get("created") == 30000, "import above --max-body", d.get("created"))


def t_max_import(tmp):
    S = Server(extra=["--max-import", "1000", "--api-key", "reader:read"])
    try:
        r = call(S, "POST", "/v1/users/import", body=b'{"name":"a","email":"r@b.com"}\n',
                 key="reader")
        check(r.status == 403 and r.json["error"]["code"] == "forbidden",
              "a read key may not import", r.body)
        r = call(S, "GET", "/v1/users/export", key="reader")
        check(r.status == 200, "a read key may export", r.status)
        r, d = import_(S, ndjson([{"name": "a", "email": "a%d@b.com" % i}
                                  for i in range(10)]))
        check(r.status == 200 and d.get("created") == 10, "under --max-import", d)
        r = call(S, "POST", "/v1/users/import", body=b"x" * 2000)
        check(r.status == 413 and r.json["error"]["code"] == "payload_too_large",
              "over --max-import is 413", r.body)
        r = call(S, "POST", "/v1/users", body=b"{" + b" " * 1200 + b"}")
        check(r.status != 413, "--max-import does not shrink the normal limit",
              r.status)
    finally:
        S.stop()


def t_export(S):
    r, rows = export(S)
    check(r.status == 200 and
          r.headers.get("content-type", "").startswith("application/x-ndjson"),
          "export content type", r.headers)
    ids = [u["id"] for u in rows]
    check(len(ids) == len(set(ids)) and len(ids) > 30000, "export: every user once", len(ids))
    check(all("password_hash" in u for u in rows), "export: password_hash on every line", None)
    a1 = [u for u in rows if u["id"] == "usr_a1"]
    check(a1 and a1[0]["password_hash"].startswith("$argon2id$"),
          "export: the hash", a1)
    lst = call(S, "GET", "/v1/users?role=admin&limit=1")
    r, admins = export(S, "?role=admin")
    check(len(admins) == lst.json["pagination"]["total"] and
          all(u["role"] == "admin" for u in admins), "export role filter", len(admins))
    r, both = export(S, "?role=user&status=active")
    lst = call(S, "GET", "/v1/users?role=user&status=active&limit=1")
    check(len(both) == lst.json["pagination"]["total"], "export role+status", len(both))
    r = call(S, "GET", "/v1/users/export?status=gone")
    check(r.status == 400 and r.json["error"]["field"] == "status", "bad status", r.body)
    r = call(S, "GET", "/v1/users/export?page=2")
    check(r.status == 400, "export takes no page", r.body)
    r = call(S, "GET", "/v1/users/export", key=None)
    check(r.status == 401, "export needs the key", r.body)
    r = call(S, "HEAD", "/v1/users/export", check_doc=False)
    check(r.status == 200 and r.body == b"" and
          r.headers.get("content-type", "").startswith("application/x-ndjson"),
          "HEAD of the export: the head only", (r.status, r.body[:80]))
    # keep-alive: a request after an export on the same connection
    conn = http.client.HTTPConnection("127.0.0.1", S.http, timeout=60)
    h = {"Authorization": "Bearer " + KEY}
    conn.request("GET", "/v1/users/export?role=viewer", headers=h)
    r1 = conn.getresponse()
    r1.read()
    conn.request("GET", "/healthz")
    r2 = conn.getresponse()
    check(r1.status == 200 and r2.status == 200 and r2.read() == b'{"status":"ok"}',
          "request after an export on one connection", r2.status)
    conn.close()


def t_export_point_in_time(S):
    rows = [{"id": "usr_pit%05d" % i, "name": "P%d" % i,
             "email": "pit%d@x.com" % i} for i in range(40000)]
    import_(S, ndjson(rows))
    before = len(export(S)[1])
    s = socket.create_connection(("127.0.0.1", S.http))
    s.settimeout(30)
    s.sendall(b"GET /v1/users/export HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    # The writer has forked: change the store while the export is read.
    t0 = time.time()
    call(S, "PATCH", "/v1/users/usr_pit00000", {"name": "Changed"})
    call(S, "DELETE", "/v1/users/usr_pit00001")
    call(S, "POST", "/v1/users", {"name": "New", "email": "new-pit@x.com"})
    served = time.time() - t0
    body = b""
    while not body.endswith(b"0\r\n\r\n"):
        c = s.recv(1 << 20)
        if not c:
            break
        body += c
    s.close()
    check(served < 2, "other clients served while an export is open", served)
    text, pos = b"", 0  # de-chunk
    while True:
        nl = body.index(b"\r\n", pos)
        n = int(body[pos:nl], 16)
        if n == 0:
            break
        text += body[nl + 2:nl + 2 + n]
        pos = nl + 4 + n
    got = [json.loads(x) for x in text.decode().splitlines()]
    byid = {u["id"]: u for u in got}
    check(len(got) == before, "export has the users of its start", (len(got), before))
    check(byid.get("usr_pit00000", {}).get("name") == "P0" and
          "usr_pit00001" in byid and
          not any(u["email"] == "new-pit@x.com" for u in got),
          "changes during the export are not in it", byid.get("usr_pit00000"))
    # a client that goes away mid-export: the server goes on
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", S.http))
        s.sendall(b"GET /v1/users/export HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n")
        s.recv(100)
        s.close()
    time.sleep(0.3)
    check(call(S, "GET", "/healthz", key=None).status == 200 and
          len(export(S)[1]) == before, "server fine after cut exports", None)
    kids = subprocess.run(["ps", "--ppid", str(S.proc.pid), "-o", "stat="],
                          capture_output=True, text=True).stdout.split()
    check(not any(k.startswith("Z") for k in kids), "no zombie writers", kids)


def t_round_trip(tmp):
    n = 100000
    hashes = [sodium_hash("pw%d" % i) for i in range(20)]
    rows = []
    for i in range(n):
        u = {"id": "usr_rt%06d" % i, "name": "User %d é" % i,
             "email": "User%d@Round.Trip" % i,
             "role": ("admin", "user", "viewer")[i % 3],
             "status": ("active", "inactive", "suspended")[i % 3 // 1 % 3],
             "created_at": ts(i), "updated_at": ts(i + 500)}
        if i % 5 == 0:
            u["password_hash"] = hashes[i % 20]
        if i % 7 == 0:
            u["custom_data"] = {"n": i, "tags": ["a", "b"]}
            u["avatar"] = "https://img.example/%d.png" % i
            u["identities"] = {"github": {"user_id": str(i), "details": {}}}
            u["last_sign_in_at"] = ts(i + 900)
        rows.append(u)
    A = Server(os.path.join(tmp, "a"))
    B = Server(os.path.join(tmp, "b"))
    try:
        t0 = time.time()
        r, d = import_(A, ndjson(rows))
        check(d.get("created") == n and d.get("failed") == 0,
              "round trip: first import", {k: d.get(k) for k in ("created", "failed")}
              if d else r.body[:300])
        r, ea = export(A)
        check(len(ea) == n, "round trip: export count", len(ea))
        data = "".join(json.dumps(u) + "\n" for u in ea).encode()
        r, d = import_(B, data)
        check(d.get("created") == n, "round trip: second import", d.get("created"))
        r, eb = export(B)
        check(ea == eb, "round trip: identical users (ids, emails, hashes, times)",
              [(x, y) for x, y in zip(ea, eb) if x != y][:2])
        for u, x in zip(rows[:50], ea[:50]):
            check(u["email"] == x["email"] and u["created_at"] == x["created_at"]
                  and u.get("password_hash") == x["password_hash"],
                  "round trip: as given", (u, x))
        # B survives a restart with the same users
        B.stop()
        B = Server(os.path.join(tmp, "b"))
        r, ec = export(B)
        check(ec == eb, "round trip: same after a restart", len(ec))
        print("round trip of %d users: %.1f s" % (n, time.time() - t0))
    finally:
        A.stop()
        B.stop()


def t_crash_mid_import(tmp):
    d = os.path.join(tmp, "crash")
    S = Server(d, extra=["--fsync", "no"])
    n = 20000
    data = ndjson([{"id": "usr_cr%05d" % i, "name": "C%d" % i,
                    "email": "cr%d@x.com" % i} for i in range(n)])
    s = socket.create_connection(("127.0.0.1", S.http))
    s.sendall(b"POST /v1/users/import HTTP/1.1\r\nHost: x\r\nAuthorization: "
              b"Bearer " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n"
              % len(data))
    s.sendall(data[:len(data) // 2 + 17])  # cut inside a line
    time.sleep(0.5)
    S.stop(signal.SIGKILL)
    s.close()
    S = Server(d)
    try:
        r, got = export(S)
        ids = [u["id"] for u in got]
        k = len(ids)
        check(0 < k < n and ids == ["usr_cr%05d" % i for i in range(k)],
              "crash mid-import: a prefix of the lines applied", k)
        check(all(u["name"] == "C%d" % int(u["id"][6:]) for u in got),
              "crash mid-import: whole users", None)
    finally:
        S.stop()


def t_cli(S, tmp):
    if not os.path.exists(CLI):
        check(False, "userdb-cli exists", CLI)
        return
    env = dict(os.environ, USERDB_API_KEY=KEY)
    base = [CLI, "--http-port", str(S.http)]
    out = os.path.join(tmp, "cli-export.ndjson")
    p = subprocess.run(base + ["export", out], capture_output=True, text=True, env=env)
    check(p.returncode == 0, "cli export exit 0", p.stderr)
    rows = [json.loads(x) for x in open(out)]
    check(len(rows) == len(export(S)[1]), "cli export writes every user", len(rows))
    check("exported" in p.stderr, "cli export summary", p.stderr)
    p = subprocess.run(base + ["export"], capture_output=True, env=env)
    check(p.returncode == 0 and p.stdout.count(b"\n") == len(rows),
          "cli export to stdout", p.returncode)
    T = Server()
    try:
        tb = [CLI, "--http-port", str(T.http)]
        p = subprocess.run(tb + ["import", out], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and "%d created" % len(rows) in p.stderr,
              "cli import exit 0 with summary", (p.returncode, p.stderr))
        check(export(T)[1] == rows, "cli round trip", None)
        p = subprocess.run(tb + ["import", out], capture_output=True, text=True, env=env)
        check(p.returncode == 1, "cli import with failed lines exits 1",
              (p.returncode, p.stderr[-300:]))
        p = subprocess.run(tb + ["import", out, "--on-conflict", "skip"],
                           capture_output=True, text=True, env=env)
        check(p.returncode == 0 and "%d skipped" % len(rows) in p.stderr,
              "cli import --on-conflict skip", (p.returncode, p.stderr[-300:]))
        p = subprocess.run(tb + ["import", os.path.join(tmp, "missing")],
                           capture_output=True, text=True, env=env)
        check(p.returncode == 2, "cli import of a missing file exits 2", p.returncode)
        p = subprocess.run([CLI, "--http-port", "1", "export", out + ".x"],
                           capture_output=True, text=True, env=env)
        check(p.returncode == 2, "cli export with no server exits 2", p.returncode)
        p = subprocess.run(tb + ["import", out], capture_output=True, text=True,
                           env=dict(env, USERDB_API_KEY="wrong"))
        check(p.returncode == 2, "cli import with a wrong key exits 2", p.returncode)
    finally:
        T.stop()


def main():
    global SPEC
    tmp = tempfile.mkdtemp(prefix="userdb-bulk-")
    S = Server()
    try:
        SPEC = openapi_check.load(S.http)
        t_import_basics(S)
        t_password_lines_in_order(S)
        t_conflicts(S)
        t_update_times_identities(S)
        t_hostile(S)
        t_export(S)
        t_export_point_in_time(S)
        t_cli(S, tmp)
        t_max_import(tmp)
        t_round_trip(tmp)
        t_crash_mid_import(tmp)
    finally:
        S.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d checks, %d failed" % (NCHECK, len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()

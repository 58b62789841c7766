#!/usr/bin/python3
"""Black-box contract test of userdb-server against shared/SPEC.md.

    tests/net/test_spec.py build/userdb-server

Starts the real server binary (loopback, port 0, temp data dirs), talks to it
as an outside client over HTTP/JSON (http.client) and MessagePack-RPC
(python3-msgpack over plain sockets), and checks what SPEC.md promises:
routes, envelopes, status and error codes, every user field rule and its
edges, list queries, ETag/If-Match, identities, the activity log, every RPC
method, framing errors, and restart durability.

Prints one line per failed check (request, expected, got), a summary, and
exits 1 if any check failed, 0 otherwise. Stdlib + msgpack only (ctypes is
used to ask libsodium for Argon2 hash strings to import, when available)."""
import ctypes
import ctypes.util
import datetime
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_check  # noqa: E402

SERVER = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "USERDB_SERVER", "build/userdb-server")
KEY = "spec-test-key-7f3a9c"
T0 = time.time()

FAILS = []
NOTES = []
NCHECK = 0


def short(x, n=300):
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def check(cond, what, req, expected, got):
    global NCHECK
    NCHECK += 1
    if not cond:
        line = "FAIL %s | request: %s | expected: %s | got: %s" % (
            what, short(req, 200), short(expected, 200), short(got))
        FAILS.append(line)
        print(line, flush=True)
    return bool(cond)


def note(msg):
    NOTES.append(msg)


# --------------------------------------------------------------------------
# server process

SERVERS = []


class Server:
    def __init__(self, data_dir=None, key=KEY, extra=(), env=None,
                 expect_ready=True, use_args=True):
        self.data_dir = data_dir
        args = [SERVER]
        if use_args:
            args += ["--port", "0", "--http-port", "0",
                     "--argon2-mem", "8192", "--argon2-ops", "1"]
            if key is not None:
                args += ["--api-key", key]
            if data_dir is None:
                args += ["--no-persist"]
            else:
                args += ["--data-dir", data_dir]
        args += list(extra)
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("USERDB_"):
                del e[k]
        if env:
            e.update(env)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env=e)
        SERVERS.append(self)
        self.out = []
        self.rpc = self.http = None
        if not expect_ready:
            return
        deadline = time.time() + 10
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out.append(line)
            if "ready" in line:
                for w in line.split():
                    if w.startswith("rpc="):
                        self.rpc = int(w.rsplit(":", 1)[1])
                    if w.startswith("http="):
                        self.http = int(w.rsplit(":", 1)[1])
                break
        if not self.rpc or not self.http:
            # fall back to the "listening" lines
            for line in self.out:
                m = re.search(r"rpc listening on .*:(\d+)", line)
                if m:
                    self.rpc = int(m.group(1))
                m = re.search(r"http listening on .*:(\d+)", line)
                if m:
                    self.http = int(m.group(1))
        if not self.rpc or not self.http:
            self.kill()
            raise RuntimeError("server did not become ready: %r" % self.out)

    def output(self):
        return "".join(self.out)

    def term(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "timeout"
        self._drain()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._drain()

    def _drain(self):
        try:
            rest = self.proc.stdout.read()
            if rest:
                self.out.append(rest)
        except Exception:
            pass


# --------------------------------------------------------------------------
# HTTP

class Resp:
    def __init__(self, status, headers, body, req):
        self.status = status
        self.headers = headers
        self.body = body
        self.req = req
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except Exception:
            self.json = None

    def h(self, name):
        return self.headers.get(name)

    @property
    def data(self):
        return self.json.get("data") if isinstance(self.json, dict) else None

    def __repr__(self):
        return "%s %s" % (self.status, short(self.body.decode("utf-8", "replace"), 400))


SPECS = {}  # http port -> openapi_check.Spec of that server's document


def conform(srv, method, path, resp):
    """Every response that call() receives, checked against the document
    the same server serves at /openapi.json (openapi_check.py)."""
    if resp.status == 0:
        return
    spec = SPECS.get(srv.http)
    if spec is None:
        try:
            spec = SPECS[srv.http] = openapi_check.load(srv.http)
        except Exception as ex:
            check(False, "GET /openapi.json loads", "GET /openapi.json",
                  "an OpenAPI document", repr(ex))
            SPECS[srv.http] = spec = False
    if spec:
        for err in spec.check(method, path, resp.status, resp.headers, resp.body):
            check(False, "response conforms to openapi.json", resp.req,
                  "conforming response", err)


def call(srv, method, path, body=None, key=KEY, headers=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.http, timeout=15)
    h = {}
    if key is not None:
        h["Authorization"] = "Bearer " + key
    data = None
    if raw is not None:
        data = raw
        h["Content-Type"] = "application/json"
    elif body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        h["Content-Type"] = "application/json"
    if headers:
        h.update(headers)
    desc = "%s %s" % (method, path)
    if data is not None:
        desc += " " + short(data.decode("utf-8", "replace"), 160)
    if headers:
        desc += " headers=%r" % headers
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        b = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        resp = Resp(r.status, hdrs, b, desc)
    except Exception as ex:
        return Resp(0, {}, ("exception: %r" % ex).encode(), desc)
    finally:
        conn.close()
    conform(srv, method, path, resp)
    return resp


def q(path, **params):
    return path + "?" + urllib.parse.urlencode(params)


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def parse_ts(s):
    m = RFC3339.match(s or "")
    if not m:
        return None
    base = datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    frac = float("0" + m.group(1)) if m.group(1) else 0.0
    return base + frac


USER_KEYS = {"id", "name", "email", "role", "status", "avatar", "custom_data",
             "identities", "has_password", "last_sign_in_at", "created_at",
             "updated_at"}


def check_user_shape(u, req, what="user object"):
    ok = check(isinstance(u, dict), what + " is an object", req, "object", u)
    if not ok:
        return False
    missing = USER_KEYS - set(u)
    ok &= check(not missing, what + " has every documented field", req,
                sorted(USER_KEYS), "missing %s in %r" % (sorted(missing), u))
    extra = set(u) - USER_KEYS
    if extra:
        note("user objects carry undocumented keys %s" % sorted(extra))
    for k in u:
        ok &= check("password" not in k or k == "has_password",
                    what + " never returns a password", req,
                    "no password/password_hash key", k)
    for k in ("created_at", "updated_at"):
        ok &= check(isinstance(u.get(k), str) and RFC3339.match(u[k]),
                    what + " %s is RFC 3339 UTC ending in Z" % k, req,
                    "YYYY-MM-DDTHH:MM:SS[.frac]Z", u.get(k))
    if u.get("last_sign_in_at") is not None:
        ok &= check(isinstance(u["last_sign_in_at"], str) and
                    RFC3339.match(u["last_sign_in_at"]),
                    what + " last_sign_in_at is RFC 3339 Z", req,
                    "RFC 3339 or null", u["last_sign_in_at"])
    ok &= check(u.get("role") in ("admin", "user", "viewer"), what + " role",
                req, "admin|user|viewer", u.get("role"))
    ok &= check(u.get("status") in ("active", "inactive", "suspended"),
                what + " status", req, "active|inactive|suspended",
                u.get("status"))
    ok &= check(isinstance(u.get("has_password"), bool), what + " has_password bool",
                req, "bool", u.get("has_password"))
    ok &= check(isinstance(u.get("custom_data"), dict), what + " custom_data object",
                req, "object", u.get("custom_data"))
    ok &= check(isinstance(u.get("identities"), dict), what + " identities object",
                req, "object", u.get("identities"))
    return ok


def expect_ok(r, status=200, what="", message=None):
    """success envelope with data; message required on writes"""
    ok = check(r.status == status, what + " status", r.req, status, r)
    if not ok:
        return False
    ok &= check(isinstance(r.json, dict) and r.json.get("success") is True
                and "data" in r.json, what + " success envelope", r.req,
                '{"success":true,"data":...}', r)
    if message:
        ok &= check(isinstance(r.json, dict) and isinstance(r.json.get("message"), str)
                    and r.json.get("message"), what + " carries message on a write",
                    r.req, '"message": "..."', r)
    ok &= check((r.h("content-type") or "").startswith("application/json"),
                what + " JSON content type", r.req, "application/json",
                r.h("content-type"))
    return ok


def expect_err(r, status, code, field=None, what=""):
    """one check: status, error envelope, code, message and (if given) field"""
    j = r.json if isinstance(r.json, dict) else {}
    err = j.get("error") if isinstance(j.get("error"), dict) else {}
    problems = []
    if r.status != status:
        problems.append("status")
    if j.get("success") is not False:
        problems.append("success!=false")
    if err.get("code") != code:
        problems.append("code")
    if not (isinstance(err.get("message"), str) and err.get("message")):
        problems.append("message")
    if field is not None and err.get("field") != field:
        problems.append("field")
    exp = '%s {"success":false,"error":{"code":"%s","message":...%s}}' % (
        status, code, ',"field":"%s"' % field if field is not None else "")
    return check(not problems, "%s [%s]" % (what, ",".join(problems)) if problems else what,
                 r.req, exp, r)


SEQ = [0]


def uniq(prefix="u"):
    SEQ[0] += 1
    return "%s%d_%d" % (prefix, os.getpid() % 1000, SEQ[0])


def email(prefix="e"):
    return "%s@example.com" % uniq(prefix)


def create(srv, **fields):
    body = {"name": fields.pop("name", "Test User"),
            "email": fields.pop("email", email())}
    body.update(fields)
    return call(srv, "POST", "/v1/users", body)


# --------------------------------------------------------------------------
# RPC


class Rpc:
    def __init__(self, srv, auth=True, use_bin_type=True):
        self.s = socket.create_connection(("127.0.0.1", srv.rpc), timeout=15)
        self.unp = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 100
        self.bin = use_bin_type
        if auth:
            r = self.call("auth", [KEY])
            if r[2] is not None or r[3] is not True:
                raise RuntimeError("rpc auth failed: %r" % (r,))

    def send(self, method, params, msgid=None):
        if msgid is None:
            self.msgid += 1
            msgid = self.msgid
        self.s.sendall(msgpack.packb([0, msgid, method, params],
                                     use_bin_type=self.bin))
        return msgid

    def sendraw(self, b):
        self.s.sendall(b)

    def recv(self, timeout=15):
        self.s.settimeout(timeout)
        while True:
            for m in self.unp:
                return m
            d = self.s.recv(1 << 16)
            if not d:
                raise EOFError("connection closed")
            self.unp.feed(d)

    def call(self, method, params):
        mid = self.send(method, params)
        while True:
            m = self.recv()
            if isinstance(m, list) and len(m) == 4 and m[1] == mid:
                return m

    def closed_within(self, seconds):
        """True if the server closes the connection (after any replies)."""
        end = time.time() + seconds
        try:
            while time.time() < end:
                self.s.settimeout(max(0.05, end - time.time()))
                d = self.s.recv(1 << 16)
                if not d:
                    return True
                self.unp.feed(d)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False

    def close(self):
        self.s.close()


def rpc_ok(m, what, req):
    return check(isinstance(m, list) and len(m) == 4 and m[0] == 1 and m[2] is None,
                 what, req, "[1, msgid, nil, result]", m)


def rpc_err(m, code, what, req, field=None):
    ok = check(isinstance(m, list) and len(m) == 4 and m[0] == 1
               and isinstance(m[2], dict) and m[2].get("code") == code
               and m[3] is None,
               what, req, "[1, msgid, {code: %s, ...}, nil]" % code, m)
    if ok:
        check(isinstance(m[2].get("message"), str) and m[2]["message"],
              what + " (error map has message)", req, "message string", m)
        if field is not None:
            check(m[2].get("field") == field, what + " (error field)", req,
                  "field=%r" % field, m)
    return ok


# --------------------------------------------------------------------------
# libsodium (for password_hash imports only)

def sodium_hash(password, alg):
    """alg 2 = Argon2id, 1 = Argon2i. Returns the encoded string or None."""
    try:
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        lib = ctypes.CDLL(name)
        if lib.sodium_init() < 0:
            return None
        buf = ctypes.create_string_buffer(128)
        pw = password.encode()
        ops = 1 if alg == 2 else 3
        rc = lib.crypto_pwhash_str_alg(buf, pw, ctypes.c_ulonglong(len(pw)),
                                       ctypes.c_ulonglong(ops),
                                       ctypes.c_size_t(8192), ctypes.c_int(alg))
        return buf.value.decode() if rc == 0 else None
    except Exception:
        return None


# ==========================================================================
# tests: HTTP basics


def t_http_basics(S):
    r = call(S, "GET", "/healthz", key=None)
    check(r.status == 200 and r.json == {"status": "ok"},
          "/healthz without key", r.req, '200 {"status":"ok"}', r)

    for path in ("/v1/users", "/v1/logs?user_id=usr_x", "/metrics",
                 "/v1/users/usr_abc"):
        expect_err(call(S, "GET", path, key=None), 401, "unauthorized",
                   what="no API key")
    expect_err(call(S, "GET", "/v1/users", key="wrong-key"), 401, "unauthorized",
               what="wrong API key")
    expect_err(call(S, "GET", "/v1/users", key=None,
                    headers={"Authorization": "Basic " + KEY}), 401,
               "unauthorized", what="non-Bearer scheme")
    expect_err(call(S, "POST", "/v1/users", {"name": "x", "email": email()},
                    key=None), 401, "unauthorized", what="write without key")

    for path in ("/v1/nope", "/v2/users", "/", "/v1/users/usr_abc/bogus",
                 "/v1/users/usr_abc/identities/github/extra", "/v1/user"):
        expect_err(call(S, "GET", path), 404, "not_found",
                   what="unknown route")

    uid = create(S).data["id"]
    for m, p in (("PUT", "/v1/users"), ("DELETE", "/v1/users"),
                 ("PATCH", "/v1/users"), ("POST", "/v1/users/" + uid),
                 ("PUT", "/v1/users/" + uid), ("GET", "/v1/users/%s/password" % uid),
                 ("POST", "/v1/users/%s/password" % uid),
                 ("GET", "/v1/users/%s/password/verify" % uid),
                 ("GET", "/v1/users/%s/is-suspended" % uid),
                 ("GET", "/v1/users/%s/identities/github" % uid),
                 ("POST", "/v1/logs"), ("DELETE", "/v1/logs"),
                 ("POST", "/metrics"), ("POST", "/healthz")):
        r = call(S, m, p, raw=b"{}" if m in ("POST", "PUT", "PATCH") else None)
        expect_err(r, 405, "method_not_allowed", what="wrong method")
        if r.status == 405 and not r.h("allow"):
            note("405 on %s %s has no Allow header" % (m, p))

    # malformed / wrong body
    expect_err(call(S, "POST", "/v1/users", raw=b'{"name": "x", "email": '),
               400, "invalid_request", what="malformed JSON")
    expect_err(call(S, "POST", "/v1/users", raw=b''), 400, "invalid_request",
               what="empty body on create")
    expect_err(call(S, "POST", "/v1/users", raw=b'[{"name":"x","email":"y@z.com"}]'),
               400, "invalid_request", what="body not an object")
    expect_err(call(S, "POST", "/v1/users",
                    raw=b'{"name":"\xff\xfe","email":"bad8@x.com"}'),
               400, "invalid_request", what="invalid UTF-8 body")
    expect_err(call(S, "POST", "/v1/users",
                    raw=b'{"name":"a\\ud800b","email":"surr@x.com"}'),
               400, "invalid_request", what="lone surrogate in name")

    # 413
    big = b'{"name":"x","email":"big@x.com","custom_data":{"k":"' + \
        b"a" * (1024 * 1024 + 10) + b'"}}'
    # the server may answer as soon as it sees Content-Length: read the reply
    # after sending only the head (deterministic), then as a plain client that
    # writes the whole body before reading (http.client, requests, ...)
    for extra, desc in ((b"", "head only"), (b"Expect: 100-continue\r\n", "Expect: 100-continue")):
        try:
            sk = socket.create_connection(("127.0.0.1", S.http), timeout=5)
            sk.sendall(b"POST /v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                       + KEY.encode() + b"\r\nContent-Type: application/json\r\n" + extra +
                       b"Content-Length: %d\r\n\r\n" % len(big))
            resp = b""
            while True:
                d = sk.recv(65536)
                if not d:
                    break
                resp += d
                if b"\r\n\r\n" in resp and b"}}" in resp:
                    break
            sk.close()
        except OSError as ex:
            resp = ("exception %r" % ex).encode()
        check(resp.startswith(b"HTTP/1.1 413") and b'"payload_too_large"' in resp,
              "body over 1 MiB -> 413 payload_too_large (%s)" % desc,
              "POST /v1/users Content-Length: %d (%s)" % (len(big), desc),
              "413 payload_too_large", resp[:300])
    # a client that writes the whole body and then reads (ignoring EPIPE on
    # the write, as the server may close early) must find the 413
    codes = []
    for _ in range(5):
        sk = socket.create_connection(("127.0.0.1", S.http), timeout=5)
        try:
            sk.sendall(b"POST /v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                       + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        except OSError:
            pass
        try:
            codes.append(sk.recv(4096)[:12].decode("latin-1"))
        except OSError as ex:
            codes.append(type(ex).__name__)
        sk.close()
    check(all(c == "HTTP/1.1 413" for c in codes),
          "client writing a >1 MiB body then reading finds the 413",
          "5 x POST /v1/users with a %d-byte body, then read" % len(big),
          "HTTP/1.1 413 each time", codes)
    errs = 0
    for _ in range(5):
        if call(S, "POST", "/v1/users", raw=big).status != 413:
            errs += 1
    # (the server reads and discards the rest of the body after its reply:
    # closing with it unread would reset the connection before
    # http.client, still writing, gets to read the 413)
    check(errs == 0, "http.client POSTing a >1 MiB body gets the 413",
          "5 x http.client POST /v1/users with a %d-byte body" % len(big),
          "413 each time", "%d of 5 failed" % errs)


def t_metrics(S):
    # make some known population first
    create(S, role="viewer", status="inactive")
    r = call(S, "GET", "/metrics")
    check(r.status == 200, "/metrics status", r.req, 200, r)
    check((r.h("content-type") or "").startswith("text/plain"),
          "/metrics is Prometheus text", r.req, "text/plain; version=0.0.4",
          r.h("content-type"))
    text = r.body.decode("utf-8", "replace")
    bad = []
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                     r'(\{(?:\s*[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"\s*,?)*\})?'
                     r'\s+(\S+)(\s+-?\d+)?$', line)
        if not m:
            bad.append(line)
            continue
        try:
            float(m.group(3).replace("+Inf", "inf"))
        except ValueError:
            bad.append(line)
        samples.setdefault(m.group(1), []).append((m.group(2) or "", m.group(3)))
    check(not bad, "/metrics lines parse as Prometheus samples", r.req,
          "name{labels} value", bad[:3])
    names = list(samples)

    def has(pred):
        return any(pred(n, lbl) for n in samples for lbl, _ in samples[n])
    check(has(lambda n, l: "role=" in l and "status=" in l),
          "/metrics users by role and status", r.req, 'a sample with role=,status= labels', names)
    check(has(lambda n, l: "request" in n and "route=" in l),
          "/metrics requests by route", r.req, "requests counter with route label", names)
    check(has(lambda n, l: "error" in n and "route=" in l),
          "/metrics errors by route", r.req, "errors counter with route label", names)
    check(any(n.endswith("_bucket") for n in names) and
          has(lambda n, l: n.endswith("_bucket") and 'le="+Inf"' in l),
          "/metrics latency histogram", r.req, "*_bucket{le=...} incl +Inf", names)
    check(any("log" in n for n in names), "/metrics log state", r.req,
          "a log metric", names)
    check(any("snapshot" in n for n in names), "/metrics snapshot state", r.req,
          "a snapshot metric", names)
    # the viewer/inactive count must be at least 1 (we created one)
    vi = [v for n in samples for l, v in samples[n]
          if 'role="viewer"' in l and 'status="inactive"' in l]
    check(vi and float(vi[0]) >= 1, "/metrics viewer/inactive count reflects data",
          r.req, ">= 1", vi)


# ==========================================================================
# tests: create and field rules


def t_create_and_fields(S):
    em = "Mixed.Case%d@Example.COM" % os.getpid()
    r = call(S, "POST", "/v1/users", {"name": "Alice", "email": em})
    if expect_ok(r, 201, "create minimal", message=True):
        u = r.data
        check_user_shape(u, r.req)
        check(re.match(r"^usr_[0-9a-z]{16}$", u["id"] or ""), "generated id format",
              r.req, "usr_ + 16 [0-9a-z]", u["id"])
        check(u["email"] == em, "email kept as given", r.req, em, u["email"])
        check(u["role"] == "user" and u["status"] == "active",
              "defaults role=user status=active", r.req, "user/active", u)
        check(u["avatar"] is None and u["custom_data"] == {} and
              u["identities"] == {} and u["has_password"] is False and
              u["last_sign_in_at"] is None,
              "defaults avatar null, custom_data {}, identities {}, no password",
              r.req, "null/{}/{}/false/null", u)
        ts = parse_ts(u["created_at"])
        check(ts is not None and abs(ts - time.time()) < 120,
              "created_at is now (UTC)", r.req, "within 2 min of now", u["created_at"])
        check(u["created_at"] == u["updated_at"] or
              (parse_ts(u["updated_at"]) or 0) >= (ts or 0),
              "updated_at >= created_at on create", r.req, "", u)
        g = call(S, "GET", "/v1/users/" + u["id"])
        expect_ok(g, 200, "GET created user")
        check(g.data == u, "GET returns the created user", g.req, u, g.data)
        check(bool(g.h("etag")), "GET /v1/users/{id} sends ETag", g.req, "ETag header",
              g.headers)
        # email lookups
        lr = call(S, "GET", q("/v1/users", email=em.lower()))
        check(lr.status == 200 and lr.data and len(lr.data) == 1 and
              lr.data[0]["id"] == u["id"], "list email= lookup is case-insensitive",
              lr.req, "exactly the user %s" % u["id"], lr)
        lr = call(S, "GET", q("/v1/users", email=em.upper()))
        check(lr.status == 200 and lr.data and len(lr.data) == 1,
              "list email= upper-case lookup", lr.req, "1 user", lr)
        # case-insensitive uniqueness
        d = call(S, "POST", "/v1/users", {"name": "B", "email": em.swapcase()})
        expect_err(d, 409, "duplicate_email", what="duplicate email, other case")
        d = call(S, "POST", "/v1/users", {"name": "B", "email": em})
        expect_err(d, 409, "duplicate_email", what="duplicate email, same case")
        # changing one's own email case is not a conflict
        p = call(S, "PATCH", "/v1/users/" + u["id"], {"email": em.lower()})
        expect_ok(p, 200, "PATCH own email to other case", message=True)
        if p.status == 200:
            check(p.data["email"] == em.lower(), "PATCH email kept as given", p.req,
                  em.lower(), p.data["email"])
        other = create(S).data
        p = call(S, "PATCH", "/v1/users/" + other["id"], {"email": em.upper()})
        expect_err(p, 409, "duplicate_email", what="PATCH email onto another user's")

    # generated ids are distinct
    ids = set()
    for i in range(15):
        rr = create(S)
        if rr.status == 201:
            ids.add(rr.data["id"])
            check(re.match(r"^usr_[0-9a-z]{16}$", rr.data["id"]),
                  "generated id format", rr.req, "usr_[0-9a-z]{16}", rr.data["id"])
    check(len(ids) == 15, "generated ids distinct", "15 creates", 15, len(ids))

    # ---- name
    for name, desc in (("a" * 128, "128 ASCII"), ("中" * 128, "128 CJK"),
                       ("😀" * 128, "128 emoji (4-byte)"), ("张伟", "Chinese"),
                       ("Zoë Ünïcode-O'Brien", "Latin-1 accents"),
                       ("a" * 127 + "é", "127 ASCII + 1 two-byte")):
        r = create(S, name=name)
        if expect_ok(r, 201, "name %s accepted" % desc, message=True):
            check(r.data["name"] == name, "name kept exactly (%s)" % desc, r.req,
                  name, r.data["name"])
    for name, desc in (("a" * 129, "129 ASCII"), ("中" * 129, "129 CJK"),
                       ("😀" * 129, "129 emoji"), ("", "empty"),
                       ("a\x01b", "control U+0001"), ("a\nb", "newline"),
                       ("a\tb", "tab"), ("a\x7fb", "DEL U+007F"),
                       ("a\u0085b", "C1 control U+0085")):
        expect_err(create(S, name=name), 400, "invalid_request", "name",
                   what="name %s rejected" % desc)
    r = create(S, name="a\x00b")
    expect_err(r, 400, "invalid_request", what="name with NUL rejected")
    if r.status == 400 and isinstance(r.json, dict) and \
            "field" not in (r.json.get("error") or {}):
        note("a name containing \\u0000 is rejected by the JSON parser without "
             "field:\"name\"; message: %r" % r.json["error"].get("message"))
    for v in (5, None, ["x"], {"a": 1}, True):
        expect_err(create(S, name=v), 400, "invalid_request", "name",
                   what="name of wrong type %r" % type(v).__name__)
    expect_err(call(S, "POST", "/v1/users", {"email": email()}), 400,
               "invalid_request", "name", what="name missing")

    # ---- email
    e254 = "a" * 60 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + ".com"
    e255 = "a" * 61 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + ".com"
    assert len(e254) == 254 and len(e255) == 255
    r = create(S, email=e254)
    expect_ok(r, 201, "email of 254 bytes accepted", message=True)
    expect_err(create(S, email=e255), 400, "invalid_request", "email",
               what="email of 255 bytes rejected")
    for e, desc in (("plainaddress", "no @"), ("a@localhost", "no dot in domain"),
                    ("a b@x.com", "space in local"), ("ab@x .com", "space in domain"),
                    (" ab@x.com", "leading space"), ("ab@x.com ", "trailing space"),
                    ("@x.com", "empty local"), ("ab@", "empty domain"), ("", "empty"),
                    ("a\tb@x.com", "tab")):
        expect_err(create(S, email=e), 400, "invalid_request", "email",
                   what="email %s rejected" % desc)
    for v in (5, None, ["a@b.com"]):
        expect_err(create(S, email=v), 400, "invalid_request", "email",
                   what="email of wrong type")
    expect_err(call(S, "POST", "/v1/users", {"name": "x"}), 400,
               "invalid_request", "email", what="email missing")

    # ---- role / status
    for role in ("admin", "user", "viewer"):
        r = create(S, role=role)
        if expect_ok(r, 201, "role %s" % role):
            check(r.data["role"] == role, "role stored", r.req, role, r.data["role"])
    for st in ("active", "inactive", "suspended"):
        r = create(S, status=st)
        if expect_ok(r, 201, "status %s" % st):
            check(r.data["status"] == st, "status stored", r.req, st, r.data["status"])
    for role in ("Admin", "superuser", "", 1, None):
        expect_err(create(S, role=role), 400, "invalid_request", "role",
                   what="bad role %r" % (role,))
    for st in ("Active", "deleted", "", 0, None):
        expect_err(create(S, status=st), 400, "invalid_request", "status",
                   what="bad status %r" % (st,))

    # ---- avatar
    for av in ("https://cdn.example.com/a.png", "http://example.com/x?y=1",
               None):
        r = create(S, avatar=av)
        if expect_ok(r, 201, "avatar %r accepted" % (av,)):
            check(r.data["avatar"] == av, "avatar stored", r.req, av, r.data["avatar"])
    base = "https://example.com/"
    a2048 = base + "a" * (2048 - len(base))
    a2049 = base + "a" * (2049 - len(base))
    r = create(S, avatar=a2048)
    if expect_ok(r, 201, "avatar of 2048 bytes accepted"):
        check(r.data["avatar"] == a2048, "2048-byte avatar stored", r.req[:80],
              "same", len(r.data["avatar"] or ""))
    expect_err(create(S, avatar=a2049), 400, "invalid_request", "avatar",
               what="avatar of 2049 bytes rejected")
    for av in ("ftp://example.com/a.png", "example.com/a.png", "javascript:alert(1)",
               "", "data:image/png;base64,AAAA", 5, ["https://x.com"]):
        expect_err(create(S, avatar=av), 400, "invalid_request", "avatar",
                   what="bad avatar %r" % (av,))

    # ---- custom_data
    cd = {"plan": "pro", "n": 3, "f": 1.5, "ok": True, "none": None,
          "list": [1, "two", {"three": 3}], "nested": {"中文": "值", "e": "é"}}
    r = create(S, custom_data=cd)
    if expect_ok(r, 201, "custom_data object"):
        check(r.data["custom_data"] == cd, "custom_data round-trips", r.req, cd,
              r.data["custom_data"])
    # compact JSON {"k":"<n>"} is n + 8 bytes
    c8192 = {"k": "x" * (8192 - 8)}
    c8193 = {"k": "x" * (8193 - 8)}
    assert len(json.dumps(c8192, separators=(",", ":"))) == 8192
    r = create(S, custom_data=c8192)
    expect_ok(r, 201, "custom_data of exactly 8 KiB (compact JSON) accepted")
    expect_err(create(S, custom_data=c8193), 400, "invalid_request", "custom_data",
               what="custom_data of 8 KiB + 1 rejected")
    expect_err(create(S, custom_data={"k": "x" * 20000}), 400, "invalid_request",
               "custom_data", what="custom_data of 20 KB rejected")
    for v in ([1, 2], "str", 5, True):
        expect_err(create(S, custom_data=v), 400, "invalid_request", "custom_data",
                   what="custom_data not an object (%r)" % (v,))

    # ---- unknown / read-only fields
    for k, v in (("foo", 1), ("created_at", "2025-01-01T00:00:00Z"),
                 ("has_password", True), ("identities", {}),
                 ("last_sign_in_at", None), ("updated_at", "2025-01-01T00:00:00Z")):
        expect_err(create(S, **{k: v}), 400, "invalid_request", k,
                   what="create with unknown/read-only field %s" % k)

    # ---- imported ids
    for iid in ("usr_ABC-def_123", "usr_" + "Z" * 60, "usr_a", "usr__-_"):
        iid = iid if len(iid) > 10 else iid + uniq("x")[:4]
        if len(iid) > 64:
            iid = iid[:64]
        r = create(S, id=iid)
        if expect_ok(r, 201, "import id %s" % iid[:20], message=True):
            check(r.data["id"] == iid, "imported id kept", r.req, iid, r.data["id"])
            g = call(S, "GET", "/v1/users/" + iid)
            check(g.status == 200 and g.data and g.data["id"] == iid,
                  "GET imported id", g.req, 200, g)
    r = create(S, id="usr_dupcheck%d" % os.getpid())
    expect_ok(r, 201, "import id")
    expect_err(create(S, id="usr_dupcheck%d" % os.getpid()), 409, "duplicate_id",
               what="duplicate imported id")
    gen = create(S).data["id"]
    expect_err(create(S, id=gen), 409, "duplicate_id",
               what="import id equal to a generated id")
    for iid in ("usr_", "usr_" + "Z" * 61, "user_abc", "USR_abc", "usr_a.b",
                "usr_a b", "usr_a/b", "usr_é", "abc", 5, None):
        expect_err(create(S, id=iid), 400, "invalid_request", "id",
                   what="bad imported id %r" % (iid,))

    # ---- password
    for pw, desc in (("12345678", "8 bytes"), ("p" * 256, "256 bytes"),
                     ("éééé", "4 chars = 8 bytes"), ("é" * 128, "256 bytes UTF-8")):
        r = create(S, password=pw)
        if expect_ok(r, 201, "password %s accepted" % desc):
            check(r.data["has_password"] is True, "has_password after create",
                  r.req, True, r.data["has_password"])
            check(pw not in r.body.decode("utf-8", "replace"),
                  "password never echoed", r.req, "no password in body", r)
    for pw, desc in (("1234567", "7 bytes"), ("p" * 257, "257 bytes"),
                     ("é" * 129, "258 bytes UTF-8"), ("", "empty")):
        expect_err(create(S, password=pw), 400, "invalid_request", "password",
                   what="password %s rejected" % desc)
    for v in (12345678, None, ["12345678"]):
        expect_err(create(S, password=v), 400, "invalid_request", "password",
                   what="password of wrong type")

    # ---- password_hash imports
    for alg, label in ((2, "argon2id"), (1, "argon2i")):
        h = sodium_hash("import-pass-%s" % label, alg)
        if not h:
            note("libsodium not loadable via ctypes: %s import not tested" % label)
            continue
        r = create(S, password_hash=h)
        if expect_ok(r, 201, "password_hash %s import" % label):
            check(r.data["has_password"] is True, "has_password after hash import",
                  r.req, True, r.data)
            check(h not in r.body.decode(), "hash never echoed", r.req, "", r)
            uid = r.data["id"]
            v = call(S, "POST", "/v1/users/%s/password/verify" % uid,
                     {"password": "import-pass-%s" % label})
            check(v.status == 200 and v.json == {"success": True, "data": {"valid": True}},
                  "verify imported %s hash, right password" % label, v.req,
                  '{"success":true,"data":{"valid":true}}', v)
            v = call(S, "POST", "/v1/users/%s/password/verify" % uid,
                     {"password": "wrong-password"})
            check(v.status == 200 and v.data == {"valid": False},
                  "verify imported %s hash, wrong password" % label, v.req,
                  '{"valid":false}', v)
    for h in ("notahash", "$2b$10$abcdefghijklmnopqrstuuK5b0ZQd7Pj1ZXjB9zZzZzZzZzZzZzZ",
              "$argon2d$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
              "$argon2id$v=19$m=8,t=1,p=1$garbage", "$argon2i$xyz", 5):
        expect_err(create(S, password_hash=h), 400, "invalid_request",
                   "password_hash", what="bad password_hash %r" % (h,))
    h = sodium_hash("both-pass-1", 2)
    if h:
        r = create(S, password="both-pass-1", password_hash=h)
        check(r.status == 400, "password and password_hash together rejected",
              r.req, "400 invalid_request", r)


# ==========================================================================
# tests: GET/PATCH/DELETE, ETag


def t_update_delete_etag(S):
    r = create(S, name="Before", custom_data={"a": 1})
    u = r.data
    uid = u["id"]
    g = call(S, "GET", "/v1/users/" + uid)
    etag1 = g.h("etag")
    time.sleep(0.02)
    p = call(S, "PATCH", "/v1/users/" + uid,
             {"name": "After", "role": "admin", "status": "inactive",
              "avatar": "https://x.example.com/a.png", "custom_data": {"b": 2}})
    if expect_ok(p, 200, "PATCH all fields", message=True):
        d = p.data
        check_user_shape(d, p.req)
        check(d["name"] == "After" and d["role"] == "admin" and d["status"] == "inactive"
              and d["avatar"] == "https://x.example.com/a.png" and d["custom_data"] == {"b": 2},
              "PATCH applies fields", p.req, "name/role/status/avatar/custom_data", d)
        check(d["created_at"] == u["created_at"], "created_at unchanged by PATCH",
              p.req, u["created_at"], d["created_at"])
        t_old, t_new = parse_ts(u["updated_at"]), parse_ts(d["updated_at"])
        if t_old is not None and t_new is not None and t_new == t_old and \
                "." not in u["updated_at"]:
            time.sleep(1.05)
            p = call(S, "PATCH", "/v1/users/" + uid, {"name": "After2"})
            d = p.data or d
            t_new = parse_ts(d["updated_at"])
        check(t_old is not None and t_new is not None and t_new > t_old,
              "updated_at moves on PATCH", p.req, "> %s" % u["updated_at"],
              d.get("updated_at"))
    g2 = call(S, "GET", "/v1/users/" + uid)
    etag2 = g2.h("etag")
    time.sleep(0.01)
    same = call(S, "PATCH", "/v1/users/" + uid, {"name": g2.data["name"]})
    if same.status == 200 and same.data["updated_at"] == g2.data["updated_at"]:
        note("a PATCH that changes nothing ({} or the same values) answers 200 "
             "'%s' but updated_at does not move and no user.updated event is logged"
             % same.json.get("message"))
    check(etag1 and etag2 and etag1 != etag2, "ETag changes after PATCH", g2.req,
          "different from %s" % etag1, etag2)
    # avatar can be cleared
    p = call(S, "PATCH", "/v1/users/" + uid, {"avatar": None})
    if expect_ok(p, 200, "PATCH avatar null"):
        check(p.data["avatar"] is None, "avatar cleared", p.req, None, p.data["avatar"])
    g3 = call(S, "GET", "/v1/users/" + uid)
    etag3 = g3.h("etag")
    # If-Match
    p = call(S, "PATCH", "/v1/users/" + uid, {"name": "Stale"},
             headers={"If-Match": etag1 or '"0"'})
    expect_err(p, 412, "precondition_failed", what="PATCH with stale If-Match")
    g = call(S, "GET", "/v1/users/" + uid)
    check(g.data and g.data["name"] != "Stale", "412 PATCH changed nothing", g.req,
          "name not Stale", g.data)
    p = call(S, "PATCH", "/v1/users/" + uid, {"name": "Fresh"},
             headers={"If-Match": etag3 or ""})
    expect_ok(p, 200, "PATCH with current If-Match", message=True)
    p = call(S, "PATCH", "/v1/users/" + uid, {"name": "Star"},
             headers={"If-Match": "*"})
    expect_ok(p, 200, "PATCH with If-Match: *")
    # PATCH validation: atomic, unknown fields, read-only fields
    before = call(S, "GET", "/v1/users/" + uid).data
    p = call(S, "PATCH", "/v1/users/" + uid, {"name": "Partial", "role": "root"})
    expect_err(p, 400, "invalid_request", "role", what="PATCH with one bad field")
    after = call(S, "GET", "/v1/users/" + uid).data
    check(after == before, "failed PATCH changes nothing", p.req, before, after)
    for k, v in (("id", "usr_newid123"), ("password", "newpassword1"),
                 ("has_password", False), ("created_at", "2020-01-01T00:00:00Z"),
                 ("bogus", 1), ("identities", {})):
        expect_err(call(S, "PATCH", "/v1/users/" + uid, {k: v}), 400,
                   "invalid_request", k, what="PATCH field %s not patchable" % k)
    for k, v in (("name", None), ("email", None), ("name", "x" * 129),
                 ("email", "nope"), ("status", "gone"), ("avatar", "ftp://x.com"),
                 ("custom_data", [1])):
        expect_err(call(S, "PATCH", "/v1/users/" + uid, {k: v}), 400,
                   "invalid_request", k, what="PATCH bad %s=%r" % (k, short(v, 20)))
    expect_err(call(S, "PATCH", "/v1/users/" + uid, raw=b"{bad"), 400,
               "invalid_request", what="PATCH malformed JSON")
    expect_err(call(S, "PATCH", "/v1/users/usr_doesnotexist00", {"name": "x"}), 404,
               "not_found", what="PATCH unknown user")
    expect_err(call(S, "GET", "/v1/users/usr_doesnotexist00"), 404, "not_found",
               what="GET unknown user")

    # DELETE with If-Match
    cur = call(S, "GET", "/v1/users/" + uid).h("etag")
    d = call(S, "DELETE", "/v1/users/" + uid, headers={"If-Match": etag1 or '"x"'})
    expect_err(d, 412, "precondition_failed", what="DELETE with stale If-Match")
    check(call(S, "GET", "/v1/users/" + uid).status == 200,
          "412 DELETE kept the user", "GET /v1/users/" + uid, 200, "")
    d = call(S, "DELETE", "/v1/users/" + uid, headers={"If-Match": cur or ""})
    check(d.status == 200 and isinstance(d.json, dict) and d.json.get("success") is True
          and isinstance(d.json.get("message"), str) and "data" not in d.json,
          "DELETE answers success+message only", d.req,
          '200 {"success":true,"message":"..."}', d)
    expect_err(call(S, "GET", "/v1/users/" + uid), 404, "not_found",
               what="GET deleted user")
    expect_err(call(S, "DELETE", "/v1/users/" + uid), 404, "not_found",
               what="DELETE deleted user")
    return uid


# ==========================================================================
# tests: password, suspension, identities, logs


def t_password_suspend_identities_logs(S):
    r = create(S, name="Logged")
    uid = r.data["id"]
    steps = ["user.created"]
    time.sleep(0.002)
    call(S, "PATCH", "/v1/users/" + uid, {"name": "Logged2"})
    steps.append("user.updated")

    # verify without a password set
    v = call(S, "POST", "/v1/users/%s/password/verify" % uid, {"password": "whatever1"})
    check(v.status == 200 and v.data == {"valid": False},
          "verify when no password is set", v.req, '200 {"valid":false}', v)
    steps.append("user.password_verified")

    pr = call(S, "PATCH", "/v1/users/%s/password" % uid, {"password": "first-pass-1"})
    if expect_ok(pr, 200, "password reset", message=True):
        check_user_shape(pr.data, pr.req)
        check(pr.data["has_password"] is True, "has_password after reset", pr.req,
              True, pr.data["has_password"])
        check("first-pass-1" not in pr.body.decode(), "password not echoed", pr.req,
              "", pr)
    steps.append("user.password_changed")
    for pw, desc in (("short", "5 bytes"), ("x" * 257, "257 bytes")):
        expect_err(call(S, "PATCH", "/v1/users/%s/password" % uid, {"password": pw}),
                   400, "invalid_request", "password", what="password reset %s" % desc)
    expect_err(call(S, "PATCH", "/v1/users/%s/password" % uid, {}), 400,
               "invalid_request", "password", what="password reset missing field")
    expect_err(call(S, "PATCH", "/v1/users/%s/password" % uid, {"password": 12345678}),
               400, "invalid_request", "password", what="password reset wrong type")
    expect_err(call(S, "PATCH", "/v1/users/usr_nosuchuser0000/password",
                    {"password": "abcdefgh1"}), 404, "not_found",
               what="password reset unknown user")

    g = call(S, "GET", "/v1/users/" + uid).data
    check(g["last_sign_in_at"] is None, "last_sign_in_at null before any sign-in",
          "GET", None, g["last_sign_in_at"])
    v = call(S, "POST", "/v1/users/%s/password/verify" % uid, {"password": "wrong-pass-1"})
    check(v.status == 200 and v.json == {"success": True, "data": {"valid": False}},
          "verify wrong password", v.req, '{"success":true,"data":{"valid":false}}', v)
    steps.append("user.password_verified")
    g = call(S, "GET", "/v1/users/" + uid).data
    check(g["last_sign_in_at"] is None, "failed verify leaves last_sign_in_at",
          v.req, None, g["last_sign_in_at"])
    v = call(S, "POST", "/v1/users/%s/password/verify" % uid, {"password": "first-pass-1"})
    check(v.status == 200 and v.json == {"success": True, "data": {"valid": True}},
          "verify right password", v.req, '{"success":true,"data":{"valid":true}}', v)
    steps.append("user.password_verified")
    g = call(S, "GET", "/v1/users/" + uid).data
    ts = parse_ts(g["last_sign_in_at"] or "")
    check(ts is not None and abs(ts - time.time()) < 120,
          "successful verify sets last_sign_in_at (RFC 3339 Z, now)", v.req,
          "timestamp now", g["last_sign_in_at"])
    pr = call(S, "PATCH", "/v1/users/%s/password" % uid, {"password": "second-pass-2"})
    steps.append("user.password_changed")
    v = call(S, "POST", "/v1/users/%s/password/verify" % uid, {"password": "first-pass-1"})
    check(v.status == 200 and v.data == {"valid": False},
          "old password invalid after reset", v.req, '{"valid":false}', v)
    steps.append("user.password_verified")
    expect_err(call(S, "POST", "/v1/users/%s/password/verify" % uid, {}), 400,
               "invalid_request", "password", what="verify without password field")
    expect_err(call(S, "POST", "/v1/users/usr_nosuchuser0000/password/verify",
                    {"password": "abcdefgh1"}), 404, "not_found",
               what="verify unknown user")

    # suspension
    s = call(S, "PATCH", "/v1/users/%s/is-suspended" % uid, {"is_suspended": True})
    if expect_ok(s, 200, "suspend", message=True):
        check_user_shape(s.data, s.req)
        check(s.data["status"] == "suspended", "suspend sets status suspended", s.req,
              "suspended", s.data["status"])
    steps.append("user.suspended")
    s = call(S, "PATCH", "/v1/users/%s/is-suspended" % uid, {"is_suspended": False})
    if expect_ok(s, 200, "unsuspend", message=True):
        check(s.data["status"] == "active", "unsuspend sets status active", s.req,
              "active", s.data["status"])
    steps.append("user.unsuspended")
    for body in ({"is_suspended": "yes"}, {"is_suspended": 1}, {}, {"is_suspended": None}):
        expect_err(call(S, "PATCH", "/v1/users/%s/is-suspended" % uid, body), 400,
                   "invalid_request", "is_suspended", what="bad is_suspended %r" % body)
    expect_err(call(S, "PATCH", "/v1/users/usr_nosuchuser0000/is-suspended",
                    {"is_suspended": True}), 404, "not_found",
               what="suspend unknown user")
    # an inactive user unsuspended becomes active (spec: false -> active)
    call(S, "PATCH", "/v1/users/" + uid, {"status": "inactive"})
    steps.append("user.updated")

    # identities
    idn = {"user_id": "gh-42", "details": {"login": "octo", "scopes": ["repo"]}}
    i = call(S, "PUT", "/v1/users/%s/identities/github" % uid, idn)
    check(i.status in (200, 201), "link identity status", i.req, "200", i)
    if i.status in (200, 201) and expect_ok(i, i.status, "link identity", message=True):
        check_user_shape(i.data, i.req)
        check(i.data["identities"].get("github") == idn, "identity linked", i.req,
              {"github": idn}, i.data["identities"])
    steps.append("user.identity_linked")
    idn2 = {"user_id": "gh-43", "details": {"login": "octo2"}}
    i = call(S, "PUT", "/v1/users/%s/identities/github" % uid, idn2)
    if expect_ok(i, 200, "replace identity", message=True):
        check(i.data["identities"] == {"github": idn2}, "identity replaced", i.req,
              {"github": idn2}, i.data["identities"])
    steps.append("user.identity_linked")
    i = call(S, "PUT", "/v1/users/%s/identities/google" % uid,
             {"user_id": "g-1", "details": {}})
    check(i.status in (200, 201) and i.data and set(i.data["identities"]) == {"github", "google"},
          "second identity linked", i.req, "github+google", i)
    steps.append("user.identity_linked")
    g = call(S, "GET", "/v1/users/" + uid).data
    check(g["identities"].get("github") == idn2, "GET shows identities", "GET user",
          idn2, g["identities"])
    for body, desc in (({"details": {}}, "missing user_id"),
                       ({"user_id": 5, "details": {}}, "user_id not a string"),
                       ({"user_id": "x", "details": "nope"}, "details not an object"),
                       ({"user_id": "x", "details": {}, "bogus": 1}, "unknown field")):
        r = call(S, "PUT", "/v1/users/%s/identities/github" % uid, body)
        expect_err(r, 400, "invalid_request", what="link identity %s" % desc)
    expect_err(call(S, "PUT", "/v1/users/%s/identities/github" % uid, raw=b"[1]"), 400,
               "invalid_request", what="link identity non-object body")
    expect_err(call(S, "PUT", "/v1/users/usr_nosuchuser0000/identities/github",
                    {"user_id": "x", "details": {}}), 404, "not_found",
               what="link identity on unknown user")
    d = call(S, "DELETE", "/v1/users/%s/identities/github" % uid)
    if expect_ok(d, 200, "unlink identity", message=True):
        check(set(d.data["identities"]) == {"google"}, "identity unlinked", d.req,
              "only google", d.data["identities"])
    steps.append("user.identity_removed")
    expect_err(call(S, "DELETE", "/v1/users/%s/identities/github" % uid), 404,
               "not_found", what="unlink identity not linked")
    expect_err(call(S, "DELETE", "/v1/users/usr_nosuchuser0000/identities/github"), 404,
               "not_found", what="unlink identity on unknown user")

    # logs
    lr = call(S, "GET", q("/v1/logs", user_id=uid, limit=100))
    if expect_ok(lr, 200, "GET /v1/logs"):
        ents = lr.data
        got = [e.get("event") for e in ents]
        check(got == list(reversed(steps)), "log events and order (newest first)",
              lr.req, list(reversed(steps)), got)
        for e in ents:
            ok = check(set(e) == {"id", "user_id", "event", "created_at", "details"},
                       "log entry keys", lr.req,
                       "id,user_id,event,created_at,details", sorted(e))
            if not ok:
                break
            check(e["user_id"] == uid, "log entry user_id", lr.req, uid, e["user_id"])
            check(isinstance(e["created_at"], str) and RFC3339.match(e["created_at"]),
                  "log entry created_at RFC 3339 Z", lr.req, "RFC 3339", e["created_at"])
            check(isinstance(e["details"], dict), "log entry details object", lr.req,
                  "object", e["details"])
        check(len({json.dumps(e.get("id")) for e in ents}) == len(ents),
              "log entry ids distinct", lr.req, "distinct", [e.get("id") for e in ents])
        times = [parse_ts(e.get("created_at", "")) or 0 for e in ents]
        check(all(times[k] >= times[k + 1] for k in range(len(times) - 1)),
              "log created_at newest first", lr.req, "non-increasing", times)
        pv = [e for e in ents if e.get("event") == "user.password_verified"]
        check([e["details"].get("valid") for e in pv] == [False, True, False, False],
              "password_verified details.valid (newest first)", lr.req,
              [False, True, False, False], [e.get("details") for e in pv])
        text = lr.body.decode()
        check(not any(p in text for p in ("first-pass-1", "second-pass-2", "wrong-pass-1")),
              "no password in the activity log", lr.req, "no clear passwords", "")
        check(lr.h("total-number") == str(len(steps)), "logs Total-Number", lr.req,
              len(steps), lr.h("total-number"))
        pg = lr.json.get("pagination")
        check(pg == {"page": 1, "limit": 100, "total": len(steps), "pages": 1},
              "logs pagination object", lr.req,
              {"page": 1, "limit": 100, "total": len(steps), "pages": 1}, pg)
        check(bool(lr.h("link")), "logs Link header", lr.req, "Link", lr.headers)
        l2 = call(S, "GET", q("/v1/logs", user_id=uid, page=2, limit=3))
        check(l2.status == 200 and l2.data is not None and
              [e["event"] for e in l2.data] == list(reversed(steps))[3:6],
              "logs page 2 limit 3", l2.req, list(reversed(steps))[3:6], l2)
        ld = call(S, "GET", q("/v1/logs", user_id=uid))
        check(ld.status == 200 and ld.json and ld.json.get("pagination", {}).get("limit") == 20,
              "logs default limit 20", ld.req, "limit 20", ld)
    for qs, desc in (({}, "no user_id"), ({"user_id": uid, "limit": 0}, "limit 0"),
                     ({"user_id": uid, "limit": 101}, "limit 101"),
                     ({"user_id": uid, "page": 0}, "page 0"),
                     ({"user_id": uid, "page": "x"}, "page x"),
                     ({"user_id": uid, "bogus": 1}, "unknown param"),
                     ({"user_id": "notanid"}, "user_id that is no id")):
        expect_err(call(S, "GET", q("/v1/logs", **qs)), 400, "invalid_request",
                   what="logs query %s" % desc)

    lr = call(S, "GET", q("/v1/logs", user_id="usr_neverexisted"))
    check(lr.status == 200 and lr.data == [] and
          lr.json.get("pagination", {}).get("total") == 0,
          "logs of a well-formed id nobody has: empty", lr.req, "200, []", lr)

    # delete; logs still readable
    call(S, "DELETE", "/v1/users/" + uid)
    steps.append("user.deleted")
    lr = call(S, "GET", q("/v1/logs", user_id=uid, limit=100))
    check(lr.status == 200 and lr.data is not None and
          [e["event"] for e in lr.data] == list(reversed(steps)),
          "logs readable after delete, user.deleted newest", lr.req,
          list(reversed(steps))[:3], lr)
    return uid


# ==========================================================================
# tests: list


def t_list(L):
    users = []
    specs = [("Zoë Ünïcode", "zoe.A@Example.org", "admin", "active"),
             ("张伟", "zhang@example.cn", "user", "active"),
             ("Bob Smith", "BOB@example.org", "viewer", "suspended"),
             ("bobby tables", "tables@corp.io", "admin", "suspended"),
             ("Émile Zola", "emile@example.fr", "user", "inactive"),
             ("Carol", "carol@Example.ORG", "admin", "inactive")]
    for name, em, role, st in specs:
        r = create(L, name=name, email=em, role=role, status=st)
        users.append(r.data)
        time.sleep(0.003)
    for k in range(19):
        users.append(create(L, name="Filler %02d" % k, email="filler%02d@fill.net" % k).data)
        time.sleep(0.001)
    N = len(users)
    ids = [u["id"] for u in users]

    r = call(L, "GET", "/v1/users")
    if expect_ok(r, 200, "list default"):
        check(len(r.data) == 20, "default limit 20", r.req, 20, len(r.data))
        check([u["id"] for u in r.data] == list(reversed(ids))[:20],
              "default order newest first", r.req, "reverse creation order",
              [u["name"] for u in r.data][:5])
        check(r.json.get("pagination") == {"page": 1, "limit": 20, "total": N,
                                           "pages": math.ceil(N / 20)},
              "pagination object", r.req,
              {"page": 1, "limit": 20, "total": N, "pages": 2}, r.json.get("pagination"))
        check(r.h("total-number") == str(N), "Total-Number header", r.req, N,
              r.h("total-number"))
        for u in r.data:
            if not check_user_shape(u, r.req, "list item"):
                break
    r = call(L, "GET", q("/v1/users", order="asc", limit=100))
    check(r.status == 200 and [u["id"] for u in r.data] == ids,
          "order=asc oldest first", r.req, "creation order", r)
    r = call(L, "GET", q("/v1/users", order="desc", limit=100))
    check(r.status == 200 and [u["id"] for u in r.data] == list(reversed(ids)),
          "order=desc newest first", r.req, "reverse creation order", r)

    # pagination + Link
    def links(resp):
        out = {}
        for part in (resp.h("link") or "").split(","):
            m = re.match(r'\s*<([^>]*)>\s*;\s*rel="?([a-z]+)"?', part)
            if m:
                out[m.group(2)] = m.group(1)
        return out
    r = call(L, "GET", q("/v1/users", limit=5, page=2, role="user"))
    # role=user: 张伟, Émile, 19 fillers = 21
    nu = sum(1 for u in users if u["role"] == "user")
    if expect_ok(r, 200, "list page 2"):
        lk = links(r)
        check(set(lk) >= {"first", "prev", "next", "last"}, "Link has first/prev/next/last",
              r.req, "first, prev, next, last", r.h("link"))
        check(r.json["pagination"] == {"page": 2, "limit": 5, "total": nu,
                                       "pages": math.ceil(nu / 5)},
              "pagination page 2", r.req, {"page": 2, "limit": 5, "total": nu,
                                            "pages": math.ceil(nu / 5)}, r.json["pagination"])
        want = [u["id"] for u in reversed(users) if u["role"] == "user"]
        check([u["id"] for u in r.data] == want[5:10], "page 2 content", r.req,
              want[5:10], [u["id"] for u in r.data])
        if "next" in lk:
            nx = call(L, "GET", lk["next"])
            check(nx.status == 200 and nx.data is not None and
                  [u["id"] for u in nx.data] == want[10:15],
                  "following Link next keeps filters", nx.req, want[10:15], nx)
        if "last" in lk:
            la = call(L, "GET", lk["last"])
            check(la.status == 200 and la.data is not None and
                  [u["id"] for u in la.data] == want[(math.ceil(nu / 5) - 1) * 5:],
                  "following Link last", la.req, "last page", la)
        if "first" in lk:
            fi = call(L, "GET", lk["first"])
            check(fi.status == 200 and fi.data is not None and
                  [u["id"] for u in fi.data] == want[:5], "following Link first", fi.req,
                  want[:5], fi)
    r = call(L, "GET", q("/v1/users", limit=5))
    lk = links(r)
    check("prev" not in lk and "next" in lk and "first" in lk and "last" in lk,
          "page 1 Link: first/next/last, no prev", r.req, "first,next,last", r.h("link"))
    r = call(L, "GET", q("/v1/users", limit=100))
    check(r.status == 200 and len(r.data) == N, "limit 100", r.req, N, r)
    r = call(L, "GET", q("/v1/users", limit=1))
    check(r.status == 200 and len(r.data) == 1, "limit 1", r.req, 1, r)
    r = call(L, "GET", q("/v1/users", page=99, limit=10))
    check(r.status == 400 or (r.status == 200 and r.data == []),
          "page past the end is empty (not clamped)", r.req, "200 [] or 400", r)

    for qs, desc in (({"limit": 0}, "limit 0"), ({"limit": 101}, "limit 101"),
                     ({"limit": -1}, "limit -1"), ({"limit": "abc"}, "limit abc"),
                     ({"limit": "10x"}, "limit 10x"), ({"page": 0}, "page 0"),
                     ({"page": -2}, "page -2"), ({"page": "one"}, "page one"),
                     ({"role": "root"}, "role root"), ({"status": "gone"}, "status gone"),
                     ({"order": "up"}, "order up"), ({"bogus": "1"}, "unknown param"),
                     ({"sort": "name"}, "unknown param sort"), ({"limit": ""}, "limit empty"),
                     ({"limit": 1.5}, "limit 1.5")):
        expect_err(call(L, "GET", q("/v1/users", **qs)), 400, "invalid_request",
                   what="list query %s" % desc)
    expect_err(call(L, "GET", "/v1/users?search=%zz"), 400, "invalid_request",
               what="list bad percent escape")

    def names(path):
        r = call(L, "GET", path)
        if r.status != 200 or r.data is None:
            return r, None
        return r, sorted(u["name"] for u in r.data)

    for qs, want, desc in (
            ({"role": "admin"}, ["Carol", "Zoë Ünïcode", "bobby tables"], "role=admin"),
            ({"status": "suspended"}, ["Bob Smith", "bobby tables"], "status=suspended"),
            ({"role": "admin", "status": "suspended"}, ["bobby tables"], "role AND status"),
            ({"email": "bob@EXAMPLE.org"}, ["Bob Smith"], "email exact case-insensitive"),
            ({"email": "bob@example"}, [], "email is exact, not substring"),
            ({"email": "ob@example.org"}, [], "email is exact (suffix)"),
            ({"search": "BOB"}, ["Bob Smith", "bobby tables"], "search name case-insensitive"),
            ({"search": "example.ORG"}, ["Bob Smith", "Carol", "Zoë Ünïcode"],
             "search email case-insensitive"),
            ({"search": "张"}, ["张伟"], "search CJK substring"),
            ({"search": "伟"}, ["张伟"], "search CJK substring (2nd char)"),
            ({"search": "Ünï"}, ["Zoë Ünïcode"], "search non-ASCII same case"),
            ({"search": "zoë"}, ["Zoë Ünïcode"], "search non-ASCII in ASCII-folded word"),
            ({"search": "ünï"}, ["Zoë Ünïcode"], "search non-ASCII case-insensitive (Ü/ü)"),
            ({"search": "ÉMILE"}, ["Émile Zola"], "search non-ASCII case-insensitive (é/É)"),
            ({"search": "bob", "role": "viewer"}, ["Bob Smith"], "search AND role"),
            ({"search": "bob", "status": "suspended", "role": "admin"}, ["bobby tables"],
             "search AND role AND status"),
            ({"search": "bob smith"}, ["Bob Smith"], "search with a space"),
            ({"search": "nomatchxyz"}, [], "search no match")):
        r, got = names(q("/v1/users", limit=100, **qs))
        check(got == sorted(want), "list %s" % desc, r.req, sorted(want), got if got is not None else r)
        if got is not None and r.json:
            check(r.json.get("pagination", {}).get("total") == len(want) and
                  r.h("total-number") == str(len(want)),
                  "list %s total" % desc, r.req, len(want),
                  (r.json.get("pagination"), r.h("total-number")))
    r, got = names("/v1/users?limit=100&search=bob+smith")
    check(got == ["Bob Smith"], "search '+' decodes to space", r.req, ["Bob Smith"], got or r)
    # a partial UTF-8 sequence must not match inside a character (张 = E5 BC A0)
    r = call(L, "GET", "/v1/users?search=%E5%BC")
    check(r.status == 400 or (r.status == 200 and r.data == []),
          "search with a partial UTF-8 sequence", r.req, "400 or no match", r)
    return users


# ==========================================================================
# tests: RPC


def t_rpc(S, persist):
    req = "connect; ping before auth"
    c = Rpc(S, auth=False)
    m = c.call("ping", [])
    check(m == [1, c.msgid, None, "pong"], "ping before auth", req,
          [1, c.msgid, None, "pong"], m)
    m = c.call("user.get", ["usr_x"])
    rpc_err(m, "unauthorized", "method before auth -> unauthorized", "user.get before auth")
    m = c.call("user.list", [{}])
    rpc_err(m, "unauthorized", "user.list before auth -> unauthorized", "user.list before auth")
    m = c.call("auth", ["wrong"])
    rpc_err(m, "unauthorized", "auth with wrong key", "auth [wrong]")
    m = c.call("user.get", ["usr_x"])
    rpc_err(m, "unauthorized", "still unauthorized after a failed auth", "user.get")
    m = c.call("auth", [KEY])
    check(m == [1, c.msgid, None, True], "auth with right key", "auth [key]",
          [1, c.msgid, None, True], m)
    c.close()

    c = Rpc(S)
    c0 = Rpc(S, auth=False)
    rpc_err(c0.call("user.get", ["usr_x"]), "unauthorized",
            "auth is per connection (other connection authed)", "user.get on a new connection")
    c0.close()
    # create
    fields = {"name": "Rpc 用户", "email": "Rpc.User%d@Example.com" % os.getpid(),
              "role": "viewer", "custom_data": {"x": [1, 2]}, "password": "rpc-pass-1"}
    m = c.call("user.create", [fields])
    u = None
    if rpc_ok(m, "user.create", "user.create [fields]"):
        u = m[3]
        check_user_shape(u, "user.create", "rpc user")
        check(u["name"] == fields["name"] and u["email"] == fields["email"] and
              u["role"] == "viewer" and u["custom_data"] == {"x": [1, 2]} and
              u["has_password"] is True and u["avatar"] is None and
              u["last_sign_in_at"] is None and u["identities"] == {},
              "user.create values", "user.create", fields, u)
        check(all(isinstance(k, str) for k in u) and isinstance(u["name"], str),
              "rpc strings are str (not bin)", "user.create", "str keys/values", u)
    if not u:
        c.close()
        return
    uid = u["id"]
    h = call(S, "GET", "/v1/users/" + uid)
    check(h.data == u, "RPC user map equals HTTP JSON user", "user.create vs GET",
          h.data, u)
    m = c.call("user.get", [uid])
    check(rpc_ok(m, "user.get", "user.get") and m[3] == u, "user.get returns user",
          "user.get [id]", u, m)
    rpc_err(c.call("user.get", ["usr_nosuchuser0000"]), "not_found", "user.get missing",
            "user.get [missing]")
    m = c.call("user.get_by_email", [fields["email"].upper()])
    check(rpc_ok(m, "user.get_by_email", "") and m[3] and m[3]["id"] == uid,
          "user.get_by_email case-insensitive", "user.get_by_email [UPPER]", uid, m)
    rpc_err(c.call("user.get_by_email", ["nobody@nowhere.com"]), "not_found",
            "user.get_by_email missing", "user.get_by_email [missing]")
    rpc_err(c.call("user.create", [dict(fields, email=fields["email"].lower())]),
            "duplicate_email", "user.create duplicate email (other case)", "user.create")
    rpc_err(c.call("user.create", [{"name": "x", "email": email(), "id": uid}]),
            "duplicate_id", "user.create duplicate id", "user.create")
    rpc_err(c.call("user.create", [{"name": "x" * 129, "email": email()}]),
            "invalid_request", "user.create name 129", "user.create", field="name")
    rpc_err(c.call("user.create", [{"name": "x", "email": "bad"}]),
            "invalid_request", "user.create bad email", "user.create", field="email")
    rpc_err(c.call("user.create", [{"name": "x", "email": email(), "bogus": 1}]),
            "invalid_request", "user.create unknown field", "user.create", field="bogus")
    rpc_err(c.call("user.create", ["notamap"]), "invalid_request",
            "user.create params not a map", "user.create ['notamap']")
    rpc_err(c.call("user.create", []), "invalid_request",
            "user.create without params", "user.create []")
    m = c.call("user.create", [{"name": "imp", "email": email(), "id": "usr_rpc-Import_1"}])
    check(rpc_ok(m, "user.create import id", "") and m[3]["id"] == "usr_rpc-Import_1",
          "user.create with imported id", "user.create {id}", "usr_rpc-Import_1", m)

    # get_many
    m = c.call("user.get_many", [[uid, "usr_nosuchuser0000", "usr_rpc-Import_1"]])
    check(rpc_ok(m, "user.get_many", "") and isinstance(m[3], list) and len(m[3]) == 3
          and m[3][0] and m[3][0]["id"] == uid and m[3][1] is None
          and m[3][2] and m[3][2]["id"] == "usr_rpc-Import_1",
          "user.get_many with nil for missing, in order", "user.get_many [[id, missing, id]]",
          "[user, nil, user]", m)
    m = c.call("user.get_many", [[]])
    check(m[2] is None and m[3] == [], "user.get_many empty", "user.get_many [[]]", [], m)
    m = c.call("user.get_many", [[uid] * 1000])
    check(m[2] is None and isinstance(m[3], list) and len(m[3]) == 1000,
          "user.get_many 1000 ids", "user.get_many [[1000 ids]]", "1000 results",
          short(m, 120))
    rpc_err(c.call("user.get_many", [[uid] * 1001]), "invalid_request",
            "user.get_many 1001 ids", "user.get_many [[1001 ids]]")
    rpc_err(c.call("user.get_many", [uid]), "invalid_request",
            "user.get_many with a string instead of an array", "user.get_many [id]")

    # update
    m = c.call("user.update", [uid, {"name": "Renamed", "status": "inactive"}])
    if rpc_ok(m, "user.update", "user.update"):
        check(m[3]["name"] == "Renamed" and m[3]["status"] == "inactive" and
              m[3]["created_at"] == u["created_at"],
              "user.update result", "user.update [id, {name,status}]", "Renamed/inactive", m)
    rpc_err(c.call("user.update", [uid, {"role": "god"}]), "invalid_request",
            "user.update bad role", "user.update", field="role")
    rpc_err(c.call("user.update", ["usr_nosuchuser0000", {"name": "x"}]), "not_found",
            "user.update missing", "user.update [missing]")
    # password
    m = c.call("user.set_password", [uid, "rpc-pass-2"])
    check(m[2] is None and m[3] is True, "user.set_password -> true",
          "user.set_password [id, pw]", True, m)
    rpc_err(c.call("user.set_password", [uid, "short"]), "invalid_request",
            "user.set_password too short", "user.set_password [id, 'short']",
            field="password")
    m = c.call("user.verify_password", [uid, "rpc-pass-2"])
    check(m[2] is None and m[3] is True, "user.verify_password right -> true",
          "user.verify_password", True, m)
    m = c.call("user.verify_password", [uid, "rpc-pass-1"])
    check(m[2] is None and m[3] is False, "user.verify_password old -> false",
          "user.verify_password", False, m)
    rpc_err(c.call("user.verify_password", ["usr_nosuchuser0000", "abcdefgh"]),
            "not_found", "user.verify_password unknown user", "user.verify_password")
    m = c.call("user.get", [uid])
    check(m[3] and m[3]["last_sign_in_at"] and RFC3339.match(m[3]["last_sign_in_at"]),
          "RPC verify sets last_sign_in_at", "user.get after verify", "timestamp", m)
    # suspension
    m = c.call("user.set_suspended", [uid, True])
    check(m[2] is None and isinstance(m[3], dict) and m[3]["status"] == "suspended",
          "user.set_suspended true", "user.set_suspended [id, true]", "suspended", m)
    m = c.call("user.set_suspended", [uid, False])
    check(m[2] is None and isinstance(m[3], dict) and m[3]["status"] == "active",
          "user.set_suspended false", "user.set_suspended [id, false]", "active", m)
    rpc_err(c.call("user.set_suspended", [uid, "yes"]), "invalid_request",
            "user.set_suspended non-bool", "user.set_suspended [id, 'yes']")
    # identities
    m = c.call("user.link_identity", [uid, "github", {"user_id": "9", "details": {"a": 1}}])
    check(m[2] is None and isinstance(m[3], dict) and
          m[3]["identities"] == {"github": {"user_id": "9", "details": {"a": 1}}},
          "user.link_identity", "user.link_identity [id, github, {...}]",
          "identities.github", m)
    m = c.call("user.unlink_identity", [uid, "github"])
    check(m[2] is None and isinstance(m[3], dict) and m[3]["identities"] == {},
          "user.unlink_identity", "user.unlink_identity [id, github]", "{}", m)
    rpc_err(c.call("user.unlink_identity", [uid, "github"]), "not_found",
            "user.unlink_identity not linked", "user.unlink_identity [id, github]")
    # list
    m = c.call("user.list", [{}])
    if rpc_ok(m, "user.list", "user.list [{}]"):
        check(isinstance(m[3], dict) and set(m[3]) >= {"data", "pagination"} and
              isinstance(m[3]["data"], list) and
              set(m[3]["pagination"]) == {"page", "limit", "total", "pages"},
              "user.list result shape", "user.list [{}]", "{data, pagination}", short(m, 200))
    m = c.call("user.list", [{"role": "viewer", "limit": 5, "page": 1, "order": "asc",
                              "email": fields["email"].lower()}])
    check(m[2] is None and isinstance(m[3], dict) and len(m[3].get("data", [])) == 1 and
          m[3]["data"][0]["id"] == uid and m[3]["pagination"]["limit"] == 5,
          "user.list with query (int limit)", "user.list [{role,limit:5,page:1,order,email}]",
          "1 user", short(m, 200))
    m = c.call("user.list", [{"search": "RPC.USER%d@" % os.getpid(), "limit": "5"}])
    check(m[2] is None and isinstance(m[3], dict) and
          [x["id"] for x in m[3].get("data", [])] == [uid],
          "user.list search (string limit)", "user.list [{search,limit:'5'}]", uid,
          short(m, 200))
    rpc_err(c.call("user.list", [{"limit": 0}]), "invalid_request", "user.list limit 0",
            "user.list [{limit:0}]")
    rpc_err(c.call("user.list", [{"limit": 101}]), "invalid_request",
            "user.list limit 101", "user.list [{limit:101}]")
    rpc_err(c.call("user.list", [{"bogus": 1}]), "invalid_request",
            "user.list unknown key", "user.list [{bogus:1}]")
    # logs
    m = c.call("log.list", [{"user_id": uid, "page": 1, "limit": 50}])
    if rpc_ok(m, "log.list", "log.list"):
        r = m[3]
        ev = [e.get("event") for e in r.get("data", [])] if isinstance(r, dict) else None
        want = ["user.identity_removed", "user.identity_linked", "user.unsuspended",
                "user.suspended", "user.password_verified", "user.password_verified",
                "user.password_changed", "user.updated", "user.created"]
        check(ev == want, "log.list events newest first", "log.list [{user_id}]", want, ev)
        check(isinstance(r, dict) and isinstance(r.get("pagination"), dict) and
              r["pagination"].get("total") == len(want),
              "log.list pagination", "log.list", "total %d" % len(want), short(r, 200))
        if isinstance(r, dict) and r.get("data"):
            e = r["data"][0]
            check(set(e) == {"id", "user_id", "event", "created_at", "details"},
                  "log.list entry keys", "log.list", "id,user_id,event,created_at,details", e)
            hl = call(S, "GET", q("/v1/logs", user_id=uid, limit=50))
            check(hl.data == r["data"], "RPC log entries equal HTTP ones", "log.list vs GET /v1/logs",
                  hl.data, r["data"])
    m = c.call("log.list", [{"user_id": uid, "page": "2", "limit": "2"}])
    check(m[2] is None and isinstance(m[3], dict) and len(m[3].get("data", [])) == 2,
          "log.list string page/limit", "log.list [{page:'2',limit:'2'}]", "2 entries",
          short(m, 200))
    rpc_err(c.call("log.list", [{"user_id": uid, "limit": 0}]), "invalid_request",
            "log.list limit 0", "log.list [{limit:0}]")
    # stats / snapshot
    m = c.call("server.stats", [])
    check(m[2] is None and isinstance(m[3], dict) and m[3] and
          all(isinstance(v, (int, float, bool)) for v in m[3].values()),
          "server.stats map of counters", "server.stats []", "map", short(m, 200))
    m = c.call("server.snapshot", [])
    if persist:
        check(m[2] is None and m[3] is True, "server.snapshot -> true",
              "server.snapshot []", True, m)
    else:
        check(m[2] is not None and m[2].get("code") == "unavailable",
              "server.snapshot with --no-persist is unavailable (README)",
              "server.snapshot []", "unavailable", m)
    # delete
    m = c.call("user.delete", [uid])
    check(m == [1, c.msgid, None, True], "user.delete -> true", "user.delete [id]",
          True, m)
    rpc_err(c.call("user.get", [uid]), "not_found", "user.get after delete", "user.get")
    rpc_err(c.call("user.delete", [uid]), "not_found", "user.delete twice", "user.delete")
    m = c.call("log.list", [{"user_id": uid}])
    check(m[2] is None and isinstance(m[3], dict) and m[3].get("data") and
          m[3]["data"][0]["event"] == "user.deleted",
          "log.list after delete", "log.list", "user.deleted first", short(m, 200))
    # unknown method, bad params
    rpc_err(c.call("user.frobnicate", []), "invalid_request", "unknown method",
            "user.frobnicate []")
    rpc_err(c.call("user.get", []), "invalid_request", "user.get without id", "user.get []")
    rpc_err(c.call("user.get", [123]), "invalid_request", "user.get with int id",
            "user.get [123]")

    # msgid edge values echoed
    for mid in (0, 4294967295):
        c.send("ping", [], msgid=mid)
        m = c.recv()
        check(m == [1, mid, None, "pong"], "msgid %d echoed" % mid, "ping", mid, m)

    # pipelining: many requests in one write, including slow password work
    mk = c.call("user.create", [{"name": "pipe", "email": email(), "password": "pipe-pass-1"}])
    pid = mk[3]["id"] if mk[2] is None else "usr_x"
    buf = b""
    expect = {}
    base = 5000
    for k in range(300):
        mid = base + k
        if k % 50 == 7:
            buf += msgpack.packb([0, mid, "user.verify_password", [pid, "pipe-pass-1"]])
            expect[mid] = ("verify", True)
        elif k % 3 == 0:
            buf += msgpack.packb([0, mid, "ping", []])
            expect[mid] = ("ping", "pong")
        elif k % 3 == 1:
            buf += msgpack.packb([0, mid, "user.get", [pid]])
            expect[mid] = ("get", pid)
        else:
            buf += msgpack.packb([0, mid, "user.get", ["usr_missing%05d" % k]])
            expect[mid] = ("missing", None)
    c.sendraw(buf)
    got = {}
    bad = []
    try:
        for _ in range(300):
            m = c.recv(timeout=15)
            got[m[1]] = m
    except Exception as ex:
        bad.append("recv: %r" % ex)
    for mid, (kind, val) in expect.items():
        m = got.get(mid)
        ok = m is not None and m[0] == 1
        if ok and kind == "ping":
            ok = m[2] is None and m[3] == "pong"
        elif ok and kind == "verify":
            ok = m[2] is None and m[3] is True
        elif ok and kind == "get":
            ok = m[2] is None and isinstance(m[3], dict) and m[3]["id"] == val
        elif ok and kind == "missing":
            ok = isinstance(m[2], dict) and m[2].get("code") == "not_found"
        if not ok:
            bad.append((mid, kind, m))
    check(not bad and len(got) == 300, "pipelined 300 requests, each answered by msgid",
          "300 pipelined requests in one write", "300 matching replies",
          (len(got), bad[:3]))

    # notifications: no reply, but they run
    nem = email("notif")
    c.sendraw(msgpack.packb([2, "user.create", [{"name": "notif", "email": nem}]]) +
              msgpack.packb([2, "ping", []]))
    m = c.call("ping", [])
    check(m == [1, c.msgid, None, "pong"], "notification gets no reply",
          "[2,user.create,..] [2,ping,[]] then [0,id,ping,[]]",
          "only the ping reply", m)
    m = c.call("user.get_by_email", [nem])
    check(m[2] is None and m[3] and m[3]["name"] == "notif",
          "notification is executed", "[2, user.create, ...]", "user exists", m)

    # old-spec client: strings as raw (use_bin_type=False)
    c2 = Rpc(S, auth=False, use_bin_type=False)
    m = c2.call("auth", [KEY])
    check(m[2] is None and m[3] is True, "old msgpack str encoding (raw) works",
          "auth with use_bin_type=False", True, m)
    m = c2.call("user.get_by_email", [nem])
    check(m[2] is None and m[3] and m[3]["name"] == "notif",
          "old msgpack str encoding: user.get_by_email", "use_bin_type=False", "user", m)
    c2.close()

    # malformed messages that keep framing: answered where a msgid is readable
    for raw, mid, desc in ((msgpack.packb([0, 77, "ping"]), 77, "3-element request"),
                           (msgpack.packb([0, 78, 123, []]), 78, "method not a string"),
                           (msgpack.packb([0, 79, "ping", "notarray"]), 79, "params not an array"),
                           (msgpack.packb([0, 81, "ping", [], "extra"]), 81, "5-element request")):
        c.sendraw(raw)
        c.send("ping", [], msgid=90000 + mid)
        first = c.recv(timeout=5)
        if first[1] == mid:
            rpc_err(first, "invalid_request", "malformed message (%s) -> invalid_request" % desc,
                    repr(msgpack.unpackb(raw)))
            second = c.recv(timeout=5)
        else:
            check(False, "malformed message (%s) -> invalid_request" % desc,
                  repr(msgpack.unpackb(raw)), "[1, %d, {code: invalid_request}, nil]" % mid, first)
            second = first
        check(second == [1, 90000 + mid, None, "pong"],
              "connection usable after malformed message (%s)" % desc, "ping",
              "pong", second)
    # an array with an unknown type: where the msgid sits is undefined; an
    # invalid_request reply or silence are both acceptable, the connection stays
    c.sendraw(msgpack.packb([7, 80, "ping", []]))
    c.send("ping", [], msgid=90080)
    m = c.recv(timeout=5)
    if m[1] == 80:
        rpc_err(m, "invalid_request", "unknown message type 7", "[7, 80, ping, []]")
        m = c.recv(timeout=5)
    else:
        note("[7, 80, \"ping\", []] (unknown message type) gets no reply at all")
    check(m == [1, 90080, None, "pong"], "connection usable after unknown message type",
          "[7,80,ping,[]] then ping", "pong", m)
    # non-array messages: no msgid can be read; the server must not crash
    for raw, desc in ((msgpack.packb({"a": 1}), "map"), (msgpack.packb(42), "int"),
                      (msgpack.packb("ping"), "string"), (msgpack.packb([]), "empty array"),
                      (msgpack.packb(["x", 1, "ping", []]), "type not int")):
        d = Rpc(S)
        d.sendraw(raw)
        d.send("ping", [], msgid=4242)
        try:
            m = d.recv(timeout=3)
            if m[1] != 4242:
                check(isinstance(m[2], dict) and m[2].get("code") == "invalid_request",
                      "non-array message (%s) reply is invalid_request" % desc, desc,
                      "invalid_request or no reply", m)
                m = d.recv(timeout=3)
            check(m == [1, 4242, None, "pong"], "after non-array message (%s)" % desc,
                  desc + " then ping", "pong or close", m)
        except (EOFError, ConnectionResetError):
            pass  # closing is allowed
        except socket.timeout:
            check(False, "after non-array message (%s)" % desc, desc + " then ping",
                  "pong or close", "no reply and connection open")
        d.close()
    # unframeable input: 0xc1
    d = Rpc(S)
    d.sendraw(b"\xc1\x93\x00\x01")
    check(d.closed_within(3), "byte 0xc1 -> connection closed", "send 0xc1",
          "connection closed", "still open after 3 s")
    d.close()
    # over-limit frame, msgid visible
    d = Rpc(S)
    huge = msgpack.packb([0, 31337, "user.create",
                          [{"name": "x", "email": email(), "custom_data": {"k": "a" * (1024 * 1024 + 100)}}]])
    try:
        d.sendraw(huge)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        m = d.recv(timeout=5)
        rpc_err(m, "invalid_request", "frame over 1 MiB -> invalid_request with its msgid",
                "[0,31337,user.create,[1.1 MB]]")
        check(m[1] == 31337, "over-limit reply carries the msgid", "frame over limit",
              31337, m[1])
        check(d.closed_within(3), "frame over 1 MiB -> connection closed", "frame over limit",
              "closed", "still open")
    except Exception as ex:
        check(False, "frame over 1 MiB -> invalid_request", "[0,31337,...1.1 MB]",
              "invalid_request reply then close", repr(ex))
    d.close()
    # server still alive
    e = Rpc(S)
    m = e.call("ping", [])
    check(m[3] == "pong", "server alive after malformed input", "ping", "pong", m)
    e.close()
    c.close()


def t_log_retention(S):
    uid = create(S, name="many").data["id"]
    c = Rpc(S)
    buf = b"".join(msgpack.packb([0, 10000 + k, "user.update", [uid, {"name": "n%d" % k}]])
                   for k in range(110))
    c.sendraw(buf)
    for _ in range(110):
        c.recv()
    c.close()
    r = call(S, "GET", q("/v1/logs", user_id=uid, limit=100))
    total = int(r.h("total-number") or 0)
    check(r.status == 200 and r.data and len(r.data) == 100 and total >= 100,
          "at least the last 100 events kept", r.req, ">= 100 events", (total, r))
    if r.data:
        check(r.data[0]["event"] == "user.updated", "newest event first after 110 updates",
              r.req, "user.updated", r.data[0])


# ==========================================================================
# durability


def snapshot_state(srv, ids):
    users, logs = {}, {}
    for i in ids:
        g = call(srv, "GET", "/v1/users/" + i)
        users[i] = (g.status, g.data)
        lg = call(srv, "GET", q("/v1/logs", user_id=i, limit=100))
        logs[i] = (lg.status, lg.data)
    return users, logs


def t_durability(tmp):
    ddir = os.path.join(tmp, "data")
    S = Server(ddir)
    ids = []
    for k in range(5):
        r = create(S, name="Durable %d 中文" % k, email="durable%d@Example.com" % k,
                   custom_data={"k": k}, role=["admin", "user", "viewer"][k % 3])
        ids.append(r.data["id"])
    secret = "Cleartext-Secret-%d" % os.getpid()
    call(S, "PATCH", "/v1/users/%s/password" % ids[0], {"password": secret})
    call(S, "POST", "/v1/users/%s/password/verify" % ids[0], {"password": secret})
    c = Rpc(S)
    m = c.call("server.snapshot", [])
    check(m[2] is None and m[3] is True, "server.snapshot on a data dir", "server.snapshot",
          True, m)
    c.close()
    # writes after the snapshot: replayed from the log
    call(S, "PATCH", "/v1/users/" + ids[1], {"name": "After Snapshot", "status": "inactive"})
    call(S, "PUT", "/v1/users/%s/identities/github" % ids[2], {"user_id": "7", "details": {"x": 1}})
    call(S, "PATCH", "/v1/users/%s/is-suspended" % ids[3], {"is_suspended": True})
    call(S, "DELETE", "/v1/users/" + ids[4])
    r = create(S, id="usr_imported-after-snap", name="imp", email="imp@example.com",
               password="another-pass-1")
    ids.append("usr_imported-after-snap")

    # a second server on the same data dir refuses to start
    S2 = Server(ddir, expect_ready=False)
    try:
        rc = S2.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rc = None
    out = S2.proc.stdout.read() if rc is not None else ""
    if rc is None:
        S2.kill()
    check(rc not in (None, 0), "second server on the same data dir exits non-zero",
          " ".join(S2.args[1:]), "exit != 0", "rc=%r" % rc)
    check(re.search(r"in use|lock|already", out, re.I) is not None,
          "second server prints a clear message", "second server", "'in use'/'lock'", out)
    check(call(S, "GET", "/healthz", key=None).status == 200,
          "first server unaffected by second start", "GET /healthz", 200, "")

    before = snapshot_state(S, ids)
    st = [before[0][i][0] for i in ids]
    check(st == [200, 200, 200, 200, 404, 200], "state before restart as written",
          "GET each user", [200, 200, 200, 200, 404, 200], st)
    check(all(before[1][i][0] == 200 and before[1][i][1] for i in ids),
          "logs before restart non-empty", "GET /v1/logs each", "200 with entries",
          [before[1][i][0] for i in ids])
    rc = S.term()
    check(rc == 0, "SIGTERM exits 0", "kill -TERM", 0, rc)

    # no clear password on disk
    found = []
    for root, _, files in os.walk(ddir):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                b = fh.read()
            for pw in (secret, "another-pass-1"):
                if pw.encode() in b:
                    found.append((f, pw))
    check(not found, "no clear password written to disk", "grep data dir", "none", found)

    S = Server(ddir)
    after = snapshot_state(S, ids)
    for i in ids:
        check(after[0][i] == before[0][i], "user survives restart (%s)" % i,
              "GET /v1/users/%s after restart" % i, before[0][i], after[0][i])
        check(after[1][i] == before[1][i], "logs survive restart (%s)" % i,
              "GET /v1/logs?user_id=%s after restart" % i,
              short(before[1][i], 150), short(after[1][i], 150))
    v = call(S, "POST", "/v1/users/%s/password/verify" % ids[0], {"password": secret})
    check(v.status == 200 and v.data == {"valid": True}, "password valid after restart",
          v.req, '{"valid":true}', v)
    v = call(S, "POST", "/v1/users/usr_imported-after-snap/password/verify",
             {"password": "another-pass-1"})
    check(v.status == 200 and v.data == {"valid": True},
          "password set after snapshot valid after restart", v.req, '{"valid":true}', v)
    lr = call(S, "GET", "/v1/users?email=DURABLE0@example.com")
    check(lr.status == 200 and lr.data and lr.data[0]["id"] == ids[0],
          "email index rebuilt after restart", lr.req, ids[0], lr)
    expect_err(create(S, email="durable1@EXAMPLE.com"), 409, "duplicate_email",
               what="email uniqueness after restart")
    # kill -9 keeps acknowledged writes
    r = create(S, name="Acked Before Kill", email="acked@example.com")
    kid = r.data["id"] if r.status == 201 else None
    p = call(S, "PATCH", "/v1/users/" + ids[1], {"name": "Patched Before Kill"})
    check(r.status == 201 and p.status == 200, "writes acknowledged before kill -9",
          "POST + PATCH", "201, 200", (r.status, p.status))
    S.proc.send_signal(signal.SIGKILL)
    S.proc.wait(timeout=5)
    # restart without --api-key: key file is generated (SPEC §4)
    S3 = Server(ddir, key=None)
    keyfile = os.path.join(ddir, "api-key")
    check(os.path.exists(keyfile) and (os.stat(keyfile).st_mode & 0o777) == 0o600,
          "generated api-key file with mode 0600", "start without --api-key",
          "DATA_DIR/api-key 0600",
          oct(os.stat(keyfile).st_mode & 0o777) if os.path.exists(keyfile) else "missing")
    check(keyfile in S3.output() or "api-key" in S3.output(),
          "generated key path printed", "start without --api-key", keyfile, S3.output())
    gkey = open(keyfile).read().strip() if os.path.exists(keyfile) else "x"
    g = call(S3, "GET", "/v1/users/" + (kid or "usr_x"), key=gkey)
    check(g.status == 200 and g.data and g.data["name"] == "Acked Before Kill",
          "acknowledged create survives kill -9", g.req, "200 user", g)
    g = call(S3, "GET", "/v1/users/" + ids[1], key=gkey)
    check(g.status == 200 and g.data and g.data["name"] == "Patched Before Kill",
          "acknowledged update survives kill -9", g.req, "Patched Before Kill", g)
    check(call(S3, "GET", "/v1/users", key=KEY).status == 401,
          "old key not accepted when not configured", "GET /v1/users with old key", 401, "")
    rc = S3.term()
    check(rc == 0, "SIGTERM exits 0 (second run)", "kill -TERM", 0, rc)


def find_log_file(ddir):
    logs = sorted(f for f in os.listdir(ddir)
                  if "log" in f.lower() and os.path.isfile(os.path.join(ddir, f))
                  and f.lower() not in ("lock",))
    return os.path.join(ddir, logs[-1]) if logs else None


def t_corruption(tmp):
    """SPEC section 5: torn tail is cut with a warning; a bad checksum elsewhere
    stops the start naming file and offset; userdb-check reports and repairs."""
    check_bin = os.path.join(os.path.dirname(os.path.abspath(SERVER)), "userdb-check")
    base = os.path.join(tmp, "corrupt-base")
    S = Server(base)
    ids = []
    for k in range(6):
        r = create(S, name="CorruptMe-%d-marker" % k, email="cm%d@example.com" % k)
        ids.append(r.data["id"])
    S.term()
    logf = find_log_file(base)
    if not logf:
        note("no log file found in the data dir: corruption checks skipped")
        return
    have_check = os.access(check_bin, os.X_OK)
    if have_check:
        p = subprocess.run([check_bin, base], capture_output=True, text=True, timeout=10)
        check(p.returncode == 0, "userdb-check on a sound dir exits 0",
              "userdb-check DIR", 0, (p.returncode, p.stdout + p.stderr))
    else:
        note("userdb-check not found next to the server: its checks skipped")

    # torn tail: a record cut mid-write at the end
    torn = os.path.join(tmp, "corrupt-torn")
    shutil.copytree(base, torn)
    tl = os.path.join(torn, os.path.basename(logf))
    data = open(logf, "rb").read()
    first_len = data.find(b"CorruptMe-1-marker")
    with open(tl, "ab") as fh:
        fh.write(data[:max(12, min(40, first_len // 2))])  # a header and part of a record
    try:
        T = Server(torn)
        for i in ids:
            g = call(T, "GET", "/v1/users/" + i)
            check(g.status == 200, "user kept after a torn tail (%s)" % i, g.req, 200, g)
        check(re.search(r"torn|truncat|cut|warn", T.output(), re.I) is not None,
              "torn tail start prints a warning", "start on torn log", "warning", T.output())
        T.term()
    except RuntimeError as ex:
        check(False, "server starts after a torn tail", "start on a log with a torn tail",
              "ready", str(ex))

    # bad checksum in the middle
    bad = os.path.join(tmp, "corrupt-mid")
    shutil.copytree(base, bad)
    bl = os.path.join(bad, os.path.basename(logf))
    pos = data.find(b"CorruptMe-1-marker")
    if pos < 0:
        note("user names not found verbatim in the log: mid-log corruption check skipped")
        return
    mut = bytearray(data)
    mut[pos + 3] ^= 0x20
    open(bl, "wb").write(bytes(mut))
    B = Server(bad, expect_ready=False)
    try:
        rc = B.proc.wait(timeout=5)
        out = B.proc.stdout.read()
    except subprocess.TimeoutExpired:
        rc, out = None, "still running"
        B.kill()
    check(rc not in (None, 0), "bad checksum mid-log stops the start",
          "start with one flipped byte in record 2 of 6", "exit != 0", (rc, out))
    check(os.path.basename(logf) in out and re.search(r"\d", out.replace(os.path.basename(logf), "")),
          "start failure names file and offset", "start with a bad record",
          "file name and offset", out)
    if have_check:
        p = subprocess.run([check_bin, bad], capture_output=True, text=True, timeout=10)
        check(p.returncode == 1, "userdb-check on a damaged dir exits 1",
              "userdb-check DIR", 1, (p.returncode, p.stdout + p.stderr))
        p = subprocess.run([check_bin, "--repair", bad], capture_output=True, text=True,
                           timeout=10)
        check(p.returncode == 0 and re.search(r"lost|cut|drop|remov|truncat", p.stdout + p.stderr,
                                              re.I),
              "userdb-check --repair cuts and says what was lost", "userdb-check --repair DIR",
              "exit 0 and a report", (p.returncode, p.stdout + p.stderr))
        try:
            R = Server(bad)
            g = call(R, "GET", "/v1/users/" + ids[0])
            check(g.status == 200, "repaired dir starts and keeps records before the cut",
                  g.req, 200, g)
            R.term()
        except RuntimeError as ex:
            check(False, "server starts after --repair", "start on repaired dir", "ready",
                  str(ex))


def t_unix_socket(tmp):
    path = os.path.join(tmp, "rpc.sock")
    S = Server(None, extra=["--socket", path])
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        s.sendall(msgpack.packb([0, 1, "auth", [KEY]]) + msgpack.packb([0, 2, "ping", []]))
        unp = msgpack.Unpacker(raw=False)
        got = []
        while len(got) < 2:
            d = s.recv(4096)
            if not d:
                break
            unp.feed(d)
            got += list(unp)
        check(got == [[1, 1, None, True], [1, 2, None, "pong"]], "--socket serves RPC",
              "auth+ping over the Unix socket", "[true, pong]", got)
        s.close()
    except OSError as ex:
        check(False, "--socket serves RPC", "connect " + path, "connection", repr(ex))
    S.term()


def t_env_config(tmp):
    # flags settable as USERDB_<FLAG>
    S = Server(None, key=None, use_args=False,
               env={"USERDB_PORT": "0", "USERDB_HTTP_PORT": "0", "USERDB_NO_PERSIST": "1",
                    "USERDB_API_KEY": "env-key-1", "USERDB_ARGON2_MEM": "8192"})
    r = call(S, "GET", "/v1/users", key="env-key-1")
    check(r.status == 200, "USERDB_* environment configures the server",
          "USERDB_API_KEY=env-key-1 ... GET /v1/users", 200, r)
    S.term()


# ==========================================================================


def main():
    tmp = tempfile.mkdtemp(prefix="userdb-spec-")
    try:
        S = Server(os.path.join(tmp, "main"))
        L = Server(None)
        sections = [
            ("http basics", lambda: t_http_basics(S)),
            ("metrics", lambda: t_metrics(S)),
            ("create and fields", lambda: t_create_and_fields(S)),
            ("update/delete/etag", lambda: t_update_delete_etag(S)),
            ("password/suspend/identities/logs", lambda: t_password_suspend_identities_logs(S)),
            ("list", lambda: t_list(L)),
            ("rpc", lambda: t_rpc(S, True)),
            ("rpc (no-persist)", lambda: t_rpc_nopersist(L)),
            ("log retention", lambda: t_log_retention(L)),
            ("durability", lambda: t_durability(tmp)),
            ("corruption", lambda: t_corruption(tmp)),
            ("unix socket", lambda: t_unix_socket(tmp)),
            ("env config", lambda: t_env_config(tmp)),
        ]
        for name, fn in sections:
            t = time.time()
            try:
                fn()
            except Exception:
                import traceback
                check(False, "section %s raised" % name, name, "no exception",
                      traceback.format_exc())
            if os.environ.get("SPEC_VERBOSE"):
                print("  %-40s %.2fs" % (name, time.time() - t))
        for srv in (S, L):
            if srv.proc.poll() is None:
                rc = srv.term()
                check(rc == 0, "SIGTERM exits 0", " ".join(srv.args[1:4]), 0, rc)
            elif srv.proc.returncode != 0:
                check(False, "server stayed up", " ".join(srv.args), "running",
                      "exited %r: %s" % (srv.proc.returncode, srv.output()[-500:]))
    finally:
        for srv in SERVERS:
            srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    for n in sorted(set(NOTES)):
        print("note: " + n)
    print("%d checks, %d failed, %.1fs" % (NCHECK, len(FAILS), time.time() - T0))
    sys.exit(1 if FAILS else 0)


def t_rpc_nopersist(L):
    c = Rpc(L)
    m = c.call("server.snapshot", [])
    check(isinstance(m[2], dict) and m[2].get("code") == "unavailable",
          "server.snapshot with --no-persist -> unavailable (README)", "server.snapshot []",
          "unavailable", m)
    c.close()


if __name__ == "__main__":
    main()

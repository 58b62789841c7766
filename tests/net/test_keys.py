#!/usr/bin/python3
"""Scoped keys (SPEC section 11) against the real userdb-server, over both
protocols, through the suite's client (udclient.py: python3-msgpack and
http.client):

- what each scope may do: every RPC method and every HTTP route under an
  admin, a read and a verify key (a table; 403/forbidden naming the scope);
- --api-key KEY:SCOPE, --api-key-file (mode and parse checks, messages that
  name the line and never the key);
- actors: details.actor of every event is the key's name or key-N;
- /metrics counts requests per key name, and never shows a key;
- SIGHUP rotation under load: no connection dropped, a removed key fails
  from its next request on, a new key works at once, a bad file keeps the
  old set and says why;
- a non-loopback --bind without TLS is refused unless --allow-plaintext;
- every HTTP response conforms to the served OpenAPI document.

Prints "N passed, M failed" and exits non-zero on any failure."""
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import udclient  # noqa: E402

ADMIN = "admin-flag-key-0123456789"
READ = "read-flag-key-0123456789"
FILE_VERIFY = "verify-file-key-0123456789"
FILE_CONSOLE = "console-file-key-0123456789"
FILE_READ = "unnamed-read-file-key-012345"
SECRETS = [ADMIN, READ, FILE_VERIFY, FILE_CONSOLE, FILE_READ]
FAST = udclient.FAST_HASH + ["--workers", "1"]


def write_keyfile(path, text, mode=0o600):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def Server(*extra, **kw):
    return udclient.Server(*FAST, *extra, **kw)


Rpc = udclient.Rpc


SPEC = [None]  # the served OpenAPI document, loaded on first use


def http_req(addr, method, path, key=None, body=None):
    """Every response, 403s and 401s too, is checked against the OpenAPI
    document (openapi_check.py via udclient): a mismatch fails the test."""
    r = udclient.request(addr, method, path, key, body, spec=SPEC)
    return r.status, r.json, r.body


T = udclient.Tests()
test = T.test


tmp = tempfile.mkdtemp(prefix="userdb-keyfile-")
KEYFILE = os.path.join(tmp, "keys")
write_keyfile(KEYFILE, "# services\n\n%s verify svc-verify\n"
              "   # the console\n%s admin console\n%s read\n" %
              (FILE_VERIFY, FILE_CONSOLE, FILE_READ))
srv = Server("--api-key", ADMIN, "--api-key", READ + ":read",
             "--api-key-file", KEYFILE)
admin = Rpc(srv.rpc, ADMIN)
victim = admin.ok("user.create", {"name": "Victim", "email": "v@x.com",
                                  "password": "correct horse"})
VID = victim["id"]

# ---- the scope table ------------------------------------------------------
# (method, params, scope needed); params made fresh for each key so that an
# allowed write has something to act on.
SCOPES = {"admin": ADMIN, "read": READ, "verify": FILE_VERIFY}


def rpc_table(n):
    uid = VID
    return [
        ("user.get", [uid], "read"),
        ("user.get_by_email", ["v@x.com"], "read"),
        ("user.get_many", [[uid]], "read"),
        ("user.list", [{}], "read"),
        ("log.list", [{"user_id": uid}], "read"),
        ("server.stats", [], "read"),
        ("user.verify_password", [uid, "correct horse"], "verify"),
        ("user.create", [{"name": "N", "email": "t%s@x.com" % n}], "admin"),
        ("user.update", [uid, {"name": "Victim"}], "admin"),
        ("user.set_password", [uid, "correct horse"], "admin"),
        ("user.set_suspended", [uid, False], "admin"),
        ("user.link_identity", [uid, "gh", {"user_id": "1", "details": {}}],
         "admin"),
        ("user.unlink_identity", [uid, "gh"], "admin"),
        ("server.snapshot", [], "admin"),
        ("user.delete", ["usr_doesnotexist" + n], "admin"),
        ("changes.watch", [None], "read"),
        ("changes.unwatch", [], "read"),
    ]


def allows(have, need):
    return have == "admin" or have == need or need == "read"


@test
def every_rpc_method_under_each_scope():
    for scope, key in SCOPES.items():
        c = Rpc(srv.rpc, key)
        for method, params, need in rpc_table(scope):
            err, _ = c.call(method, *params)
            if allows(scope, need):
                assert not err or err["code"] != "forbidden", \
                    (scope, method, err)
            else:
                assert err and err["code"] == "forbidden", (scope, method,
                                                            err)
                assert "scope " + need in err["message"], err
        c.close()
    # nothing a lesser key asked for happened
    assert Rpc(srv.rpc, ADMIN).ok("user.get_by_email", "tadmin@x.com")
    for scope in ("read", "verify"):
        err, _ = Rpc(srv.rpc, ADMIN).call("user.get_by_email",
                                          "t%s@x.com" % scope)
        assert err["code"] == "not_found", err


def http_table(n):
    u = "/v1/users/" + VID
    return [
        ("GET", "/v1/users", None, "read"),
        ("GET", u, None, "read"),
        ("GET", "/v1/logs?user_id=" + VID, None, "read"),
        ("GET", "/metrics", None, "read"),
        ("POST", u + "/password/verify", {"password": "correct horse"},
         "verify"),
        ("POST", "/v1/users", {"name": "H", "email": "h%s@x.com" % n},
         "admin"),
        ("PATCH", u, {"name": "Victim"}, "admin"),
        ("PATCH", u + "/password", {"password": "correct horse"}, "admin"),
        ("PATCH", u + "/is-suspended", {"is_suspended": False}, "admin"),
        ("PUT", u + "/identities/gh", {"user_id": "1", "details": {}},
         "admin"),
        ("DELETE", u + "/identities/gh", None, "admin"),
        ("DELETE", "/v1/users/usr_nobody" + n, None, "admin"),
    ]


@test
def every_http_route_under_each_scope():
    for scope, key in SCOPES.items():
        for method, path, body, need in http_table(scope):
            status, doc, raw = http_req(srv.http, method, path, key, body)
            if allows(scope, need):
                assert status != 403, (scope, method, path, raw)
            else:
                assert status == 403, (scope, method, path, status, raw)
                assert doc["error"]["code"] == "forbidden", doc
                assert "scope " + need in doc["error"]["message"], doc
    status, _, _ = http_req(srv.http, "GET", "/healthz")
    assert status == 200
    for key in SCOPES.values():  # the change stream: a read
        s = socket.create_connection(srv.http, timeout=10)
        s.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: "
                   "Bearer %s\r\n\r\n" % key).encode())
        head = s.recv(4096).decode("latin-1")
        s.close()
        assert head.startswith("HTTP/1.1 200"), head
    for scope in ("read", "verify"):
        status, _, _ = http_req(srv.http, "GET", "/v1/users?email=h%s@x.com"
                                % scope, ADMIN)
        _, doc, _ = http_req(srv.http, "GET", "/v1/users?email=h%s@x.com" %
                             scope, ADMIN)
        assert doc["pagination"]["total"] == 0, doc


@test
def wrong_key_is_401_not_403():
    status, doc, _ = http_req(srv.http, "GET", "/v1/users", "nope")
    assert status == 401, status
    c = Rpc(srv.rpc)
    err, _ = c.call("auth", "nope")
    assert err["code"] == "unauthorized"
    err, _ = c.call("user.get", VID)
    assert err["code"] == "unauthorized"


def events(uid):
    return Rpc(srv.rpc, ADMIN).ok("log.list", {"user_id": uid,
                                               "limit": 100})["data"]


@test
def activity_events_name_their_key():
    con = Rpc(srv.rpc, FILE_CONSOLE)
    u = con.ok("user.create", {"name": "Act", "email": "act@x.com"})
    ev = events(u["id"])
    assert ev[0]["event"] == "user.created", ev
    assert ev[0]["details"]["actor"] == "console", ev
    Rpc(srv.rpc, ADMIN).ok("user.update", u["id"], {"name": "Act2"})
    Rpc(srv.rpc, ADMIN).ok("user.set_password", u["id"], "a long password")
    ok = Rpc(srv.rpc, FILE_VERIFY).ok("user.verify_password", u["id"],
                                      "a long password")
    assert ok is True
    status, _, raw = http_req(srv.http, "PATCH", "/v1/users/%s/is-suspended"
                              % u["id"], FILE_CONSOLE, {"is_suspended": True})
    assert status == 200, raw
    ev = events(u["id"])
    got = [(e["event"], e["details"].get("actor")) for e in ev]
    assert got == [("user.suspended", "console"),
                   ("user.password_verified", "svc-verify"),
                   ("user.password_changed", "key-1"),
                   ("user.updated", "key-1"),
                   ("user.created", "console")], got
    # the unnamed file key is key-5: two flags, then the file's third key
    status, doc, raw = http_req(srv.http, "GET", "/metrics", FILE_READ)
    assert status == 200, raw
    text = raw.decode()
    assert 'userdb_key_requests_total{key="key-5"}' in text, text[-800:]
    assert 'userdb_key_requests_total{key="svc-verify"}' in text
    assert 'userdb_key_requests_total{key="key-2"}' in text
    for secret in SECRETS:
        assert secret not in text


@test
def the_change_stream_names_the_actor():
    w = Rpc(srv.rpc, READ)
    w.ok("changes.watch", None)
    con = Rpc(srv.rpc, FILE_CONSOLE)
    u = con.ok("user.create", {"name": "Str", "email": "str@x.com"})
    Rpc(srv.rpc, ADMIN).ok("user.delete", u["id"])
    got = []
    while len(got) < 2:
        m = w.recv()
        assert m[0] == 2 and m[1] == "change", m
        got.append((m[2][0]["event"], m[2][0]["actor"]))
    assert got == [("user.created", "console"),
                   ("user.deleted", "key-1")], got
    w.close()


@test
def metrics_count_each_key_name():
    def count(name):
        _, _, raw = http_req(srv.http, "GET", "/metrics", ADMIN)
        for line in raw.decode().splitlines():
            if line.startswith('userdb_key_requests_total{key="%s"}' % name):
                return int(line.split()[-1])
        return 0
    before = count("key-2")
    c = Rpc(srv.rpc, READ)
    for _ in range(25):
        c.ok("user.get", VID)
    c.close()
    assert count("key-2") == before + 25, (before, count("key-2"))


# ---- start-up checks ---------------------------------------------------------

def refused(args, want):
    s = Server(*args, expect_ready=False)
    rc = s.proc.wait(timeout=10)
    err = s.stderr()
    s.stop()
    assert rc != 0, "started: %r" % args
    assert want in err, err
    for secret in SECRETS:
        assert secret not in err, err
    return err


@test
def key_file_mode_and_lines_are_checked():
    bad = os.path.join(tmp, "bad")
    write_keyfile(bad, "%s admin\n" % FILE_CONSOLE, 0o640)
    refused(["--api-key-file", bad], "mode 0640")
    write_keyfile(bad, "%s admin\n" % FILE_CONSOLE, 0o604)
    refused(["--api-key-file", bad], "group and others")
    cases = [
        ("# c\n%s admin\n%s superuser\n", "line 3", "unknown scope"),
        ("%s\n", "line 1", "expected KEY SCOPE [NAME]"),
        ("%s read a b\n", "line 1", "expected KEY SCOPE [NAME]"),
        ("%s read bad/name\n", "line 1", "a name is"),
        ("%s read\n%s admin\n", "line 2", "twice"),
        ("# only comments\n\n", "holds no key", ""),
    ]
    for text, where, what in cases:
        n = text.count("%s")
        write_keyfile(bad, text % tuple([FILE_CONSOLE] * n))
        err = refused(["--api-key-file", bad], where)
        assert what in err, err
    refused(["--api-key-file", os.path.join(tmp, "missing")],
            "cannot read key file")
    # 0400 is fine, and CRLF lines too
    write_keyfile(bad, "%s read ro\r\n" % FILE_READ, 0o400)
    s = Server("--api-key-file", bad)
    assert Rpc(s.rpc, FILE_READ).ok("server.stats")
    err, _ = Rpc(s.rpc, FILE_READ).call("user.create",
                                         {"name": "n", "email": "n@x.com"})
    assert err["code"] == "forbidden", err
    assert s.stop() == 0


@test
def api_key_flag_takes_a_scope():
    s = Server("--api-key", "plain-admin-key", "--api-key", "ro-key:read",
               "--api-key", "odd:key:verify")
    assert Rpc(s.rpc, "plain-admin-key").ok("user.create",
                                            {"name": "a", "email": "a@x.com"})
    err, _ = Rpc(s.rpc, "ro-key").call("user.create",
                                       {"name": "b", "email": "b@x.com"})
    assert err["code"] == "forbidden", err
    err, _ = Rpc(s.rpc, "odd:key").call("user.delete", "usr_x")
    assert err["code"] == "forbidden", err
    err, _ = Rpc(s.rpc).call("auth", "ro-key:read")
    assert err["code"] == "unauthorized", "the scope is not part of the key"
    assert s.stop() == 0


@test
def non_loopback_bind_needs_tls_or_allow_plaintext():
    refused(["--bind", "0.0.0.0", "--api-key", "k"], "without TLS")
    refused(["--bind", "::", "--api-key", "k"], "--allow-plaintext")
    refused(["--tls-cert", "/nonexistent", "--api-key", "k"],
            "go together")
    s = Server("--bind", "0.0.0.0", "--allow-plaintext", "--api-key", "k")
    assert s.stop() == 0
    s = Server("--bind", "127.0.0.2", "--api-key", "k")
    assert s.stop() == 0


# ---- SIGHUP rotation -------------------------------------------------------

def sighup_steps(s, kf, keep, old, new):
    """The rotation itself, while the load runs."""
    old_c = Rpc(s.rpc, old)
    assert old_c.ok("server.stats")
    mark = len(s.lines)
    write_keyfile(kf, "%s admin keep\n%s verify new\n" % (keep, new))
    s.proc.send_signal(signal.SIGHUP)
    s.wait_line("api keys reloaded", 5, mark)
    # the removed key fails from its next request, on the same connection
    err, _ = old_c.call("server.stats")
    assert err and err["code"] == "unauthorized", err
    err, _ = Rpc(s.rpc).call("auth", old)
    assert err["code"] == "unauthorized"
    status, _, _ = http_req(s.http, "GET", "/v1/users", old)
    assert status == 401
    # the new key works at once, with its scope and name
    n = Rpc(s.rpc, new)
    assert n.ok("user.list", {})["pagination"]["total"] == 1
    err, _ = n.call("user.create", {"name": "x", "email": "x@x.com"})
    assert err["code"] == "forbidden"
    # a bad file keeps the old set and says why
    for text, mode, why in [("%s admin keep\n%s nope\n" % (keep, new),
                             0o600, "line 2"),
                            ("%s admin keep\n" % keep, 0o644, "mode 0644")]:
        write_keyfile(kf, text, mode)
        s.proc.send_signal(signal.SIGHUP)
        s.wait_stderr(why, 5)
        err_text = s.stderr()
        assert why in err_text and "old keys stay" in err_text, err_text
        assert new not in err_text and keep not in err_text
        assert n.ok("user.list", {})
        s.lines_before = len(s.lines)
    time.sleep(0.2)



@test
def sighup_rotates_keys_under_load():
    kf = os.path.join(tmp, "rot")
    keep, old, new = "keep-key-000000000001", "old-key-00000000002", \
        "new-key-00000000003"
    write_keyfile(kf, "%s admin keep\n%s read old\n" % (keep, old))
    s = Server("--api-key-file", kf)
    stop, created = threading.Event(), threading.Event()
    failures, done = [], [0]

    def load():  # pipelined gets on one connection through every reload
        try:
            c = Rpc(s.rpc, keep)
            uid = c.ok("user.create", {"name": "L", "email": "l@x.com"})["id"]
            created.set()
            while not stop.is_set():
                ids = [c.send("user.get", [uid]) for _ in range(16)]
                for msgid in ids:
                    m = c.recv()
                    if m[1] != msgid or m[2] is not None:
                        failures.append(m)
                done[0] += 16
        except Exception as e:
            failures.append(repr(e))
        created.set()

    # daemon, and stopped on failure: a failed assertion below must not
    # leave it (and the server) running, which kept the process alive.
    t = threading.Thread(target=load, daemon=True)
    t.start()
    # the steps count the load's user: it must exist before they start
    created.wait(20)
    try:
        sighup_steps(s, kf, keep, old, new)
    except BaseException:
        stop.set()
        s.proc.kill()
        raise
    stop.set()
    t.join(20)
    assert not failures, failures[:3]
    assert done[0] > 100, done
    assert s.stop() == 0


admin.close()
rc = srv.stop()
shutil.rmtree(tmp, ignore_errors=True)
T.check("sigterm exits 0 (got %r)" % rc, rc == 0)
T.check("responses were checked against openapi.json", SPEC[0] is not None)
T.finish()
